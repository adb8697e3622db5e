"""Who is calling: Subsonic's three ways to present a Mosic API key.

- ``apiKey=KEY`` (OpenSubsonic ``apiKeyAuthentication``), without ``u``;
- ``u`` and ``p``, the key itself, plain or ``enc:`` + hex;
- ``u``, ``t`` = md5(key + ``s``) and the salt ``s``.

The user name is ``MOSIC_SUBSONIC_USER``. What a key may do is the ``KeyRing``'s answer
(a ``Grant``); whether a method changes state is ``WRITES`` in ``mosic.api.subsonic.methods``.
Nothing here logs: a key, token or password never reaches a log line.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from mosic.api.subsonic.request import Params
from mosic.api.subsonic.response import Code, SubsonicError, missing
from mosic.core.keys import Grant, KeyRing

API_KEY = "apiKey"


@dataclass(frozen=True)
class Caller:
    grant: Grant
    by_api_key: bool


# What an app shows its user: which mistake it was, and what the server expects.
HOW_TO_LOG_IN = (
    "the user name is MOSIC_SUBSONIC_USER, default mosic, and the password a Mosic API key"
)


def wrong_credentials() -> SubsonicError:
    return SubsonicError(Code.WRONG_CREDENTIALS, f"wrong username or password; {HOW_TO_LOG_IN}")


def no_credentials() -> SubsonicError:
    return SubsonicError(
        Code.MISSING_PARAMETER,
        "required parameter 'u' is missing: no credentials were sent; send apiKey, or u with "
        f"p, or u with t and s; {HOW_TO_LOG_IN}",
    )


def _password(raw: str) -> str | None:
    if not raw.startswith("enc:"):
        return raw
    try:
        return bytes.fromhex(raw[4:]).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def authenticate(params: Params, keys: KeyRing, user: str) -> Caller:
    api_key = params.one(API_KEY)
    if api_key is not None:
        if "u" in params:
            raise SubsonicError(Code.CONFLICTING_AUTH, "use either apiKey or u, not both")
        grant = keys.grant(api_key)
        if grant is None:
            raise SubsonicError(Code.INVALID_API_KEY, "invalid API key")
        return Caller(grant, by_api_key=True)

    name = params.one("u")
    password, token, salt = params.one("p"), params.one("t"), params.one("s")
    if name is None:
        if password is None and token is None:
            raise no_credentials()
        raise missing("u")  # or apiKey: the message names the classic one
    if password is not None and token is not None:
        raise SubsonicError(Code.CONFLICTING_AUTH, "use either p or t and s, not both")
    if password is None and token is None:
        raise missing("p")
    if token is not None and not salt:
        raise missing("s")
    same_user = hmac.compare_digest(name.encode(), user.encode())
    if password is not None:
        plain = _password(password)
        grant = keys.grant(plain) if plain is not None else None
    else:
        grant = keys.grant_for_token(token, salt)
    if grant is None or not same_user:
        raise wrong_credentials()
    return Caller(grant, by_api_key=False)
