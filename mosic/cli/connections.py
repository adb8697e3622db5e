"""The HTTP server's connections, as uvicorn makes them, with two guards uvicorn lacks, and
a write buffer that holds one write at most.

- A deadline for request headers: uvicorn bounds the wait between requests on a kept-alive
  connection, but nothing between a request's first byte and the end of its headers, so a
  client sending a header line now and then would hold its connection for good.
- A stop that keeps a stream's tail: uvicorn closes a finished stream's socket with its last
  bytes still in the kernel's send buffer, and exits once every socket is closed; in a
  container the network goes with the process, and those bytes with it, from a listener who
  reads slowly. During a stop, a connection's close first shuts its write side and waits
  until the client has acknowledged every byte (within the grace period, which uvicorn's own
  graceful timeout bounds, since the connection counts as open until then).
- A write buffer of one write: uvloop keeps up to 64 KiB of unsent bytes per connection (its
  high-water mark) before uvicorn's ``send`` waits for them to drain, and each is a whole
  chunk of a stream kept alive; with the mark at 0, ``send`` waits as soon as the socket did
  not take a write whole, so a stream keeps the one chunk the kernel is still taking. With
  200 listeners that was 5 MiB less at the peak (``bench.ab_stream_memory``); the kernel's
  own send buffer, not this one, is what keeps a fast listener's socket busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import termios

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mosic.settings import Settings

log = logging.getLogger(__name__)
# Linux's SIOCOUTQ: bytes of a TCP socket the peer has not acknowledged yet (its FIN too).
UNACKED = getattr(termios, "TIOCOUTQ", None)
LINGER_POLL_S = 0.05
# Unsent bytes above which a connection's writer waits (see the module's docstring).
WRITE_BUFFER_HIGH = 0


def unacknowledged(transport) -> int:
    """Bytes the transport's socket sent that the peer has not acknowledged; 0 when that
    cannot be known (not Linux, not a socket) or the connection is gone."""
    sock = transport.get_extra_info("socket")
    if sock is None or UNACKED is None:
        return 0
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), UNACKED, b"\0" * 4))[0]
    except (OSError, ValueError):
        return 0


class LingeringTransport:
    """A connection's transport whose ``close`` during a stop shuts the write side, waits
    for the client to acknowledge the last byte (at most ``linger_s``), then closes.
    Everything else is the transport's own."""

    def __init__(self, transport, linger_s: float) -> None:
        self._transport = transport
        self._linger_s = linger_s
        self.stopping = False
        self._lingering: asyncio.Task | None = None

    def __getattr__(self, name: str):
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._lingering is not None or self._transport.is_closing()

    def close(self) -> None:
        if not self.stopping or self.is_closing():
            self._transport.close()
            return
        self._lingering = asyncio.get_running_loop().create_task(self._linger())

    async def _linger(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._linger_s
        with contextlib.suppress(OSError, RuntimeError):  # already reset, or no EOF to send
            self._transport.write_eof()  # after whatever asyncio still buffers
        while unacknowledged(self._transport) and loop.time() < deadline:
            if self._transport.is_closing():
                return
            await asyncio.sleep(LINGER_POLL_S)
        self._transport.close()


class Connection(HttpToolsProtocol):
    """uvicorn's httptools connection, closed when a request's headers are not complete
    ``header_timeout_s`` after the connection opened or after the request's first byte, and
    closed after its last byte has arrived when the server stops (``LingeringTransport``),
    its writes waited for once a write is left unsent (``WRITE_BUFFER_HIGH``).

    Why a subclass of the protocol: uvicorn takes the protocol class as a public setting
    (``Config(http=...)``, which uvicorn-worker passes on too); httptools calls
    ``on_message_begin`` and ``on_headers_complete`` by name, its documented parser
    callbacks; uvicorn calls ``shutdown`` on every connection when it stops. The guards need
    none of uvicorn's private state; a wrapper at the asyncio level would have to parse HTTP
    a second time to know where the headers end."""

    header_timeout_s: float
    linger_s: float
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self._guarded = LingeringTransport(transport, self.linger_s)
        super().connection_made(self._guarded)
        # A connection that sends nothing at all is a request whose headers never come.
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        self._guarded.stopping = True
        super().shutdown()

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


def connection_class(settings: Settings) -> type[Connection]:
    """The protocol class to give uvicorn, with the header deadline and grace of
    ``settings``."""
    return type(
        "Connection",
        (Connection,),
        {"header_timeout_s": settings.header_timeout_s, "linger_s": settings.shutdown_grace_s},
    )
