"""``/me`` and, for admins, ``/users``: users, and the keys that belong to them.

A key's text appears once, in the answer that made it; lists show ids, scopes and times.
"""

from __future__ import annotations

from urllib.parse import urlencode

import falcon

from mosic.api import params
from mosic.api.errors import bad_request
from mosic.core.keys import User
from mosic.core.listening import HISTORY_MAX, InvalidHistoryCursor, Listening
from mosic.core.users import KeyInfo, NewKey, UserInfo, Users

USER_FIELDS = {"name", "role", "music_folders"}
HISTORY_DEFAULT = 50


def user_json(info: UserInfo) -> dict:
    return {**_who(info.user), "created_at": info.created_at}


def _who(user: User) -> dict:
    folders = list(user.music_folders) if user.music_folders is not None else None
    return {"name": user.name, "role": user.role, "music_folders": folders}


def key_json(info: KeyInfo) -> dict:
    return {"id": info.id, "scope": info.scope, "created_at": info.created_at}


def new_key_json(made: NewKey) -> dict:
    return {**key_json(made.info), "key": made.key}


class Me:
    async def on_get(self, req, resp) -> None:
        resp.media = _who(req.context.grant.user)


class MyHistory:
    """``/me/history``: the caller's plays, newest first, a page at a time."""

    def __init__(self, *, listening: Listening) -> None:
        self._listening = listening

    async def on_get(self, req, resp) -> None:
        limit = params.int_param(req, "limit", 1, HISTORY_MAX) or HISTORY_DEFAULT
        cursor = req.get_param("cursor")
        if cursor is not None and len(cursor) > params.CURSOR_MAX:
            raise bad_request("'cursor': the cursor is not one this server issued")
        try:
            page, after = await self._listening.history(req.context.grant.user.id, limit, cursor)
        except InvalidHistoryCursor as exc:
            raise bad_request(f"'cursor': {exc}") from None
        resp.media = [{"clip_id": str(p.clip_id), "played_at": p.played_at} for p in page]
        if after is not None:
            query = urlencode({"limit": limit, "cursor": after})
            resp.set_header("Link", f'<{req.path}?{query}>; rel="next"')


class UserCollection:
    def __init__(self, *, users: Users) -> None:
        self._users = users

    async def on_get(self, req, resp) -> None:
        resp.media = [user_json(info) for info in await self._users.list()]

    async def on_post(self, req, resp) -> None:
        body = await params.json_object(req, USER_FIELDS)
        if "name" not in body:
            raise bad_request("'name' is required")
        info, key = await self._users.add(
            body["name"], body.get("role", "listener"), body.get("music_folders")
        )
        resp.status = falcon.HTTP_201
        resp.location = f"/users/{info.user.name}"
        resp.media = {**user_json(info), "key": new_key_json(key)}


class UserItem:
    def __init__(self, *, users: Users) -> None:
        self._users = users

    async def on_get(self, req, resp, name: str) -> None:
        resp.media = user_json(await self._users.get(name))

    async def on_patch(self, req, resp, name: str) -> None:
        body = await params.json_object(req, USER_FIELDS)
        resp.media = user_json(await self._users.update(name, body))

    async def on_delete(self, req, resp, name: str) -> None:
        await self._users.remove(name, heir=req.context.grant.user.id)
        resp.status = falcon.HTTP_204


class UserKeys:
    def __init__(self, *, users: Users) -> None:
        self._users = users

    async def on_get(self, req, resp, name: str) -> None:
        resp.media = [key_json(info) for info in await self._users.keys(name)]

    async def on_post(self, req, resp, name: str) -> None:
        body = await params.json_object(req, {"scope"})
        made = await self._users.new_key(name, body.get("scope", "full"))
        resp.status = falcon.HTTP_201
        resp.media = new_key_json(made)


class UserKey:
    def __init__(self, *, users: Users) -> None:
        self._users = users

    async def on_delete(self, req, resp, name: str, key_id: str) -> None:
        await self._users.revoke(name, key_id)
        resp.status = falcon.HTTP_204
