"""The HTTP server's connections, as uvicorn makes them, with a deadline for request headers.

uvicorn bounds the wait between requests on a kept-alive connection, but nothing between a
request's first byte and the end of its headers: a client sending a header line now and then
would hold its connection for good, and a thousand of them the server.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mosic.settings import DEFAULT_HEADER_TIMEOUT_S

log = logging.getLogger(__name__)


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's httptools connection, closed when a request's headers are not complete
    ``header_timeout_s`` after the connection opened or after the request's first byte.

    Why a subclass of the protocol: uvicorn takes the protocol class as a public setting
    (``Config(http=...)``, which uvicorn-worker passes on too), and httptools calls
    ``on_message_begin`` and ``on_headers_complete`` by name, its documented parser
    callbacks. The guard needs none of uvicorn's private state; a wrapper at the asyncio level
    would have to parse HTTP a second time to know where the headers end."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._guarded = transport
        # A connection that sends nothing at all is a request whose headers never come.
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        # The next request on a kept-alive connection has its own time for its headers.
        self._arm()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._header_timer = loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._guarded.is_closing():
            log.debug("closing a connection: headers not complete in %g s", self.header_timeout_s)
            self._guarded.close()


def header_deadline(timeout_s: float) -> type[HeaderDeadline]:
    """The protocol class to give uvicorn, with the headers' deadline of these settings."""
    return type("HeaderDeadline", (HeaderDeadline,), {"header_timeout_s": timeout_s})
