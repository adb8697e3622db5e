"""Who may use a route: the API-key guard, and signed links for what an ``<audio>`` opens.

A guard is made by a factory that receives what it checks; called with the request and the
route's parameters, it raises for a caller it refuses and returns what an accepted one may
do (a ``Grant``: as whom, and whether it may write). ``Guards`` runs, for each request, the
rule its route was registered with: it refuses a write (the methods the route table declares
as writing) to anything less than a ``full`` key, and an admin's method to any other user, so
the route table says who may call what; resources see only ``req.context.grant``.
Every refusal is counted by reason; no key or signature ever reaches a log or a label.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import falcon

from mosic.core.keys import LINK, VISITOR, Grant
from mosic.core.signing import BadSignature, ExpiredSignature, Signer
from mosic.core.users import Users
from mosic.observability.metrics import AuthFailure, Metrics

API_KEY_HEADER = "X-API-Key"
USER_ID_DIGITS = 18  # a link's u: a user id, within a 64-bit integer
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


def key_required(users: Users, metrics: Metrics) -> Guard:
    async def require_key(req, params) -> Grant:
        given = req.get_header(API_KEY_HEADER)
        access = await users.grant(given)
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
    users: Users, signer: Signer, metrics: Metrics, resource: str = "stream"
) -> Guard:
    """The API key, or the clip's signed link for ``resource`` (``stream_url``,
    ``cover_url``): a signature opens the one resource of the one clip it was made for, and
    only to read it, as the user it was made for (``u``; a link without one is no user's)."""
    require_key = key_required(users, metrics)

    async def require_key_or_signature(req, params) -> Grant:
        expires, sig = req.get_param("expires"), req.get_param("sig")
        if expires is None and sig is None:
            return await require_key(req, params)
        try:
            user_id = link_user(req.get_param("u"))
            signer.verify(str(params["clip_id"]), expires, sig, resource=resource, user_id=user_id)
        except ExpiredSignature:
            metrics.auth_failure(AuthFailure.EXPIRED)
            raise falcon.HTTPForbidden(
                title="Link expired",
                description=f"this {resource} link has expired; fetch the clip again",
            ) from None
        except BadSignature as exc:
            metrics.auth_failure(AuthFailure.BAD_SIGNATURE)
            raise falcon.HTTPForbidden(title="Invalid link", description=str(exc)) from None
        if user_id is None:
            return LINK
        grant = await users.link_grant(user_id)
        if grant is None:
            metrics.auth_failure(AuthFailure.BAD_SIGNATURE)
            raise falcon.HTTPForbidden(
                title="Invalid link", description="the user this link was made for is gone"
            )
        return grant

    return require_key_or_signature


async def share_visitor(req, params) -> Grant:
    """A share's public routes: no key, for anyone who holds the share's link (the resource
    opens the share itself, and answers 404 or 410 for a link that opens nothing)."""
    return VISITOR


def link_user(given: str | None) -> int | None:
    """The user id a link names (``u``), or None when it names none."""
    if given is None:
        return None
    if not given.isascii() or not given.isdigit() or len(given) > USER_ID_DIGITS:
        raise BadSignature("the link's user is not a user id")
    return int(given)


@dataclass(frozen=True)
class Rule:
    """Who may call a route: its ``guard``; its methods in ``writes`` change state and need a
    ``full`` key; those in ``admin`` need an admin's key."""

    guard: Guard
    writes: frozenset[str] = frozenset()
    admin: frozenset[str] = frozenset()


class Guards:
    """Middleware: the rule registered for the matched route runs before its responder, and
    leaves what the caller may do in ``req.context.grant``."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._by_template: dict[str, Rule] = {}

    def protect(self, uri_template: str, rule: Rule) -> None:
        self._by_template[uri_template] = rule

    async def process_resource(self, req, resp, resource, params) -> None:
        rule = self._by_template.get(req.uri_template)
        # A method the resource does not have is a 405 for anyone, as with Falcon's hooks.
        if rule is None or not hasattr(resource, f"on_{req.method.lower()}"):
            return
        access = await rule.guard(req, params)
        if req.method in rule.admin and not (access.user and access.user.is_admin):
            self._metrics.auth_failure(AuthFailure.NOT_ADMIN)
            raise falcon.HTTPForbidden(
                title="Admins only", description="only an admin's key may do this"
            )
        if req.method in rule.writes and not access.writes:
            self._metrics.auth_failure(AuthFailure.READ_ONLY)
            raise falcon.HTTPForbidden(
                title="Read-only key",
                description="this key may list, read and stream, but not change anything",
            )
        req.context.grant = access
