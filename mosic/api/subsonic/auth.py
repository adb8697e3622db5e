"""Who is calling: Subsonic's three ways to present a Mosic API key.

- ``apiKey=KEY`` (OpenSubsonic ``apiKeyAuthentication``), without ``u``;
- ``u`` and ``p``, the key itself, plain or ``enc:`` + hex;
- ``u``, ``t`` = md5(key + ``s``) and the salt ``s``.

``u`` is a Mosic user's name, and the password one of that user's keys; ``Users`` answers
what the key may do and as whom (a ``Grant``); whether a method changes state is ``WRITES``
in ``mosic.api.subsonic.endpoint``.
Nothing here logs: a key, token or password never reaches a log line.
"""

from __future__ import annotations

from dataclasses import dataclass

from mosic.api.subsonic.request import Params
from mosic.api.subsonic.response import Code, SubsonicError, missing
from mosic.core.keys import Grant, User
from mosic.core.users import Users

API_KEY = "apiKey"


@dataclass(frozen=True)
class Caller:
    grant: Grant
    by_api_key: bool

    @property
    def user(self) -> User:
        return self.grant.user


# What an app shows its user: which mistake it was, and what the server expects.
HOW_TO_LOG_IN = (
    "the user name is a Mosic user's (the admin is MOSIC_ADMIN_USER, default mosic), and the "
    "password one of that user's API keys"
)


def wrong_credentials() -> SubsonicError:
    return SubsonicError(Code.WRONG_CREDENTIALS, f"wrong username or password; {HOW_TO_LOG_IN}")


def no_credentials() -> SubsonicError:
    return SubsonicError(
        Code.MISSING_PARAMETER,
        "required parameter 'u' is missing: no credentials were sent; send apiKey, or u with "
        f"p, or u with t and s; {HOW_TO_LOG_IN}",
    )


def plain_password(raw: str) -> str | None:
    """A Subsonic password as sent: plain, or ``enc:`` + hex (None when that is broken)."""
    if not raw.startswith("enc:"):
        return raw
    try:
        return bytes.fromhex(raw[4:]).decode()
    except (ValueError, UnicodeDecodeError):
        return None


async def authenticate(params: Params, users: Users) -> Caller:
    api_key = params.one(API_KEY)
    if api_key is not None:
        if "u" in params:
            raise SubsonicError(Code.CONFLICTING_AUTH, "use either apiKey or u, not both")
        grant = await users.grant(api_key)
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
    if password is not None:
        plain = plain_password(password)
        grant = await users.grant_for_password(name, plain) if plain is not None else None
    else:
        grant = await users.grant_for_token(name, token, salt)
    if grant is None:
        raise wrong_credentials()
    return Caller(grant, by_api_key=False)
