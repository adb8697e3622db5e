"""Slow clients, over real HTTP: a request body trickling under the minimum rate and request
headers that never end are cut off with nothing left behind, and a thousand of them at once
leave ``/healthz`` and a normal listener answering."""

from __future__ import annotations

import select
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mosic.api.middleware import Pace
from tests.conftest import LOCAL_BACKENDS, new_postgres_db
from tests.support.audio import make_wav_of_size
from tests.support.server import mosic_serve, wait_for
from tests.test_faults import RawUpload, part_files, response_of

# The contract's own case, on the default settings: a body of 1 byte a second, cut off
# within 60 s of its first byte.
TRICKLE_DECLARED = 5_000_000
# Sent at once before the trickle: enough for the upload to start writing its part file.
FIRST_PIECE = 64 * 1024
CONTRACT_CUT_S = 60
# The crowd's server judges the rate over 3 s (through the settings object: no variable sets
# the window) and gives headers 3 s, so its rules act within the test's few seconds.
SHORT_WINDOW_S = 3.0
SHORT_HEADER_S = 3
CROWD = {"body": 400, "silent": 150, "half line": 150, "headers": 300}
# Every connection of the crowd must be cut by then; it is a bound, not a measure.
CROWD_CUT_S = 60


def postgres_url(db) -> str:
    return f"postgresql://{db.user}@{db.host}:{db.port}/{db.name}"


def readable(sock: socket.socket, within: float) -> bool:
    # poll, not select: a thousand sockets number past select's 1024.
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(within * 1000))


# -- the rule, without a clock ------------------------------------------------------------------


def test_a_trickle_falls_short_one_window_after_its_first_byte():
    pace = Pace(rate=500, window=30)
    assert pace.deadline() is None
    for second in range(20):
        pace.arrived(10.0 + second, 1)
    assert pace.deadline() == 40


def test_a_body_at_the_rate_keeps_moving_its_deadline():
    pace = Pace(rate=500, window=30)
    for second in range(100):
        pace.arrived(float(second), 500)
    # The newest 30 s hold exactly 30 x 500 bytes: short once the one of second 70 leaves.
    assert pace.deadline() == 100


def test_a_burst_then_a_trickle_falls_short_when_the_burst_leaves_the_window():
    pace = Pace(rate=500, window=30)
    pace.arrived(0.0, 1_000_000)
    pace.arrived(5.0, 1)
    assert pace.deadline() == 30


def test_a_rate_of_zero_turns_the_rule_off():
    pace = Pace(rate=0, window=30)
    pace.arrived(0.0, 1)
    assert pace.deadline() is None


# -- the contract's trickle, on the default settings -----------------------------------------


def started_upload(server, song: bytes) -> RawUpload:
    """An upload declaring 5 MB, its first piece sent."""
    upload = RawUpload(server, song, declared=TRICKLE_DECLARED)
    upload.send(FIRST_PIECE)
    return upload


def trickle_until_answered(server, song: bytes) -> tuple[int, bytes, bool]:
    """An upload that sends one byte a second after its first piece: the status and answer
    the server gave, and whether its part file was seen meanwhile."""
    upload = started_upload(server, song)
    media, saw_part = server.data_dir / "media", False
    deadline = time.monotonic() + CONTRACT_CUT_S
    while time.monotonic() < deadline:
        saw_part = saw_part or bool(part_files(media))
        try:
            if not readable(upload.sock, 1.0):
                upload.send(upload.sent + 1)
                continue
        except OSError:
            pass  # closed under the write: the answer is still there to read
        return (*response_of(upload.sock, 10), saw_part)
    raise AssertionError(f"a 1 byte/s body still open {CONTRACT_CUT_S} s after its first byte")


def test_a_body_of_one_byte_a_second_is_cut_within_a_minute_and_leaves_nothing(
    tmp_path, fresh_postgres_db
):
    pg = {"MOSIC_DATABASE_URL_OVERRIDE": postgres_url(fresh_postgres_db)}
    song = make_wav_of_size(tmp_path / "slow.wav", 1024 * 1024).read_bytes()
    # Both databases at once: the rule waits out its 30 s window on each.
    with mosic_serve(tmp_path / "sqlite") as lite, mosic_serve(tmp_path / "pg", **pg) as post:
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(trickle_until_answered, (lite, post), (song, song)))
        for server, (status, answer, saw_part) in zip((lite, post), answers, strict=True):
            assert status == 408, answer
            assert b"connection: close" in answer.lower() and b"MOSIC_BODY_MIN_RATE" in answer
            assert saw_part  # the upload was being written: its removal is what is checked
            media = server.data_dir / "media"
            wait_for("the part file to go", lambda m=media: part_files(m) == {}, 10)
            assert server.get("/play").headers["X-Total-Count"] == "0"
            assert server.proc.poll() is None


# -- a thousand at once ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=LOCAL_BACKENDS)
def strict(request, tmp_path_factory):
    """A server with short body and header rules; the PostgreSQL leg runs two gunicorn
    workers, so both ways of serving carry the header deadline."""
    data = tmp_path_factory.mktemp(f"strict-{request.param}") / "data"
    with new_postgres_db(request) as db:
        env = {"MOSIC_HEADER_TIMEOUT_S": str(SHORT_HEADER_S)}
        if db is not None:
            env |= {"MOSIC_DATABASE_URL_OVERRIDE": postgres_url(db), "MOSIC_WORKERS": "2"}
        with mosic_serve(data, overrides={"body_rate_window_s": SHORT_WINDOW_S}, **env) as server:
            yield server


class Crowd:
    """Connections that each try to hold the server their own way, given a byte a second:
    uploads trickling their body, and requests whose headers never end (nothing sent, half a
    request line, or a header line a second)."""

    OPENINGS = {"silent": b"", "half line": b"GET /play HT", "headers": b"GET /play HTTP/1.1\r\n"}
    TRICKLE = {"body": b"\0", "headers": b"X-Slow: 1\r\n"}

    def __init__(self, server, song: bytes) -> None:
        self.server, self.song = server, song
        self.kind: dict[socket.socket, str] = {}
        self.answer: dict[socket.socket, bytes] = {}  # what each got before it was closed

    def open(self, counts: dict[str, int]) -> None:
        host, port = self.server.base.removeprefix("http://").split(":")
        for kind, count in counts.items():
            for _ in range(count):
                if kind == "body":
                    sock = started_upload(self.server, self.song).sock
                else:
                    sock = socket.create_connection((host, int(port)), timeout=10)
                    sock.sendall(self.OPENINGS[kind])
                sock.setblocking(False)
                self.kind[sock] = kind

    def open_ones(self) -> list[socket.socket]:
        return [sock for sock in self.kind if sock not in self.answer]

    def tick(self) -> None:
        """Read what the server said (to the end, when it closed), then trickle the rest."""
        time.sleep(1.0)
        for sock in self.open_ones():
            self._read(sock)
        for sock in self.open_ones():
            if self.kind[sock] in self.TRICKLE:
                try:
                    sock.send(self.TRICKLE[self.kind[sock]])
                except OSError:
                    self.answer[sock] = self.answer.get(sock, b"")

    def _read(self, sock: socket.socket) -> None:
        try:
            while chunk := sock.recv(65536):
                self.answer[sock] = self.answer.get(sock, b"") + chunk
        except BlockingIOError:
            return  # still open
        except OSError:
            pass  # reset: closed all the same
        self.answer.setdefault(sock, b"")
        sock.close()

    def close(self) -> None:
        for sock in self.kind:
            sock.close()


def a_normal_listener_is_served(server, song) -> None:
    for _ in range(3):
        assert server.get("/healthz", key=False).status_code == 200
    assert server.get("/play").status_code == 200
    clip = server.upload(song, "audio/wav")
    assert server.get(clip["audio_url"]).content == song.read_bytes()


def test_a_thousand_slow_clients_are_cut_and_leave_the_service_answering(strict, tmp_path):
    song = make_wav_of_size(tmp_path / "normal.wav", 256 * 1024)
    crowd = Crowd(strict, song.read_bytes())
    try:
        crowd.open(CROWD)
        a_normal_listener_is_served(strict, song)
        deadline = time.monotonic() + CROWD_CUT_S
        while crowd.open_ones() and time.monotonic() < deadline:
            crowd.tick()
        assert crowd.open_ones() == [], f"{len(crowd.open_ones())} slow clients still open"
    finally:
        crowd.close()
    answers = {kind: set() for kind in CROWD}
    for sock, kind in crowd.kind.items():
        answers[kind].add(crowd.answer[sock].split(b"\r\n", 1)[0])
    # Trickling bodies: a 408 each; headers that never end: closed without a word.
    assert answers == {"body": {b"HTTP/1.1 408 Request Timeout"}} | {
        kind: {b""} for kind in CROWD if kind != "body"
    }
    wait_for("the part files to go", lambda: part_files(strict.data_dir / "media") == {}, 10)
    assert strict.get("/play").headers["X-Total-Count"] == "1"
    assert strict.get("/healthz", key=False).status_code == 200
    assert strict.proc.poll() is None


def read_response(sock: socket.socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, body = received.split(b"\r\n\r\n", 1)
    (length,) = (
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_the_next_request_on_a_kept_alive_connection_has_its_own_header_deadline(strict):
    host, port = strict.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        # A header line a second: bytes keep coming, the headers never end.
        for _ in range(CROWD_CUT_S):
            if readable(sock, 1.0):
                break
            sock.sendall(b"X-Slow: 1\r\n")
        else:
            raise AssertionError(f"headers trickled for {CROWD_CUT_S} s and were never cut")
        assert sock.recv(65536) == b""


# -- a stop, with a slow listener --------------------------------------------------------------

LONG_SONG_BYTES = 8 * 1024 * 1024
# The listener's receive buffer, kept small so the kernel cannot take the tail off its hands.
LISTENER_BUFFER = 64 * 1024
SLOW_READ_BYTES = 64 * 1024
SLOW_READ_PAUSE_S = 0.05


def slow_listener(server, clip: dict) -> tuple[socket.socket, int, bytes]:
    """A stream request on a socket with a small receive buffer: the socket, the length the
    answer declares, and the body bytes read with its head."""
    host, port = server.base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, LISTENER_BUFFER)
    sock.settimeout(30)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET {clip['audio_url']} HTTP/1.1\r\nHost: {host}\r\n"
        f"X-API-Key: {server.api_key}\r\n\r\n".encode()
    )
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(SLOW_READ_BYTES)
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    (length,) = (
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return sock, length, body


def refuses_connections(server) -> bool:
    host, port = server.base.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def what_is_left_after_exit(sock: socket.socket) -> bytes:
    """Everything the kernel already holds for us, then the end of the stream; an
    AssertionError if some of it is still on its way (the server exited before its tail
    reached us, and in a container that tail is lost)."""
    sock.setblocking(False)
    left = b""
    try:
        while chunk := sock.recv(SLOW_READ_BYTES):
            left += chunk
    except BlockingIOError:
        raise AssertionError(
            f"the server exited with bytes not yet delivered ({len(left)} read)"
        ) from None
    return left


@pytest.mark.parametrize("workers", ["1", "2"], ids=["uvicorn", "gunicorn"])
def test_a_stop_lets_a_slow_listener_have_the_whole_stream(tmp_path, workers):
    song = make_wav_of_size(tmp_path / "long.wav", LONG_SONG_BYTES)
    with mosic_serve(tmp_path / "data", MOSIC_WORKERS=workers) as server:
        clip = server.upload(song, "audio/wav")
        sock, length, body = slow_listener(server, clip)
        while len(body) < 1024 * 1024:
            body += sock.recv(SLOW_READ_BYTES)
        server.proc.send_signal(signal.SIGTERM)
        wait_for("new connections to be refused", lambda: refuses_connections(server), 10)
        # Slowly, as a listener on a poor network: the rest arrives after the stop began.
        while server.proc.poll() is None and len(body) < length:
            body += sock.recv(SLOW_READ_BYTES)
            time.sleep(SLOW_READ_PAUSE_S)
        if server.proc.poll() is not None:
            body += what_is_left_after_exit(sock)
        sock.close()
        assert len(body) == length and body == song.read_bytes()
        server.proc.wait(timeout=30)
    assert "Traceback" not in server.output()
