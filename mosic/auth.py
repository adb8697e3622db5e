"""Who may use ``/play``: the API-key guard, and signed links for the stream.

Both are Falcon ``before`` hooks. They read the key and signer from the resource they guard,
so the same classes serve any number of apps, each with its own settings.
"""

from __future__ import annotations

import hmac

import falcon

from mosic.signing import BadSignature, ExpiredSignature

API_KEY_HEADER = "X-API-Key"
CHALLENGE = 'ApiKey header="X-API-Key"'


def keys_match(given: str | None, expected: str) -> bool:
    if not given:
        return False
    # Constant time, so the response time says nothing about how much of a guess was right.
    return hmac.compare_digest(given.encode(), expected.encode())


async def require_api_key(req, resp, resource, params) -> None:
    if not keys_match(req.get_header(API_KEY_HEADER), resource.api_key):
        raise falcon.HTTPUnauthorized(
            title="Unauthorized",
            description=f"a valid {API_KEY_HEADER} header is required",
            challenges=[CHALLENGE],
        )


async def require_api_key_or_signature(req, resp, resource, params) -> None:
    """The stream opens with the API key, or with the clip's signed link (``stream_url``)."""
    expires, sig = req.get_param("expires"), req.get_param("sig")
    if expires is None and sig is None:
        await require_api_key(req, resp, resource, params)
        return
    try:
        resource.signer.verify(str(params["clip_id"]), expires, sig)
    except ExpiredSignature:
        raise falcon.HTTPForbidden(
            title="Link expired", description="this stream link has expired; fetch the clip again"
        ) from None
    except BadSignature as exc:
        raise falcon.HTTPForbidden(title="Invalid link", description=str(exc)) from None
