"""Who may use a route: the API-key guard, and signed links for what an ``<audio>`` opens.

A guard is made by a factory that receives what it checks; called with the request and the
route's parameters, it raises for a caller it refuses and returns what an accepted one may
do (a ``Grant``). ``Guards`` runs, for each request, the guard its route was registered with,
and refuses a write (the methods the route table declares as writing) to anything less than
the full key, so resources know nothing about auth and the route table says who may call what.
Every refusal is counted by reason; no key or signature ever reaches a log or a label.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import falcon

from mosic.core.keys import READ, Grant, KeyRing
from mosic.core.signing import BadSignature, ExpiredSignature, Signer
from mosic.observability.metrics import AuthFailure, Metrics

API_KEY_HEADER = "X-API-Key"
CHALLENGE = 'ApiKey header="X-API-Key"'

Guard = Callable[[falcon.asgi.Request, dict], Awaitable[Grant]]


# Both are 401 with the same challenge; the description tells a newcomer which mistake it was.
NO_KEY = (
    f"no API key: send it in the {API_KEY_HEADER} header (MOSIC_API_KEY, or the key Mosic "
    "generated into api_key in its data directory)"
)
WRONG_KEY = (
    f"that API key is not valid: compare the {API_KEY_HEADER} header with MOSIC_API_KEY, or "
    "with api_key in Mosic's data directory"
)


def key_required(keys: KeyRing, metrics: Metrics) -> Guard:
    async def require_key(req, params) -> Grant:
        given = req.get_header(API_KEY_HEADER)
        access = keys.grant(given)
        if access is None:
            reason = AuthFailure.MISSING if not given else AuthFailure.WRONG
            metrics.auth_failure(reason)
            raise falcon.HTTPUnauthorized(
                title="Unauthorized",
                description=NO_KEY if reason is AuthFailure.MISSING else WRONG_KEY,
                challenges=[CHALLENGE],
            )
        return access

    return require_key


def key_or_signature(
    keys: KeyRing, signer: Signer, metrics: Metrics, resource: str = "stream"
) -> Guard:
    """The API key, or the clip's signed link for ``resource`` (``stream_url``,
    ``cover_url``): a signature opens the one resource of the one clip it was made for, and
    only to read it."""
    require_key = key_required(keys, metrics)

    async def require_key_or_signature(req, params) -> Grant:
        expires, sig = req.get_param("expires"), req.get_param("sig")
        if expires is None and sig is None:
            return await require_key(req, params)
        try:
            signer.verify(str(params["clip_id"]), expires, sig, resource=resource)
        except ExpiredSignature:
            metrics.auth_failure(AuthFailure.EXPIRED)
            raise falcon.HTTPForbidden(
                title="Link expired",
                description=f"this {resource} link has expired; fetch the clip again",
            ) from None
        except BadSignature as exc:
            metrics.auth_failure(AuthFailure.BAD_SIGNATURE)
            raise falcon.HTTPForbidden(title="Invalid link", description=str(exc)) from None
        return READ

    return require_key_or_signature


class Guards:
    """Middleware: the guard registered for the matched route runs before its responder."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._by_template: dict[str, tuple[Guard, frozenset[str]]] = {}

    def protect(self, uri_template: str, guard: Guard, writes: frozenset[str]) -> None:
        """Guard ``uri_template``; its methods in ``writes`` change state and need the full
        key."""
        self._by_template[uri_template] = (guard, writes)

    async def process_resource(self, req, resp, resource, params) -> None:
        registered = self._by_template.get(req.uri_template)
        # A method the resource does not have is a 405 for anyone, as with Falcon's hooks.
        if registered is None or not hasattr(resource, f"on_{req.method.lower()}"):
            return
        guard, writes = registered
        access = await guard(req, params)
        if req.method in writes and not access.writes:
            self._metrics.auth_failure(AuthFailure.READ_ONLY)
            raise falcon.HTTPForbidden(
                title="Read-only key",
                description="this key may list, read and stream, but not change anything",
            )
