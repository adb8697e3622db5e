"""``/rest/{method}``: one resource answers every Subsonic method, at ``NAME`` and
``NAME.view``, by GET and by POST form.

It reads the parameters, authenticates, refuses writes to keys that may not write, calls
the method, and renders its answer as XML, JSON or JSONP. A failed call is HTTP 200 with
``status="failed"`` and a Subsonic error code, as every Subsonic app expects; an unknown
method is HTTP 404 with the same body.
"""

from __future__ import annotations

import falcon

from mosic.api.middleware import ROUTE_LABEL
from mosic.api.serving import ByteServer
from mosic.api.subsonic.accounts import Accounts
from mosic.api.subsonic.auth import Caller, authenticate
from mosic.api.subsonic.browse import Browse
from mosic.api.subsonic.call import Call
from mosic.api.subsonic.keep import Keep
from mosic.api.subsonic.kept import Kept
from mosic.api.subsonic.lyrics import LyricsMethods
from mosic.api.subsonic.media import Media
from mosic.api.subsonic.playlists import PlaylistMethods
from mosic.api.subsonic.request import Params, read_params
from mosic.api.subsonic.response import (
    Code,
    Encoded,
    SubsonicError,
    failed,
    not_found,
    ok,
    render,
    render_encoded,
)
from mosic.api.subsonic.scanning import Scanning
from mosic.api.subsonic.shapes import MarksLoader
from mosic.api.subsonic.sharing import ShareMethods
from mosic.api.subsonic.transcoding import TranscodeMethods
from mosic.core.collection import Collection
from mosic.core.library import Library
from mosic.core.listening import Listening
from mosic.core.lyrics import SongLyrics
from mosic.core.playlists import Playlists
from mosic.core.plays import PlayRecorder
from mosic.core.reports import PlaybackReports
from mosic.core.scanning.service import LibraryScans
from mosic.core.share_songs import ShareSongs
from mosic.core.shares import Shares
from mosic.core.users import Users
from mosic.observability.metrics import AuthFailure, Metrics

VIEW_SUFFIX = ".view"
# Methods that change what the listener keeps: a key whose grant has no writes (a
# read-only key) gets error 50 for these. ``scrobble`` and ``reportPlayback`` are not: they
# are how a Subsonic app reports a listen, the counterpart of a counted REST stream, which
# read-only keys may do.
WRITES = frozenset(
    {
        "star",
        "unstar",
        "setRating",
        "createPlaylist",
        "updatePlaylist",
        "deletePlaylist",
        "savePlayQueue",
        "savePlayQueueByIndex",
        "createBookmark",
        "deleteBookmark",
        "startScan",
        "createUser",
        "updateUser",
        "deleteUser",
        "changePassword",
        "createShare",
        "updateShare",
        "deleteShare",
    }
)
# Only an admin may call these (error 50); getUser and changePassword are also a user's own
# (mosic.api.subsonic.accounts checks that).
ADMIN_ONLY = frozenset({"startScan", "getUsers", "createUser", "updateUser", "deleteUser"})
# Apps ask this before they log in, to learn how they may log in.
NO_AUTH = frozenset({"getOpenSubsonicExtensions"})


class SubsonicApi:
    def __init__(
        self,
        *,
        users: Users,
        metrics: Metrics,
        library: Library,
        lyrics: SongLyrics,
        collection: Collection,
        playlists: Playlists,
        listening: Listening,
        plays: PlayRecorder,
        reports: PlaybackReports,
        serving: ByteServer,
        scans: LibraryScans,
        kept: Kept,
        shares: Shares,
        share_songs: ShareSongs,
    ) -> None:
        self._users = users
        self._metrics = metrics
        marks = MarksLoader(collection=collection, listening=listening)
        media = {"plays": plays, "reports": reports, "serving": serving, "listening": listening}
        media_methods = Media(library=library, marks=marks, **media)
        self._methods = {
            **Browse(library=library, marks=marks, kept=kept).methods(),
            **media_methods.methods(),
            **TranscodeMethods(library=library, media=media_methods).methods(),
            **Keep(library=library, collection=collection, marks=marks).methods(),
            **PlaylistMethods(library=library, playlists=playlists, marks=marks).methods(),
            **Scanning(scans=scans, library=library).methods(),
            **LyricsMethods(library=library, lyrics=lyrics).methods(),
            **Accounts(users=users, library=library).methods(),
            **ShareMethods(shares=shares, songs=share_songs, marks=marks).methods(),
        }

    @property
    def method_names(self) -> frozenset[str]:
        return frozenset(self._methods)

    async def on_get(self, req, resp, method: str) -> None:
        await self._call(req, resp, method)

    async def on_post(self, req, resp, method: str) -> None:
        await self._call(req, resp, method)

    async def _caller(self, name: str, params: Params) -> Caller | None:
        """Who calls ``name``, if they may; each refusal counted by its reason, as REST's."""
        if name in NO_AUTH:
            return None
        try:
            caller = await authenticate(params, self._users)
        except SubsonicError as error:
            missing = error.code == Code.MISSING_PARAMETER
            self._metrics.auth_failure(AuthFailure.MISSING if missing else AuthFailure.WRONG)
            raise
        if name in WRITES and not caller.grant.writes:
            self._metrics.auth_failure(AuthFailure.READ_ONLY)
            raise SubsonicError(Code.NOT_AUTHORIZED, "this key may not change anything")
        if name in ADMIN_ONLY and not caller.user.is_admin:
            self._metrics.auth_failure(AuthFailure.NOT_ADMIN)
            raise SubsonicError(Code.NOT_AUTHORIZED, "only an admin may do this")
        return caller

    async def _call(self, req, resp, method: str) -> None:
        name = method.removesuffix(VIEW_SUFFIX)
        params = await read_params(req)

        def answer(response: dict) -> None:
            resp.data, resp.content_type = render(response, params.one("f"), params.one("callback"))

        handler = self._methods.get(name)
        if handler is None:
            resp.status = falcon.HTTP_404
            answer(failed(not_found(f"method {name!r}")))
            return
        req.context[ROUTE_LABEL] = f"/rest/{name}"
        try:
            if params.problem is not None:
                raise params.problem
            body = await handler(Call(req, resp, params, await self._caller(name, params)))
        except SubsonicError as error:
            answer(failed(error))
            return
        if isinstance(body, Encoded):  # kept across calls (getArtists, getIndexes)
            resp.data, resp.content_type = render_encoded(
                body, params.one("f"), params.one("callback")
            )
        elif body is not None:  # None: the method sent bytes itself (stream, download)
            answer(ok(body))
