"""Who may use a route: the API-key guard, and signed links for what an ``<audio>`` opens.

A guard is a Falcon hook (``req, resp, resource, params``) made by a factory that receives
what it checks. ``Guards`` runs, for each request, the guard its route was registered with,
so resources know nothing about auth and the route table says who may call what.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import falcon

from mosic.core.keys import KeyRing
from mosic.core.signing import BadSignature, ExpiredSignature, Signer

API_KEY_HEADER = "X-API-Key"
CHALLENGE = 'ApiKey header="X-API-Key"'

Guard = Callable[[falcon.asgi.Request, falcon.asgi.Response, object, dict], Awaitable[None]]


def key_required(keys: KeyRing) -> Guard:
    async def require_key(req, resp, resource, params) -> None:
        if not keys.accepts(req.get_header(API_KEY_HEADER)):
            raise falcon.HTTPUnauthorized(
                title="Unauthorized",
                description=f"a valid {API_KEY_HEADER} header is required",
                challenges=[CHALLENGE],
            )

    return require_key


def key_or_signature(keys: KeyRing, signer: Signer, signed: str) -> Guard:
    """The API key, or the clip's signed link for the ``signed`` resource (``stream_url``,
    ``cover_url``): a signature opens the one resource of the one clip it was made for."""
    require_key = key_required(keys)

    async def require_key_or_signature(req, resp, resource, params) -> None:
        expires, sig = req.get_param("expires"), req.get_param("sig")
        if expires is None and sig is None:
            await require_key(req, resp, resource, params)
            return
        try:
            signer.verify(str(params["clip_id"]), expires, sig, resource=signed)
        except ExpiredSignature:
            raise falcon.HTTPForbidden(
                title="Link expired",
                description=f"this {signed} link has expired; fetch the clip again",
            ) from None
        except BadSignature as exc:
            raise falcon.HTTPForbidden(title="Invalid link", description=str(exc)) from None

    return require_key_or_signature


class Guards:
    """Middleware: the guard registered for the matched route runs before its responder."""

    def __init__(self) -> None:
        self._by_template: dict[str, Guard] = {}

    def protect(self, uri_template: str, guard: Guard) -> None:
        self._by_template[uri_template] = guard

    async def process_resource(self, req, resp, resource, params) -> None:
        guard = self._by_template.get(req.uri_template)
        # A method the resource does not have is a 405 for anyone, as with Falcon's hooks.
        if guard is not None and hasattr(resource, f"on_{req.method.lower()}"):
            await guard(req, resp, resource, params)
