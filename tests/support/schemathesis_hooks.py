"""Schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.support.schemathesis_hooks``): how to put a
generated ``file`` part on the wire. The upload's part takes ``audio/*``, a range schemathesis
has no serializer for; a part is bytes whatever its audio type, so audio/mpeg is sent as
bytes (Mosic judges the bytes, never the declared type)."""

from __future__ import annotations

import schemathesis


@schemathesis.serializer("audio/mpeg")
def audio_bytes(ctx, value):
    data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
    return {"data": data}
