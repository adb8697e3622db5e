"""Users, as Subsonic apps manage them: ``getUser``, ``getUsers``, ``createUser``,
``updateUser``, ``deleteUser`` and ``changePassword``.

A user's password is one of its keys (``changePassword`` sets the key ``password-N``); an
admin may do all of these (the endpoint refuses the others to anyone else, ``ADMIN_ONLY``), a
listener ``getUser`` and ``changePassword`` for itself (error 50 otherwise). Roles follow what
Mosic lets the user do.
"""

from __future__ import annotations

import contextlib

from mosic.api.subsonic.auth import plain_password
from mosic.api.subsonic.call import Call
from mosic.api.subsonic.request import invalid
from mosic.api.subsonic.response import Code, SubsonicError, not_found
from mosic.core.keys import User
from mosic.core.library import Library
from mosic.core.users import (
    BadUser,
    UserConflict,
    UserNotFound,
    Users,
    name_key,
    valid_password,
)
from mosic.persistence.models import ADMIN, LISTENER


class Accounts:
    def __init__(self, *, users: Users, library: Library) -> None:
        self._users = users
        self._library = library

    def methods(self) -> dict:
        return {
            "getUser": self.user,
            "getUsers": self.all_users,
            "createUser": self.create,
            "updateUser": self.update,
            "deleteUser": self.delete,
            "changePassword": self.change_password,
        }

    async def user(self, call: Call) -> dict:
        name = call.params.required("username")
        _self_or_admin(call, name)
        return {"user": await self._shape(await self._get(name))}

    async def all_users(self, call: Call) -> dict:
        users = [await self._shape(info.user) for info in await self._users.list()]
        return {"users": {"user": users}}

    async def create(self, call: Call) -> dict:
        name, password = call.params.required("username"), _password(call)
        role = ADMIN if call.params.flag("adminRole", False) else LISTENER
        async with _answers():
            valid_password(password)  # before the user is made
            await self._users.add(name, role, await self._folders(call))
            await self._users.set_password(name, password)
        return {}

    async def update(self, call: Call) -> dict:
        name = call.params.required("username")
        changes = {}
        if "adminRole" in call.params:
            changes["role"] = ADMIN if call.params.flag("adminRole", False) else LISTENER
        if "musicFolderId" in call.params:
            changes["music_folders"] = await self._folders(call)
        async with _answers():
            await self._users.update(name, changes)
            if "password" in call.params:
                await self._users.set_password(name, _password(call))
        return {}

    async def delete(self, call: Call) -> dict:
        async with _answers():
            await self._users.remove(call.params.required("username"), heir=call.caller.user.id)
        return {}

    async def change_password(self, call: Call) -> dict:
        name = call.params.required("username")
        _self_or_admin(call, name)
        async with _answers():
            await self._users.set_password(name, _password(call))
        return {}

    async def _get(self, name: str) -> User:
        try:
            return (await self._users.get(name)).user
        except UserNotFound:
            raise not_found("user") from None

    async def _shape(self, user: User) -> dict:
        folders = await self._library.folders()
        seen = [f.id for f in folders if user.music_folders is None or f.name in user.music_folders]
        roles = {
            "scrobblingEnabled": True,
            "adminRole": user.is_admin,
            "settingsRole": user.is_admin,
            "downloadRole": True,
            "uploadRole": True,
            "playlistRole": True,
            "coverArtRole": False,
            "commentRole": False,
            "podcastRole": False,
            "streamRole": True,
            "jukeboxRole": False,
            "shareRole": True,
            "videoConversionRole": False,
        }
        return {"username": user.name, **roles, "folder": seen}

    async def _folders(self, call: Call) -> list[str] | None:
        """``musicFolderId`` (repeated) as folder names; none given is every folder."""
        wanted = call.params.all("musicFolderId")
        if not wanted:
            return None
        names = {str(f.id): f.name for f in await self._library.folders()}
        unknown = [value for value in wanted if value not in names]
        if unknown:
            raise not_found(f"music folder {unknown[0]!r}")
        return [names[value] for value in wanted]


def _self_or_admin(call: Call, name: str) -> None:
    if not call.caller.user.is_admin and name_key(name) != name_key(call.caller.user.name):
        raise SubsonicError(Code.NOT_AUTHORIZED, "a listener may only see and change itself")


def _password(call: Call) -> str:
    password = plain_password(call.params.required("password"))
    if password is None:
        raise invalid("password", "enc: must be followed by hex of UTF-8 text")
    return password


@contextlib.asynccontextmanager
async def _answers():
    """The users' own refusals as Subsonic errors: an unknown user 70, the rest 0 with why."""
    try:
        yield
    except UserNotFound:
        raise not_found("user") from None
    except (BadUser, UserConflict) as error:
        raise SubsonicError(Code.GENERIC, str(error)) from None
