"""The object-store media backend: audio in an S3-compatible bucket (``MOSIC_STORAGE=s3``).

Uploads stream into a temporary object under ``<prefix>.incoming/<instance>/`` while they are
hashed (a multipart upload once they pass one part), and are published by a server-side copy
to their content-addressed name inside the catalogue's transaction. Every process writes a
heartbeat object under ``<prefix>.instances/``; the sweep removes temporary objects and
aborts multipart uploads of instances whose heartbeat stopped, which is how a crash's
leftovers go without touching an upload another live replica is receiving.

The client is aiobotocore: botocore's signing, retries and error model, on aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import hashlib
import io
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import aiohttp
import botocore.exceptions
from aiobotocore.session import get_session
from botocore.config import Config

from mosic.media.storage import MediaMissing, StorageUnavailable, UploadTooLarge
from mosic.settings import S3Config

log = logging.getLogger(__name__)
T = TypeVar("T")

# S3's smallest multipart part (except the last) is 5 MiB. Two parts are held in memory: the
# one on its way to the bucket and the one being received.
PART_BYTES = 5 * 1024 * 1024
READ_CHUNK_BYTES = 256 * 1024
# Tags and duration are read from the temporary object with ranged GETs of this size.
INSPECT_BLOCK_BYTES = 256 * 1024
INSPECT_TIMEOUT_S = 30
# A replica silent for this many heartbeats is gone; its partial uploads are leftovers.
HEARTBEATS_BEFORE_DEAD = 3
CONNECT_TIMEOUT_S = 2
# Generous: a server-side copy of a large upload answers only when it is done.
READ_TIMEOUT_S = 60
NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
UNREACHABLE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
)


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.asynccontextmanager
async def _translated(what: str, timeout_s: float):
    """botocore's errors as the storage interface's: missing, or unavailable; and no call
    longer than ``timeout_s``. aiobotocore bounds connecting and each socket read, not the
    wait for one of its pooled connections, which would wait for good if bodies were held."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except botocore.exceptions.ClientError as exc:
        if _code(exc) in NOT_FOUND:
            raise MediaMissing(what) from None
        log.warning("object store refused %s: %s", what, exc)
        raise StorageUnavailable(f"the object store refused {what}: {_code(exc)}") from None
    except UNREACHABLE as exc:
        # A timeout's text is empty: name it, so a log says which bound ran out.
        log.warning("object store unreachable (%s): %s", what, str(exc) or type(exc).__name__)
        raise StorageUnavailable("the object store did not answer") from None


def _without_expect_continue(request, **kwargs) -> None:
    """botocore asks the store to accept every PUT's body first (``Expect: 100-continue``),
    and aiohttp then holds the body until it hears ``100 Continue``. A store that fails such a
    request before reading its body, then waits to drain that body before it answers (rclone
    serve s3 does, CI's hang of issue 19), never answers: both sides wait until the call's
    bound. Our bodies are at most one part, so they are simply sent."""
    del request.headers["Expect"]  # no error when it is absent


class S3Store:
    def __init__(self, config: S3Config) -> None:
        self._config = config
        self._instance = secrets.token_hex(8)
        self._exit = contextlib.AsyncExitStack()
        self._client = None
        self._heartbeat: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        c = self._config
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": c.addressing},
            # Third-party stores (and older S3 APIs) reject the newer default checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        self._client = await self._exit.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=c.endpoint_url,
                region_name=c.region,
                aws_access_key_id=c.access_key_id,
                aws_secret_access_key=c.secret_access_key,
                config=config,
            )
        )
        self._client.meta.events.register("before-sign.s3", _without_expect_continue)
        self._heartbeat = asyncio.create_task(self._beat())

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        with contextlib.suppress(StorageUnavailable, MediaMissing):
            await self._delete(self._heartbeat_key(self._instance))
        await self._exit.aclose()

    # -- names -------------------------------------------------------------------------------
    def _key(self, name: str) -> str:
        # The same sharding as on disk keeps listings of a prefix short.
        return f"{self._config.prefix}{name[:2]}/{name}"

    def _heartbeat_key(self, instance: str) -> str:
        return f"{self._config.prefix}.instances/{instance}"

    @property
    def _incoming_prefix(self) -> str:
        return f"{self._config.prefix}.incoming/"

    # -- the interface -----------------------------------------------------------------------
    async def receive(self, limit: int) -> S3Incoming:
        key = f"{self._incoming_prefix}{self._instance}/{secrets.token_hex(16)}"
        return S3Incoming(self, key, limit)

    async def publish(self, incoming: S3Incoming, name: str, *, content_type: str) -> None:
        # The type is known only now (the upload is read once received): the copy sets it,
        # so the object answers a presigned GET, or any other reader, as audio.
        async with self.translated("publishing an upload"):
            await self._client.copy_object(
                Bucket=self._config.bucket,
                Key=self._key(name),
                CopySource={"Bucket": self._config.bucket, "Key": incoming.key},
                ContentType=content_type,
                MetadataDirective="REPLACE",
            )
        incoming.published = True
        with contextlib.suppress(StorageUnavailable, MediaMissing):
            await self._delete(incoming.key)  # a leftover the sweep would remove anyway

    async def open(self, name: str) -> S3Media:
        key = self._key(name)
        async with self.translated(f"media {name}"):
            head = await self._client.head_object(Bucket=self._config.bucket, Key=key)
        return S3Media(self, key, head["ContentLength"])

    async def inspect(self, name: str, reader: Callable[[io.BufferedReader], T]) -> T:
        media = await self.open(name)  # its size, or MediaMissing
        return await _inspect(self, media.key, media.size, reader)

    async def put(self, name: str, data: bytes, *, content_type: str) -> None:
        # One PUT is atomic in S3: readers see the whole object or none. Content-addressed,
        # so writing it again is the same bytes.
        async with self.translated(f"storing {name}"):
            await self._client.put_object(
                Bucket=self._config.bucket, Key=self._key(name), Body=data, ContentType=content_type
            )

    async def get(self, name: str) -> bytes:
        async with self.translated(f"media {name}"):
            answer = await self._client.get_object(Bucket=self._config.bucket, Key=self._key(name))
            async with answer["Body"] as body:
                return await body.read()

    async def remove(self, name: str) -> None:
        with contextlib.suppress(MediaMissing):
            await self._delete(self._key(name))

    async def problem(self) -> str | None:
        try:
            async with self.translated("the bucket"):
                await self._client.head_bucket(Bucket=self._config.bucket)
        except (StorageUnavailable, MediaMissing) as exc:
            return f"media store: {exc}"
        return None

    async def sweep(self) -> int:
        """Abort multipart uploads and delete temporary objects of instances that stopped."""
        removed = 0
        async with self.translated("the sweep"):
            alive = await self._live_instances()
            for key, upload_id in await self._pending_uploads():
                if self._owner(key) not in alive:
                    with contextlib.suppress(MediaMissing):
                        async with self.translated(key):
                            await self._client.abort_multipart_upload(
                                Bucket=self._config.bucket, Key=key, UploadId=upload_id
                            )
                    removed += 1
            for item in await self._objects(self._incoming_prefix):
                if self._owner(item["Key"]) not in alive:
                    await self._delete(item["Key"])
                    removed += 1
        return removed

    # -- helpers -----------------------------------------------------------------------------
    def translated(self, what: str):
        """Around every call to the store: its errors as ours, and a bound on its time."""
        return _translated(what, self._config.call_timeout_s)

    async def _delete(self, key: str) -> None:
        async with self.translated(key):
            await self._client.delete_object(Bucket=self._config.bucket, Key=key)

    def _owner(self, key: str) -> str:
        return key.removeprefix(self._incoming_prefix).split("/", 1)[0]

    async def _objects(self, prefix: str) -> list[dict]:
        found = []
        paginator = self._client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self._config.bucket, Prefix=prefix):
            found.extend(page.get("Contents", []))
        return found

    async def _pending_uploads(self) -> list[tuple[str, str]]:
        try:
            answer = await self._client.list_multipart_uploads(
                Bucket=self._config.bucket, Prefix=self._incoming_prefix
            )
        except botocore.exceptions.ClientError as exc:
            if _code(exc) == "NoSuchUpload":  # rclone's answer when there are none
                return []
            raise
        return [(u["Key"], u["UploadId"]) for u in answer.get("Uploads", [])]

    async def _live_instances(self) -> set[str]:
        """Instances whose heartbeat is recent by the store's own clock (no clock skew)."""
        beat = await self._client.put_object(
            Bucket=self._config.bucket, Key=self._heartbeat_key(self._instance), Body=b""
        )
        now = email.utils.parsedate_to_datetime(beat["ResponseMetadata"]["HTTPHeaders"]["date"])
        dead_after = dt.timedelta(seconds=self._config.heartbeat_s * HEARTBEATS_BEFORE_DEAD)
        alive = {self._instance}
        for item in await self._objects(f"{self._config.prefix}.instances/"):
            instance = item["Key"].rsplit("/", 1)[-1]
            if now - item["LastModified"] < dead_after:
                alive.add(instance)
            else:
                with contextlib.suppress(StorageUnavailable, MediaMissing):
                    await self._delete(item["Key"])
        return alive

    async def _beat(self) -> None:
        """Say this instance is alive; every few beats, sweep what dead ones left."""
        beats = 0
        while True:
            try:
                async with self.translated("the heartbeat"):
                    await self._client.put_object(
                        Bucket=self._config.bucket,
                        Key=self._heartbeat_key(self._instance),
                        Body=b"",
                    )
                beats += 1
                if beats % HEARTBEATS_BEFORE_DEAD == 0 and (removed := await self.sweep()):
                    log.info("object store: removed %d leftovers of stopped instances", removed)
            except Exception as exc:  # an outage must not end the heartbeat for good
                log.warning("object store heartbeat failed: %s", exc)
            await asyncio.sleep(self._config.heartbeat_s)

    # Used by S3Incoming and S3Media, which belong to this store.
    @property
    def client(self):
        return self._client

    @property
    def bucket(self) -> str:
        return self._config.bucket

    @property
    def proxies(self) -> bool:
        return self._config.stream == "proxy"


class S3Incoming:
    """An upload on its way into a temporary object: one part in memory at a time."""

    def __init__(self, store: S3Store, key: str, limit: int) -> None:
        self.key = key
        self.limit = limit
        self.size = 0
        self.published = False
        self._store = store
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._sending: asyncio.Task | None = None
        self._stored = False

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise UploadTooLarge(self.limit)
        self._buffer += chunk
        if len(self._buffer) >= PART_BYTES:
            await self._sent()
            part, self._buffer = bytes(self._buffer), bytearray()
            # Hashed and sent while the next part is received: an upload to a bucket costs
            # the slower of the two, not their sum.
            self._sending = asyncio.create_task(self._send_part(part))

    async def _sent(self) -> None:
        """Wait for the part on its way; its error (the store gone) is raised here."""
        sending, self._sending = self._sending, None
        if sending is not None:
            await sending

    async def _send_part(self, part: bytes) -> None:
        await asyncio.to_thread(self._hash.update, part)
        client, bucket = self._store.client, self._store.bucket
        async with self._store.translated("an upload part"):
            if self._upload_id is None:
                started = await client.create_multipart_upload(Bucket=bucket, Key=self.key)
                self._upload_id = started["UploadId"]
            number = len(self._parts) + 1
            sent = await client.upload_part(
                Bucket=bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=part,
            )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    async def finish(self) -> None:
        client, bucket = self._store.client, self._store.bucket
        await self._sent()
        last, self._buffer = bytes(self._buffer), bytearray()
        if self._upload_id is None:  # small enough for one request
            await asyncio.to_thread(self._hash.update, last)
            async with self._store.translated("an upload"):
                await client.put_object(Bucket=bucket, Key=self.key, Body=last)
        else:
            if last:
                await self._send_part(last)
            async with self._store.translated("completing an upload"):
                await client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
            self._upload_id = None
        self._stored = True

    async def inspect(self, reader: Callable[[io.BufferedReader], T]) -> T:
        return await _inspect(self._store, self.key, self.size, reader)

    async def discard(self) -> None:
        client, bucket = self._store.client, self._store.bucket
        with contextlib.suppress(StorageUnavailable, MediaMissing):
            await self._sent()  # a part still on its way would outlive the abort
        with contextlib.suppress(StorageUnavailable, MediaMissing):
            if self._upload_id is not None:
                async with self._store.translated("aborting an upload"):
                    await client.abort_multipart_upload(
                        Bucket=bucket, Key=self.key, UploadId=self._upload_id
                    )
                self._upload_id = None
            if self._stored and not self.published:
                async with self._store.translated(self.key):
                    await client.delete_object(Bucket=bucket, Key=self.key)
                self._stored = False


async def _inspect(store: S3Store, key: str, size: int, reader: Callable[..., T]) -> T:
    """Run the blocking ``reader`` in a thread on a seekable file over the object."""
    raw = _RangedObject(store, key, size, asyncio.get_running_loop())
    fileobj = io.BufferedReader(raw, buffer_size=INSPECT_BLOCK_BYTES)
    return await asyncio.to_thread(reader, fileobj)


class _RangedObject(io.RawIOBase):
    """A seekable, read-only file over an object, read with ranged GETs from a worker thread
    (mutagen and decoders need a file; the bytes stay in the store)."""

    def __init__(self, store: S3Store, key: str, size: int, loop) -> None:
        self._store, self._key, self._size, self._loop = store, key, size, loop
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        if self._position >= self._size or len(buffer) == 0:
            return 0
        end = min(self._position + len(buffer), self._size) - 1
        data = asyncio.run_coroutine_threadsafe(self._get(self._position, end), self._loop).result(
            INSPECT_TIMEOUT_S
        )
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    async def _get(self, start: int, end: int) -> bytes:
        async with self._store.translated(self._key):
            answer = await self._store.client.get_object(
                Bucket=self._store.bucket, Key=self._key, Range=f"bytes={start}-{end}"
            )
            async with answer["Body"] as body:
                return await body.read()


class S3Media:
    """An object opened for reading: ranged GETs, streamed in bounded chunks."""

    def __init__(self, store: S3Store, key: str, size: int) -> None:
        self._store = store
        self._key = key
        self.size = size

    @property
    def key(self) -> str:
        return self._key

    async def chunks(self, start: int, length: int) -> AsyncIterator[bytes]:
        if length <= 0:
            return
        async with self._store.translated(self._key):
            answer = await self._store.client.get_object(
                Bucket=self._store.bucket,
                Key=self._key,
                Range=f"bytes={start}-{start + length - 1}",
            )
        async with answer["Body"] as body:
            async for chunk in body.iter_chunks(READ_CHUNK_BYTES):
                yield chunk

    async def close(self) -> None:
        pass  # each ranged GET closes its own connection

    async def direct_url(self, expires_in: int, content_type: str) -> str | None:
        if self._store.proxies:
            return None
        # Presigning is a local HMAC computation; nothing goes to the network. The URL asks
        # for the type Mosic answers with (response-content-type), so the two agree even for
        # an object stored before objects carried their type.
        return await self._store.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._store.bucket,
                "Key": self._key,
                "ResponseContentType": content_type,
            },
            ExpiresIn=expires_in,
        )
