"""The API description (``mosic/openapi.json``, served at ``/openapi.json``) is true to the app.

- it is a valid OpenAPI 3.1 document;
- every route and method of the app is in it, and nothing else;
- every documented operation answers on the live app with a status the document lists for it,
  a body that matches the documented schema and the headers it documents as required;
- every status the document lists is one the code really returns: ``CASES`` produces each;
- the Clip and Stats schemas have exactly the fields of real ones;
- documented limits are the code's constants, and the documented Link header leads on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

import falcon.testing
import pytest
from falcon.inspect import inspect_routes
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from mosic.api import params
from mosic.api.ops import load_openapi
from mosic.app import create_app
from mosic.core import audio, listing, plays, signing, text, waveform
from mosic.core.clip_rows import new_clip_row
from mosic.core.signing import Signer
from mosic.persistence.database import make_sync_database
from mosic.persistence.models import LIBRARY, TAG_MAX, TITLE_MAX, Clip
from mosic.settings import Settings
from tests.support.audio import undecodable_wav, wav_bytes
from tests.support.database import migrate
from tests.support.forms import multipart
from tests.support.tagging import image, tag_fully, tag_lyrics

API_KEY = "test-key"
SIGNING_SECRET = "test-signing-secret"
KEY = {"X-API-Key": API_KEY}
READ_KEY = "test-read-key"
READ = {"X-API-Key": READ_KEY}
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
BOUNDARY = "mosic-test-boundary"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
MAX_UPLOAD_MB = 1
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
UNKNOWN_SHARE = "NoShareHasThisId000000"


# -- building requests -----------------------------------------------------------------------


def form(fields: dict[str, str] | None = None, file: tuple[str, bytes] | None = None) -> bytes:
    """A multipart/form-data body with ``BOUNDARY``: text ``fields`` and one ``file`` part."""
    files = {"file": (*file, "application/octet-stream")} if file else None
    return multipart(fields, files, boundary=BOUNDARY)[0]


def new_clip_json(title: str = "Morning Birds") -> dict:
    return {"title": title, "duration": 184.32, "audio_url": "https://cdn.example/birds.mp3"}


def split_url(url: str) -> tuple[str, str]:
    path, _, query = url.partition("?")
    return path, query


def build_app(data_dir: Path, *, migrated: bool = True):
    settings = Settings(
        data_dir=data_dir,
        api_key=API_KEY,
        signing_secret=SIGNING_SECRET,
        max_upload_mb=MAX_UPLOAD_MB,
        read_api_keys=(READ_KEY,),
    )
    if migrated:
        migrate(settings)
    return settings, create_app(settings)


# -- reading the document --------------------------------------------------------------------


def resolve(document: dict, node: dict) -> dict:
    """Follow OpenAPI ``$ref``s (to responses, headers, parameters) within the document."""
    while "$ref" in node:
        pointer = node["$ref"].removeprefix("#/").split("/")
        keys = [key.replace("~1", "/").replace("~0", "~") for key in pointer]
        node = reduce(lambda obj, key: obj[key], keys, document)
    return node


def documented_operations(document: dict) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def documented_response(document: dict, path: str, method: str, status: int) -> dict | None:
    responses = document["paths"][path][method]["responses"]
    found = responses.get(str(status))
    return resolve(document, found) if found is not None else None


def schema_errors(document: dict, schema: dict, instance) -> list[str]:
    # Schema "$ref"s point into #/components, so they resolve against a root that has them.
    root = {"components": document["components"], "allOf": [schema]}
    validator = Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def media_type_matches(documented: str, actual: str) -> bool:
    if documented in ("*/*", actual):
        return True
    return documented.endswith("/*") and actual.startswith(documented[:-1])


def app_operations(asgi_app) -> set[tuple[str, str]]:
    operations = set()
    for route in inspect_routes(asgi_app):
        # Falcon's converters ({clip_id:uuid}) are not part of an OpenAPI path template.
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path)
        for responder in route.methods:
            if not responder.internal:  # Falcon's own OPTIONS and 405 responders
                operations.add((path, responder.method.lower()))
    return operations


# -- the apps under test ---------------------------------------------------------------------


@dataclass
class Live:
    """A migrated app with a catalogue to talk about."""

    client: falcon.testing.TestClient
    settings: Settings
    asgi: object
    external: dict = field(default_factory=dict)  # a metadata-only clip
    audio: dict = field(default_factory=dict)  # an uploaded clip
    gone: dict = field(default_factory=dict)  # an uploaded clip whose file was removed
    odd: dict = field(default_factory=dict)  # an uploaded clip FFmpeg cannot decode
    covered: dict = field(default_factory=dict)  # an uploaded clip with an embedded picture
    library: dict = field(default_factory=dict)  # a clip of a music folder, as a scan adds one
    sung: dict = field(default_factory=dict)  # an uploaded clip whose tags hold lyrics
    cover_etag: str = ""
    cover_last_modified: str = ""
    waveform_etag: str = ""
    wav: bytes = b""  # the bytes of ``audio``
    etag: str = ""
    last_modified: str = ""
    size: int = 0
    seed: int = 100
    listener_key: str = ""  # the key of the listener "kid"
    key_id: str = ""  # a key of "kid" that a case revokes
    share: str = ""  # a share of ``audio`` and ``covered``, by the admin
    gone_share: str = ""  # a share the admin deleted

    def new_share(self, clip_ids: list[str]) -> str:
        made = self.client.simulate_post("/shares", json={"clip_ids": clip_ids}, headers=KEY)
        assert made.status_code == 201, made.text
        return made.json["id"]

    def fresh_wav(self) -> bytes:
        self.seed += 1
        return wav_bytes(self.seed)

    def add_external(self) -> dict:
        result = self.client.simulate_post("/play", json=new_clip_json(), headers=KEY)
        assert result.status_code == 201, result.text
        return result.json

    def upload(self, data: bytes) -> dict:
        result = self.client.simulate_post(
            "/play/upload",
            body=form({"title": "A take"}, ("take.wav", data)),
            headers={**KEY, **MULTIPART},
        )
        assert result.status_code == 201, result.text
        return result.json


def library_clip(settings: Settings) -> dict:
    """A clip of a music folder, written as a scan writes one (its file is not needed to
    answer a PATCH or DELETE of it)."""
    sha = hashlib.sha256(b"a library file").hexdigest()
    row = new_clip_row(
        title="On the shelf", duration=1.0, source=LIBRARY, music_folder="Music",
        path="Shelf/On the shelf.wav", file_name=sha + ".wav", sha256=sha, size=14,
        content_type="audio/wav", media_version=1,
    )  # fmt: skip
    db = make_sync_database(settings)
    try:
        with db.bind_ctx([Clip]):
            Clip.insert(row).execute()
    finally:
        db.close()
    return {"id": str(row["id"])}


@pytest.fixture(scope="module")
def document() -> dict:
    return load_openapi()


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Live:
    settings, asgi = build_app(tmp_path_factory.mktemp("live"))
    app = Live(client=falcon.testing.TestClient(asgi), settings=settings, asgi=asgi)
    app.external = app.add_external()
    app.wav = wav_bytes(1)
    app.audio = app.upload(app.wav)
    gone_wav = wav_bytes(2)
    app.gone = app.upload(gone_wav)
    for stored in settings.media_root.rglob(hashlib.sha256(gone_wav).hexdigest() + "*"):
        stored.unlink()
    app.odd = app.upload(undecodable_wav())
    app.library = library_clip(settings)
    for name in ("kid", "leaver"):
        made = app.client.simulate_post("/users", json={"name": name}, headers=KEY)
        assert made.status_code == 201, made.text
        app.listener_key = app.listener_key or made.json["key"]["key"]
    made = app.client.simulate_post("/users/kid/keys", json={"scope": "read"}, headers=KEY)
    app.key_id = made.json["id"]
    head = app.client.simulate_head(app.audio["audio_url"], headers=KEY)
    assert head.status_code == 200, head.headers
    app.etag = head.headers["ETag"]
    app.covered = app.upload(wav_with_cover(tmp_path_factory.mktemp("cover")))
    app.sung = app.upload(wav_with_lyrics(tmp_path_factory.mktemp("sung")))
    app.share = app.new_share([app.audio["id"], app.covered["id"]])
    app.gone_share = app.new_share([app.audio["id"]])
    assert app.client.simulate_delete(f"/shares/{app.gone_share}", headers=KEY).status_code == 204
    cover = app.client.simulate_get(f"/play/{app.covered['id']}/cover", headers=KEY)
    assert cover.status_code == 200, cover.text
    app.cover_etag = cover.headers["ETag"]
    app.cover_last_modified = cover.headers["Last-Modified"]
    peaks = app.client.simulate_get(f"/play/{app.audio['id']}/waveform", headers=KEY)
    assert peaks.status_code == 200, peaks.text
    app.waveform_etag = peaks.headers["ETag"]
    app.last_modified = head.headers["Last-Modified"]
    app.size = int(head.headers["Content-Length"])
    return app


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> falcon.testing.TestClient:
    """An app whose database has no tables: every catalogue query fails as if it were down."""
    _, asgi = build_app(tmp_path_factory.mktemp("broken"), migrated=False)
    return falcon.testing.TestClient(asgi)


@pytest.fixture(scope="module")
def scanning(tmp_path_factory) -> falcon.testing.TestClient:
    """An app whose library scan lease another process holds (for a long while yet)."""
    settings, asgi = build_app(tmp_path_factory.mktemp("scanning"))
    migrate(settings, then="UPDATE library_scan SET scanning = 1, owner = 'elsewhere', "
            "lease_until = '2999-01-01 00:00:00'")  # fmt: skip
    return falcon.testing.TestClient(asgi)


@pytest.fixture(scope="module")
def busy(live) -> falcon.testing.TestClient:
    """The live app's catalogue, served by an app that may run no transcode at all."""
    return falcon.testing.TestClient(create_app(live.settings.replace(transcode_max=0)))


@pytest.fixture(scope="module")
def unready(tmp_path_factory) -> falcon.testing.TestClient:
    """An app whose media store cannot take writes."""
    settings, asgi = build_app(tmp_path_factory.mktemp("unready"))
    incoming = settings.media_root / ".incoming"
    incoming.rmdir()
    incoming.write_text("not a directory")
    return falcon.testing.TestClient(asgi)


def wav_with_lyrics(folder: Path) -> bytes:
    path = folder / "sung.wav"
    path.write_bytes(wav_bytes(8))
    return tag_lyrics(path, "wav", text="[00:00.10]la la").read_bytes()


def wav_with_cover(folder: Path) -> bytes:
    path = folder / "covered.wav"
    path.write_bytes(wav_bytes(7))
    tag_fully(path, "wav", picture=image(folder / "cover"))
    return path.read_bytes()


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """An app whose media store is a real tmpfs too small for any upload."""
    root = tmp_path_factory.mktemp("full")
    mount = root / "media"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", mount], check=True)
    try:
        settings = Settings(
            data_dir=root / "data", media_root=mount, api_key=API_KEY, signing_secret=SIGNING_SECRET
        )
        migrate(settings)
        yield falcon.testing.TestClient(create_app(settings))
    finally:
        subprocess.run(["umount", "-l", mount], check=True)


encode_json = json.dumps  # the simulate_request keyword ``json`` hides the module


class StallingClient:
    """Drives the app as a client that sends half of its request body and then nothing."""

    def __init__(self, asgi) -> None:
        self.asgi = asgi

    def simulate_request(self, method, path, *, headers, query_string="", body=b"", json=None):
        if json is not None:
            body = encode_json(json)
            headers = {**headers, "Content-Type": "application/json"}
        return asyncio.run(self._run(method, path, headers, query_string, body))

    async def _run(self, method, path, headers, query_string, body):
        body = body.encode() if isinstance(body, str) else body
        raw = [(k.lower().encode(), str(v).encode()) for k, v in headers.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query_string.encode(),
            "headers": raw,
            "root_path": "",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 9),
        }
        first = [{"type": "http.request", "body": body[: len(body) // 2], "more_body": True}]

        async def receive():
            if first:
                return first.pop()
            await asyncio.Event().wait()  # the rest never comes

        sent = []

        async def send(message):
            sent.append(message)

        await self.asgi(scope, receive, send)
        start = sent[0]
        headers = [(k.decode(), v.decode()) for k, v in start["headers"]]
        chunks = [m.get("body", b"") for m in sent[1:]]
        return falcon.testing.Result(chunks, falcon.code_to_http_status(start["status"]), headers)


@pytest.fixture(scope="module")
def stalled(tmp_path_factory) -> StallingClient:
    """An app with a short body timeout, driven by a client whose bodies stall."""
    data_dir = tmp_path_factory.mktemp("stalled")
    settings = Settings(
        data_dir=data_dir, api_key=API_KEY, signing_secret=SIGNING_SECRET, body_timeout_s=0.2
    )
    migrate(settings)
    return StallingClient(create_app(settings))


# -- what to send ----------------------------------------------------------------------------

# Upload bodies (``form=``), built per request from the live app's state.
FORMS: dict[str, Callable[[Live], bytes]] = {
    "fresh": lambda c: form({"description": "take two"}, ("take.wav", c.fresh_wav())),
    "duplicate": lambda c: form(file=("again.wav", c.wav)),
    "too large": lambda c: form(file=("big.wav", wav_bytes(3, frames=2**19 * MAX_UPLOAD_MB))),
    "not audio": lambda c: form(file=("song.mp3", b"not audio at all")),
    "no file": lambda c: form({"title": "no file here"}),
    "garbage": lambda c: b"garbage",
}


@dataclass(frozen=True)
class Case:
    """One request to one documented operation, and the status it must get.

    ``clip`` picks the id put in the path: a clip of the live app (audio, external, gone), a
    fresh one made for this request (new, new upload), an unknown UUID, or a literal string.
    ``link`` opens the stream with a signed link instead of the key: the clip's own, an
    expired one, or another clip's. ``{etag}``, ``{last_modified}`` and ``{size}`` in header
    values are those of the uploaded clip.
    """

    name: str
    operation: str  # "METHOD /documented/path"
    status: int
    clip: str = "audio"
    query: str = ""
    key: bool = True
    headers: dict = field(default_factory=dict)
    json: object = None
    body: str | None = None
    form: str | None = None
    link: str | None = None
    # "live", "broken" (no tables), "unready" (media not writable), "busy", "scanning" (a scan
    # holds the lease), "full" (no space left) or "stalled" (the client stops sending its
    # body halfway)
    app: str = "live"
    file: str = "player.js"  # the {name} of a web player file
    rest: str = "ping"  # the Subsonic method put in /rest/{method}; "{clip_id}" in ``query``
    warm: bool = False  # sent once before, so a rendition it asks for is cached
    key_id: str = ""  # the {key_id} in the path; "" for the key the live app made to revoke
    share: str = "open"  # the {share_id}: the live app's "open" or "gone" share, a "new" one

    def share_id(self, ctx: Live) -> str:
        shares = {"open": ctx.share, "gone": ctx.gone_share, "unknown": UNKNOWN_SHARE}
        if self.share == "new":
            return ctx.new_share([ctx.audio["id"]])
        return shares.get(self.share, self.share)

    @property
    def method(self) -> str:
        return self.operation.split()[0].lower()

    @property
    def path(self) -> str:
        return self.operation.split()[1]

    def request(self, ctx: Live) -> dict:
        clips = {
            "audio": ctx.audio,
            "external": ctx.external,
            "gone": ctx.gone,
            "odd": ctx.odd,
            "covered": ctx.covered,
            "library": ctx.library,
            "sung": ctx.sung,
        }
        if self.clip in clips:
            clip_id = clips[self.clip]["id"]
        elif self.clip == "new":
            clip_id = ctx.add_external()["id"]
        elif self.clip == "new upload":
            clip_id = ctx.upload(ctx.fresh_wav())["id"]
        else:
            clip_id = UNKNOWN_ID if self.clip == "unknown" else self.clip
        query = self.query
        if self.link == "signed":
            query = "&".join(filter(None, (split_url(clips[self.clip]["stream_url"])[1], query)))
        elif self.link == "signed cover":
            query = split_url(clips[self.clip]["cover_url"])[1]
        elif self.link == "expired":
            resource = signing.COVER if self.path.endswith("/cover") else signing.STREAM
            query = Signer(SIGNING_SECRET, 60).query(
                clip_id, now=time.time() - 3600, resource=resource
            )
        elif self.link == "other clip's":
            assert self.clip != "audio"
            query = split_url(ctx.audio["stream_url"])[1]
        values = {
            "etag": ctx.etag,
            "last_modified": ctx.last_modified,
            "size": ctx.size,
            "cover_etag": ctx.cover_etag,
            "cover_last_modified": ctx.cover_last_modified,
            "waveform_etag": ctx.waveform_etag,
            "listener_key": ctx.listener_key,
        }
        headers = {name: value.format(**values) for name, value in self.headers.items()}
        if self.key and self.link is None:
            headers.update(KEY)
        path = self.path.replace("{clip_id}", clip_id).replace("{name}", self.file)
        path = path.replace("{method}", self.rest).replace("{key_id}", self.key_id or ctx.key_id)
        path = path.replace("{share_id}", self.share_id(ctx))
        kwargs: dict = {"path": path, "query_string": query.replace("{clip_id}", clip_id)}
        if self.json is not None:  # "{clip_id}" in it is the clip's id
            kwargs["json"] = json.loads(json.dumps(self.json).replace("{clip_id}", clip_id))
        if self.body is not None:
            kwargs["body"] = self.body
        if self.form is not None:
            kwargs["body"] = FORMS[self.form](ctx)
            headers.update(MULTIPART)
        return {**kwargs, "headers": headers}


NEW = new_clip_json()
LISTENER = {"X-API-Key": "{listener_key}"}
JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain"}


def user_cases() -> list[Case]:
    me, users, user = "GET /me", "/users", "/users/{name}"
    keys, key = "/users/{name}/keys", "/users/{name}/keys/{key_id}"
    no_key, listener, down = {"key": False}, {"key": False, "headers": LISTENER}, {"app": "broken"}
    big, text = {"headers": JSON, "body": " " * 65537}, {"headers": TEXT, "body": "x"}
    return [
        Case("me", me, 200),
        Case("me, listener", me, 200, **listener),
        Case("me, no key", me, 401, **no_key),
        Case("me, database down", me, 503, **listener, **down),
        Case("history", "GET /me/history", 200, query="limit=10"),
        Case("history, bad cursor", "GET /me/history", 400, query="cursor=nope"),
        Case("history, no key", "GET /me/history", 401, **no_key),
        Case("history, database down", "GET /me/history", 503, **listener, **down),
        Case("users", f"GET {users}", 200),
        Case("users, read-only key", f"GET {users}", 200, key=False, headers=READ),
        Case("users, no key", f"GET {users}", 401, **no_key),
        Case("users, listener", f"GET {users}", 403, **listener),
        Case("users, database down", f"GET {users}", 503, **down),
        Case("add user", f"POST {users}", 201, json={"name": "Newbie", "music_folders": None}),
        Case("add user, bad name", f"POST {users}", 400, json={"name": "a/b"}),
        Case("add user, no key", f"POST {users}", 401, **no_key, json={"name": "x"}),
        Case("add user, listener", f"POST {users}", 403, **listener, json={"name": "x"}),
        Case("add user, taken name", f"POST {users}", 409, json={"name": "KID"}),
        Case("add user, too large", f"POST {users}", 413, **big),
        Case("add user as text", f"POST {users}", 415, **text),
        Case("add user, database down", f"POST {users}", 503, json={"name": "x"}, **down),
        Case("user", f"GET {user}", 200, file="Kid"),
        Case("user, no key", f"GET {user}", 401, file="kid", **no_key),
        Case("user, listener", f"GET {user}", 403, file="kid", **listener),
        Case("user unknown", f"GET {user}", 404, file="nobody"),
        Case("user, database down", f"GET {user}", 503, file="kid", **down),
        Case("change user", f"PATCH {user}", 200, file="kid", json={"role": "listener"}),
        Case("change user, bad role", f"PATCH {user}", 400, file="kid", json={"role": "x"}),
        Case("change user, no key", f"PATCH {user}", 401, file="kid", **no_key, json={}),
        Case("change user, listener", f"PATCH {user}", 403, file="kid", **listener, json={}),
        Case("change user unknown", f"PATCH {user}", 404, file="nobody", json={}),
        Case("demote the admin", f"PATCH {user}", 409, file="mosic", json={"role": "listener"}),
        Case("change user, too large", f"PATCH {user}", 413, file="kid", **big),
        Case("change user as text", f"PATCH {user}", 415, file="kid", **text),
        Case("change user, database down", f"PATCH {user}", 503, file="kid", json={}, **down),
        Case("remove user", f"DELETE {user}", 204, file="leaver"),
        Case("remove user, no key", f"DELETE {user}", 401, file="kid", **no_key),
        Case("remove user, listener", f"DELETE {user}", 403, file="kid", **listener),
        Case("remove user unknown", f"DELETE {user}", 404, file="nobody"),
        Case("remove the admin", f"DELETE {user}", 409, file="mosic"),
        Case("remove user, database down", f"DELETE {user}", 503, file="kid", **down),
        Case("keys", f"GET {keys}", 200, file="kid"),
        Case("keys, no key", f"GET {keys}", 401, file="kid", **no_key),
        Case("keys, listener", f"GET {keys}", 403, file="kid", **listener),
        Case("keys unknown user", f"GET {keys}", 404, file="nobody"),
        Case("keys, database down", f"GET {keys}", 503, file="kid", **down),
        Case("new key", f"POST {keys}", 201, file="kid", json={"scope": "read"}),
        Case("new key, bad scope", f"POST {keys}", 400, file="kid", json={"scope": "all"}),
        Case("new key, no key", f"POST {keys}", 401, file="kid", **no_key, json={}),
        Case("new key, listener", f"POST {keys}", 403, file="kid", **listener, json={}),
        Case("new key, unknown user", f"POST {keys}", 404, file="nobody", json={}),
        Case("new key, too large", f"POST {keys}", 413, file="kid", **big),
        Case("new key as text", f"POST {keys}", 415, file="kid", **text),
        Case("new key, database down", f"POST {keys}", 503, file="kid", json={}, **down),
        Case("revoke key", f"DELETE {key}", 204, file="kid"),
        Case("revoke key, no key", f"DELETE {key}", 401, file="kid", **no_key),
        Case("revoke key, listener", f"DELETE {key}", 403, file="kid", **listener),
        Case("revoke unknown key", f"DELETE {key}", 404, file="kid", key_id="nope"),
        Case("revoke key, database down", f"DELETE {key}", 503, file="kid", **down),
    ]


def stream_cases(method: str) -> list[Case]:
    op = f"{method} /play/{{clip_id}}/stream"
    return [
        Case(f"{method} whole file", op, 200),
        Case(f"{method} by signed link", op, 200, link="signed"),
        Case(f"{method} invalid Range is ignored", op, 200, headers={"Range": "bytes=5-2"}),
        Case(f"{method} stale If-Range", op, 200, headers={"Range": "bytes=9-", "If-Range": '"x"'}),
        Case(f"{method} probe", op, 206, headers={"Range": "bytes=0-1"}),
        Case(f"{method} seek", op, 206, link="signed", headers={"Range": "bytes=100-"}),
        Case(f"{method} suffix", op, 206, headers={"Range": "bytes=-10"}),
        Case(f"{method} If-None-Match", op, 304, headers={"If-None-Match": "{etag}"}),
        Case(
            f"{method} If-Modified-Since", op, 304, headers={"If-Modified-Since": "{last_modified}"}
        ),
        Case(f"{method} metadata-only", op, 307, clip="external"),
        Case(f"{method} metadata-only, signed", op, 307, clip="external", link="signed"),
        Case(f"{method} no key", op, 401, key=False),
        Case(f"{method} wrong key", op, 401, key=False, headers={"X-API-Key": "nope"}),
        Case(f"{method} bad signature", op, 403, query="expires=9999999999&sig=00"),
        Case(f"{method} expires alone", op, 403, query="expires=9999999999"),
        Case(f"{method} expired link", op, 403, link="expired"),
        Case(f"{method} other clip's link", op, 403, clip="external", link="other clip's"),
        Case(f"{method} unknown clip", op, 404, clip="unknown"),
        Case(f"{method} malformed id", op, 404, clip="not-a-uuid"),
        Case(f"{method} audio file gone", op, 404, clip="gone"),
        Case(f"{method} range past the end", op, 416, headers={"Range": "bytes={size}-"}),
        Case(f"{method} database down", op, 503, clip="unknown", app="broken"),
    ]


def subsonic_cases(method: str) -> list[Case]:
    op = f"{method} /rest/{{method}}"
    key = f"apiKey={API_KEY}"
    stream = f"{key}&id={{clip_id}}"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases = [
        Case(f"subsonic {method} ping", op, 200, key=False, query=f"{key}&f=json"),
        Case(f"subsonic {method} ping.view, XML", op, 200, key=False, rest="ping.view", query=key),
        Case(f"subsonic {method} failed call", op, 200, key=False, query="apiKey=nope&f=json"),
        Case(f"subsonic {method} stream", op, 200, key=False, rest="stream", query=stream),
        Case(
            f"subsonic {method} stream from an offset",
            op,
            200,
            key=False,
            rest="stream",
            query=f"{stream}&format=opus&timeOffset=0.5",
        ),
        Case(
            f"subsonic {method} stream a range",
            op,
            206,
            key=False,
            rest="stream.view",
            query=stream,
            headers={"Range": "bytes=5-"},
        ),
        Case(
            f"subsonic {method} stream If-None-Match",
            op,
            304,
            key=False,
            rest="download",
            query=stream,
            headers={"If-None-Match": "{etag}"},
        ),
        Case(f"subsonic {method} unknown method", op, 404, key=False, rest="x", query=key),
        Case(
            f"subsonic {method} range past the end",
            op,
            416,
            key=False,
            rest="stream",
            query=stream,
            headers={"Range": "bytes={size}-"},
        ),
        Case(
            f"subsonic {method} database down",
            op,
            503,
            key=False,
            rest="getSong",
            query=f"{key}&id={UNKNOWN_ID}",
            app="broken",
        ),
    ]
    if method == "POST":
        cases += [
            Case("subsonic POST form", op, 200, key=False, headers=form, body=f"{key}&f=json"),
            Case("subsonic POST form not UTF-8", op, 400, key=False, headers=form, body="%ff"),
            Case(
                "subsonic POST form too large",
                op,
                413,
                key=False,
                headers=form,
                body="id=" + "x" * 2**20,
            ),
        ]
    return cases


def rendition_cases(method: str) -> list[Case]:
    """Transcoded streams; each asks for a bitrate of its own, so which are cached is set by
    ``warm`` alone."""
    op = f"{method} /play/{{clip_id}}/stream"
    k = 0 if method == "GET" else 1
    return [
        Case(f"{method} rendition being made", op, 200, query=f"format=opus&bitrate={40 + k}"),
        Case(
            f"{method} rendition, cached", op, 200, query=f"format=mp3&bitrate={40 + k}", warm=True
        ),
        Case(
            f"{method} rendition by link",
            op,
            200,
            link="signed",
            query=f"format=mp3&bitrate={80 + k}",
        ),
        Case(
            f"{method} rendition range",
            op,
            206,
            query=f"format=mp3&bitrate={48 + k}",
            warm=True,
            headers={"Range": "bytes=10-"},
        ),
        Case(f"{method} rendition from an offset", op, 200, query="format=mp3&offset=0.5"),
        Case(f"{method} offset past the end", op, 200, query="format=opus&offset=3600"),
        Case(f"{method} unknown format", op, 400, query="format=flac"),
        Case(f"{method} bitrate out of range", op, 400, query="format=opus&bitrate=8"),
        Case(f"{method} offset without format", op, 400, query="offset=1"),
        Case(f"{method} negative offset", op, 400, query="format=mp3&offset=-1"),
        Case(f"{method} rendition of metadata-only", op, 404, clip="external", query="format=mp3"),
    ]


def cover_cases() -> list[Case]:
    op = "GET /play/{clip_id}/cover"
    return [
        Case("cover", op, 200, clip="covered"),
        Case("cover by signed link", op, 200, clip="covered", link="signed cover"),
        Case(
            "cover If-None-Match",
            op,
            304,
            clip="covered",
            headers={"If-None-Match": "{cover_etag}"},
        ),
        Case(
            "cover If-Modified-Since",
            op,
            304,
            clip="covered",
            headers={"If-Modified-Since": "{cover_last_modified}"},
        ),
        Case("cover, no key", op, 401, clip="covered", key=False),
        Case("cover by the stream's link", op, 403, clip="covered", link="signed"),
        Case("cover, expired link", op, 403, clip="covered", link="expired"),
        Case("cover of a file without one", op, 404),
        Case("cover of a metadata-only clip", op, 404, clip="external"),
        Case("cover, unknown clip", op, 404, clip="unknown"),
        Case("cover, database down", op, 503, clip="unknown", app="broken"),
    ]


def waveform_cases() -> list[Case]:
    op = "GET /play/{clip_id}/waveform"
    return [
        Case("waveform", op, 200),
        Case("waveform, 50 points as .dat", op, 200, query="points=50&format=dat"),
        Case("waveform If-None-Match", op, 304, headers={"If-None-Match": "{waveform_etag}"}),
        Case(
            "waveform If-Modified-Since", op, 304, headers={"If-Modified-Since": "{last_modified}"}
        ),
        Case("waveform, 0 points", op, 400, query="points=0"),
        Case("waveform, unknown format", op, 400, query="format=svg"),
        Case("waveform, no key", op, 401, key=False),
        Case("waveform of a metadata-only clip", op, 404, clip="external"),
        Case("waveform, unknown clip", op, 404, clip="unknown"),
        Case("waveform, database down", op, 503, clip="unknown", app="broken"),
    ]


def lyrics_cases() -> list[Case]:
    op = "GET /play/{clip_id}/lyrics"
    return [
        Case("lyrics", op, 200, clip="sung"),
        Case("lyrics, no key", op, 401, clip="sung", key=False),
        Case("lyrics of a clip without any", op, 404),
        Case("lyrics of a metadata-only clip", op, 404, clip="external"),
        Case("lyrics, unknown clip", op, 404, clip="unknown"),
        Case("lyrics, database down", op, 503, clip="unknown", app="broken"),
    ]


def share_cases() -> list[Case]:
    shares, share = "/shares", "/shares/{share_id}"
    page, songs = "GET /share/{share_id}", "GET /share/{share_id}/songs"
    cover = "GET /share/{share_id}/cover/{clip_id}"
    no_key, listener, down = {"key": False}, {"key": False, "headers": LISTENER}, {"app": "broken"}
    big, text = {"headers": JSON, "body": " " * 65537}, {"headers": TEXT, "body": "x"}
    songs_of = {"clip_ids": ["{clip_id}"], "description": "For you"}
    expired = {**songs_of, "expires_at": "2001-01-01T00:00:00Z"}
    changes = {"description": "x", "expires_at": None}
    unknown = {"share": "unknown"}
    return [
        Case("shares", f"GET {shares}", 200),
        Case("shares, no key", f"GET {shares}", 401, **no_key),
        Case("shares, database down", f"GET {shares}", 503, **down),
        Case("share songs", f"POST {shares}", 201, json=songs_of),
        Case("share no songs", f"POST {shares}", 400, json={"clip_ids": []}),
        Case("share, past expiry", f"POST {shares}", 400, json=expired),
        Case("share, no key", f"POST {shares}", 401, json=songs_of, **no_key),
        Case("share, read-only key", f"POST {shares}", 403, json=songs_of, key=False, headers=READ),
        Case("share an unknown clip", f"POST {shares}", 404, json={"clip_ids": [UNKNOWN_ID]}),
        Case("share a metadata-only clip", f"POST {shares}", 404, clip="external", json=songs_of),
        Case("share, too large", f"POST {shares}", 413, **big),
        Case("share as text", f"POST {shares}", 415, **text),
        Case("share, database down", f"POST {shares}", 503, json=songs_of, **down),
        Case("a share", f"GET {share}", 200),
        Case("a share, no key", f"GET {share}", 401, **no_key),
        Case("a share, another's", f"GET {share}", 403, **listener),
        Case("a deleted share", f"GET {share}", 404, share="gone"),
        Case("a share, database down", f"GET {share}", 503, **unknown, **down),
        Case("change a share", f"PATCH {share}", 200, json=changes),
        Case("change a share, bad expiry", f"PATCH {share}", 400, json={"expires_at": "soon"}),
        Case("change a share, no key", f"PATCH {share}", 401, json={}, **no_key),
        Case("change another's share", f"PATCH {share}", 403, json={}, **listener),
        Case("change an unknown share", f"PATCH {share}", 404, json={}, **unknown),
        Case("change a share, too large", f"PATCH {share}", 413, **big),
        Case("change a share as text", f"PATCH {share}", 415, **text),
        Case("change a share, database down", f"PATCH {share}", 503, json={}, **unknown, **down),
        Case("delete a share", f"DELETE {share}", 204, share="new"),
        Case("delete a share, no key", f"DELETE {share}", 401, **no_key),
        Case("delete another's share", f"DELETE {share}", 403, **listener),
        Case("delete a deleted share", f"DELETE {share}", 404, share="gone"),
        Case("delete a share, database down", f"DELETE {share}", 503, **unknown, **down),
        Case("share page", page, 200, key=False),
        Case("share page, unknown", page, 404, key=False, **unknown),
        Case("share page, gone", page, 410, key=False, share="gone"),
        Case("share page, database down", page, 503, key=False, **unknown, **down),
        Case("shared songs", songs, 200, key=False),
        Case("shared songs, unknown", songs, 404, key=False, share="not a share id"),
        Case("shared songs, gone", songs, 410, key=False, share="gone"),
        Case("shared songs, database down", songs, 503, key=False, **unknown, **down),
        Case("shared cover", cover, 200, key=False, clip="covered"),
        Case("shared cover If-None-Match", cover, 304, key=False, clip="covered",
             headers={"If-None-Match": "{cover_etag}"}),
        Case("shared cover of a file without one", cover, 404, key=False),
        Case("shared cover, gone", cover, 410, key=False, share="gone", clip="covered"),
        Case("shared cover, database down", cover, 503, key=False, **unknown, **down),
    ]  # fmt: skip


def shared_stream_cases(method: str) -> list[Case]:
    op = f"{method} /share/{{share_id}}/stream/{{clip_id}}"
    public = {"key": False}
    return [
        Case(f"{method} shared song", op, 200, **public),
        Case(f"{method} shared song, a range", op, 206, **public, headers={"Range": "bytes=10-"}),
        Case(f"{method} shared song If-None-Match", op, 304, **public,
             headers={"If-None-Match": "{etag}"}),
        Case(f"{method} a song not in the share", op, 404, **public, clip="external"),
        Case(f"{method} shared song, gone", op, 410, **public, share="gone"),
        Case(f"{method} shared song, range past the end", op, 416, **public,
             headers={"Range": "bytes={size}-"}),
        Case(f"{method} shared song, database down", op, 503, **public, share="unknown",
             app="broken"),
    ]  # fmt: skip


CASES: list[Case] = [
    Case("list", "GET /play", 200),
    Case("list a page", "GET /play", 200, query="limit=1&sort=title&q=a"),
    Case("list, limit 0", "GET /play", 400, query="limit=0"),
    Case("list, offset and cursor", "GET /play", 400, query="offset=1&cursor=abc"),
    Case("list, unknown sort", "GET /play", 400, query="sort=size"),
    Case("list by tags", "GET /play", 200, query="genre=jazz&artist=a&album=b&year=2021"),
    Case("list, year not a number", "GET /play", 400, query="year=MMXXI"),
    Case("list, foreign cursor", "GET /play", 400, query="cursor=not-ours"),
    Case("list, no key", "GET /play", 401, key=False),
    Case("list, database down", "GET /play", 503, app="broken"),
    Case("add metadata-only", "POST /play", 201, json=NEW),
    Case("add by upload", "POST /play", 201, form="fresh"),
    Case("add without title", "POST /play", 400, json={**NEW, "title": None}),
    Case("add with ftp URL", "POST /play", 400, json={**NEW, "audio_url": "ftp://x.test/a"}),
    Case("add with unknown field", "POST /play", 400, json={**NEW, "genre": "jazz"}),
    Case("add with invalid JSON", "POST /play", 400, headers=JSON, body="{"),
    Case("add, no key", "POST /play", 401, key=False, json=NEW),
    Case("add, body stalls", "POST /play", 408, json=NEW, app="stalled"),
    Case("add, read-only key", "POST /play", 403, key=False, headers=READ, json=NEW),
    Case("add duplicate upload", "POST /play", 409, form="duplicate"),
    Case("add too large upload", "POST /play", 413, form="too large"),
    Case("add too large JSON", "POST /play", 413, headers=JSON, body=" " * 65537),
    Case("add too deep JSON", "POST /play", 400, headers=JSON, body="[" * 33 + "]" * 33),
    Case("add as text", "POST /play", 415, headers=TEXT, body="hello"),
    Case("add upload of text", "POST /play", 415, form="not audio"),
    Case("add, database down", "POST /play", 503, json=NEW, app="broken"),
    Case("add upload, disk full", "POST /play", 507, form="fresh", app="full"),
    Case("upload", "POST /play/upload", 201, form="fresh"),
    Case("upload without file", "POST /play/upload", 400, form="no file"),
    Case("upload, malformed form", "POST /play/upload", 400, form="garbage"),
    Case("upload, no key", "POST /play/upload", 401, key=False, form="duplicate"),
    Case("upload, body stalls", "POST /play/upload", 408, form="fresh", app="stalled"),
    Case("upload, read-only key", "POST /play/upload", 403, key=False, headers=READ, form="fresh"),
    Case("upload duplicate", "POST /play/upload", 409, form="duplicate"),
    Case("upload too large", "POST /play/upload", 413, form="too large"),
    Case("upload as JSON", "POST /play/upload", 415, json=NEW),
    Case("upload of text", "POST /play/upload", 415, form="not audio"),
    Case("upload, database down", "POST /play/upload", 503, form="duplicate", app="broken"),
    Case("upload, disk full", "POST /play/upload", 507, form="fresh", app="full"),
    Case("get", "GET /play/{clip_id}", 200),
    Case("get, no key", "GET /play/{clip_id}", 401, key=False),
    Case("get unknown", "GET /play/{clip_id}", 404, clip="unknown"),
    Case("get malformed id", "GET /play/{clip_id}", 404, clip="123"),
    Case("get, database down", "GET /play/{clip_id}", 503, clip="unknown", app="broken"),
    Case("patch", "PATCH /play/{clip_id}", 200, clip="new", json={"title": "B", "description": ""}),
    Case("patch nothing", "PATCH /play/{clip_id}", 200, json={}),
    Case("patch empty title", "PATCH /play/{clip_id}", 400, json={"title": "  "}),
    Case("patch duration", "PATCH /play/{clip_id}", 400, json={"duration": 3}),
    Case("patch, no key", "PATCH /play/{clip_id}", 401, key=False, json={"title": "x"}),
    Case("patch, body stalls", "PATCH /play/{clip_id}", 408, json={"title": "x"}, app="stalled"),
    Case("patch, read-only key", "PATCH /play/{clip_id}", 403, key=False, headers=READ, json={}),
    Case("patch unknown", "PATCH /play/{clip_id}", 404, clip="unknown", json={"title": "x"}),
    Case("patch too large", "PATCH /play/{clip_id}", 413, headers=JSON, body=" " * 65537),
    Case("patch as text", "PATCH /play/{clip_id}", 415, headers=TEXT, body="title=x"),
    Case("patch, database down", "PATCH /play/{clip_id}", 503, json={"title": "x"}, app="broken"),
    Case("patch library clip", "PATCH /play/{clip_id}", 409, clip="library", json={"title": "x"}),
    Case("delete library clip", "DELETE /play/{clip_id}", 409, clip="library"),
    Case("delete", "DELETE /play/{clip_id}", 204, clip="new"),
    Case("delete uploaded", "DELETE /play/{clip_id}", 204, clip="new upload"),
    Case("delete, no key", "DELETE /play/{clip_id}", 401, key=False),
    Case("delete, read-only key", "DELETE /play/{clip_id}", 403, key=False, headers=READ),
    Case("delete unknown", "DELETE /play/{clip_id}", 404, clip="unknown"),
    Case("delete, database down", "DELETE /play/{clip_id}", 503, clip="unknown", app="broken"),
    Case("stats", "GET /play/{clip_id}/stats", 200),
    Case("stats, read-only key", "GET /play/{clip_id}/stats", 200, key=False, headers=READ),
    Case("stats, no key", "GET /play/{clip_id}/stats", 401, key=False),
    Case("stats unknown", "GET /play/{clip_id}/stats", 404, clip="unknown"),
    Case("stats, database down", "GET /play/{clip_id}/stats", 503, clip="unknown", app="broken"),
    Case("scan status", "GET /library/scan", 200),
    Case("scan status, no key", "GET /library/scan", 401, key=False),
    Case("scan status, database down", "GET /library/scan", 503, app="broken"),
    Case("start a scan", "POST /library/scan", 202),
    Case("start a scan, no key", "POST /library/scan", 401, key=False),
    Case("start a scan, read-only key", "POST /library/scan", 403, key=False, headers=READ),
    Case("start a scan while one runs", "POST /library/scan", 409, app="scanning"),
    Case("start a scan, listener", "POST /library/scan", 403, key=False, headers=LISTENER),
    Case(
        "patch, another's upload",
        "PATCH /play/{clip_id}",
        403,
        key=False,
        headers=LISTENER,
        json={"title": "mine now"},
    ),  # fmt: skip
    Case("delete, another's upload", "DELETE /play/{clip_id}", 403, key=False, headers=LISTENER),
    *user_cases(),
    Case("start a scan, database down", "POST /library/scan", 503, app="broken"),
    *stream_cases("GET"),
    *stream_cases("HEAD"),
    *rendition_cases("GET"),
    *rendition_cases("HEAD"),
    Case(
        "GET rendition of undecodable audio",
        "GET /play/{clip_id}/stream",
        422,
        clip="odd",
        query="format=opus",
    ),
    Case(
        "GET rendition, transcoders busy",
        "GET /play/{clip_id}/stream",
        503,
        query="format=opus&bitrate=56",
        app="busy",
    ),
    *cover_cases(),
    *waveform_cases(),
    *lyrics_cases(),
    *share_cases(),
    *shared_stream_cases("GET"),
    *shared_stream_cases("HEAD"),
    Case("healthz", "GET /healthz", 200, key=False),
    Case("healthz, database down", "GET /healthz", 200, key=False, app="broken"),
    Case("readyz", "GET /readyz", 200, key=False),
    Case("readyz, media not writable", "GET /readyz", 503, key=False, app="unready"),
    Case("metrics", "GET /metrics", 200, key=False),
    Case("metrics, database down", "GET /metrics", 200, key=False, app="broken"),
    Case("openapi", "GET /openapi.json", 200, key=False),
    Case("web player", "GET /", 200, key=False),
    Case("web player, cached", "GET /", 304, key=False, headers={"If-None-Match": "*"}),
    Case("player script", "GET /web/{name}", 200, key=False),
    Case("player style", "GET /web/{name}", 200, key=False, file="player.css"),
    Case("player icon", "GET /web/{name}", 200, key=False, file="icon.svg"),
    Case("player file, cached", "GET /web/{name}", 304, key=False, headers={"If-None-Match": "*"}),
    Case("player file unknown", "GET /web/{name}", 404, key=False, file="nope.js"),
    *subsonic_cases("GET"),
    *subsonic_cases("POST"),
]


# -- the tests -------------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1.")
    validate(document)  # raises on the first problem


def test_the_served_document_is_the_file(live, document):
    result = live.client.simulate_get("/openapi.json")
    assert result.status_code == 200
    assert result.json == document
    source = Path(__file__).parents[1] / "mosic" / "api" / "openapi.json"
    assert document == json.loads(source.read_text(encoding="utf-8"))


def test_every_route_and_method_is_documented(live, document):
    routes = app_operations(live.asgi)
    assert routes, "inspect_routes found no routes"
    documented = documented_operations(document)
    assert sorted(routes - documented) == [], "routes missing from openapi.json"
    assert sorted(documented - routes) == [], "documented operations the app does not have"


def test_every_documented_status_is_produced_by_a_case(document):
    documented = {
        (path, method, int(status))
        for path, method in documented_operations(document)
        for status in document["paths"][path][method]["responses"]
    }
    exercised = {(case.path, case.method, case.status) for case in CASES}
    assert sorted(documented - exercised) == [], "documented statuses that no case produces"
    assert sorted(exercised - documented) == [], "statuses the app returns but the doc omits"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_operation_answers_as_documented(
    case, document, live, broken, unready, busy, full, stalled, scanning
):
    clients = {"live": live.client, "broken": broken, "unready": unready, "busy": busy}
    client = {**clients, "full": full, "stalled": stalled, "scanning": scanning}[case.app]
    request = case.request(live)
    if case.warm:
        warming = {
            **request,
            "headers": {k: v for k, v in request["headers"].items() if k != "Range"},
        }
        assert client.simulate_get(**warming).status_code == 200
    result = client.simulate_request(case.method.upper(), **request)

    assert result.status_code < 500 or case.status >= 500, result.text
    assert result.status_code == case.status, result.text
    response = documented_response(document, case.path, case.method, result.status_code)
    assert response is not None, f"{result.status_code} is not documented for {case.method}"

    for name, header in response.get("headers", {}).items():
        if resolve(document, header).get("required"):
            assert name in result.headers, f"documented header {name} is missing"

    content = response.get("content")
    if not content or case.method == "head":
        assert result.content == b"", "a body where the document describes none"
        return
    media_type = result.headers.get("Content-Type", "").split(";")[0].strip()
    assert any(media_type_matches(documented, media_type) for documented in content), (
        f"Content-Type {media_type!r} is not one of {sorted(content)}"
    )
    if media_type == "application/json":
        schema = next(c["schema"] for m, c in content.items() if media_type_matches(m, media_type))
        assert schema_errors(document, schema, result.json) == []


def clip_schema(document: dict) -> dict:
    return document["components"]["schemas"]["Clip"]


def test_clip_schema_has_the_fields_of_a_real_clip(live, document):
    schema = clip_schema(document)
    listed = live.client.simulate_get("/play", headers=KEY).json
    for clip in (live.external, live.audio, *listed):
        assert set(schema["properties"]) == set(clip)
        assert set(schema["required"]) == set(clip)  # every field is always there
        assert schema_errors(document, schema, clip) == []


def test_stats_schema_has_the_fields_of_real_stats(live, document):
    stats = live.client.simulate_get(f"/play/{live.audio['id']}/stats", headers=KEY).json
    parts = [
        resolve(document, part) for part in document["components"]["schemas"]["Stats"]["allOf"]
    ]
    assert set().union(*(part["properties"] for part in parts)) == set(stats)
    assert set().union(*(part["required"] for part in parts)) == set(stats)


def test_metadata_only_clips_are_nullable_where_the_schema_says(live, document):
    properties = clip_schema(document)["properties"]
    nullable = {name for name, prop in properties.items() if isinstance(prop["type"], list)}
    assert all("null" in properties[name]["type"] for name in nullable)
    nulls = {name for name, value in live.external.items() if value is None}
    assert nulls <= nullable
    assert {"content_type", "size"} <= nulls  # a metadata-only clip has no stored file


def test_documented_limits_are_the_codes_constants(document):
    components = document["components"]
    limit = components["parameters"]["Limit"]["schema"]
    assert (limit["maximum"], limit["default"]) == (params.LIMIT_MAX, 100)
    sort = components["parameters"]["Sort"]["schema"]
    assert set(sort["enum"]) == {s + f for f in listing.SORT_FIELDS for s in ("", "-")}
    assert sort["default"] == listing.DEFAULT_SORT
    new_clip = components["schemas"]["NewClip"]["properties"]
    assert new_clip["title"]["maxLength"] == TITLE_MAX
    assert new_clip["description"]["maxLength"] == text.DESCRIPTION_MAX
    assert new_clip["artist"]["maxLength"] == new_clip["album"]["maxLength"] == TAG_MAX
    assert new_clip["audio_url"]["maxLength"] == params.URL_MAX
    assert set(new_clip) == params.JSON_CLIP_FIELDS
    assert set(components["schemas"]["ClipChanges"]["properties"]) == params.PATCH_FIELDS
    stream = document["paths"]["/play/{clip_id}/stream"]["get"]["description"]
    assert f"byte {plays.PROBE_END_BEFORE}" in stream  # the probe rule's threshold
    points = next(
        p for p in document["paths"]["/play/{clip_id}/waveform"]["parameters"]
        if p.get("name") == "points"
    )["schema"]  # fmt: skip
    assert (points["maximum"], points["default"]) == (waveform.POINTS_MAX, waveform.DEFAULT_POINTS)
    year = components["parameters"]["Year"]["schema"]
    assert (year["minimum"], year["maximum"]) == (1, audio.NUMBER_MAX)
    for name in listing.TEXT_FILTERS:
        assert components["parameters"][name.capitalize()]["schema"]["maxLength"] == TAG_MAX


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"limit": "1", "offset": "0"}, id="offset"),
        pytest.param({"limit": "1"}, id="cursor"),
    ],
)
def test_the_documented_link_header_leads_to_the_next_page(live, params):
    first = live.client.simulate_get("/play", headers=KEY, params=params)
    assert first.status_code == 200
    link = first.headers["Link"]
    match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert match, link
    path, query = split_url(match.group(1))
    following = live.client.simulate_get(path, query_string=query, headers=KEY)
    assert following.status_code == 200, following.text
    assert following.json and following.json[0]["id"] != first.json[0]["id"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        pytest.param("GET", "/play", {"params": {"offset": str(2**63)}}, id="huge offset"),
        pytest.param(
            "POST",
            "/play",
            {"json": {**new_clip_json(), "audio_url": "http://[x/"}},
            id="unparseable audio_url",
        ),
    ],
)
def test_bad_input_gets_the_documented_400(live, method, path, kwargs):
    result = live.client.simulate_request(method, path, headers=KEY, **kwargs)
    assert result.status_code == 400, result.text
