"""The Subsonic response model, and its XML, JSON and JSONP renderings.

A response body is a plain dict, written once per method, with three conventions that make
it render as either format:

- a scalar value (str, int, float, bool, datetime) is an XML attribute and a JSON value;
- a dict is one child element (a JSON object);
- a list of dicts is repeated child elements (always a JSON array, even of one); a list of
  scalars is repeated elements with text (``<versions>1</versions>``);
- the key ``value`` is an element's text (``<genre songCount="2">Jazz</genre>``), as in
  Subsonic's JSON.

None values are left out. Every response carries the same envelope attributes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import mosic

API_VERSION = "1.16.1"
SERVER_TYPE = "mosic"
NAMESPACE = "http://subsonic.org/restapi"
XML_TYPE = "application/xml; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
JSONP_TYPE = "application/javascript; charset=utf-8"
# A JSONP callback is a (dotted) JavaScript name, never arbitrary script.
CALLBACK = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*")
CALLBACK_MAX = 100
# Characters XML 1.0 cannot hold even escaped; a title a client set may have them (JSON
# keeps them, escaped). Dropped from XML answers, so an app's parser never chokes.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


class Code:
    GENERIC = 0
    MISSING_PARAMETER = 10
    WRONG_CREDENTIALS = 40
    AUTH_MECHANISM_UNSUPPORTED = 42
    CONFLICTING_AUTH = 43
    INVALID_API_KEY = 44
    NOT_AUTHORIZED = 50
    NOT_FOUND = 70


class SubsonicError(Exception):
    """A failed call: answered HTTP 200 with ``status="failed"`` and this code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def missing(name: str) -> SubsonicError:
    return SubsonicError(Code.MISSING_PARAMETER, f"required parameter '{name}' is missing")


def not_found(what: str) -> SubsonicError:
    return SubsonicError(Code.NOT_FOUND, f"{what} not found")


def envelope(status: str) -> dict:
    return {
        "status": status,
        "version": API_VERSION,
        "type": SERVER_TYPE,
        "serverVersion": mosic.__version__,
        "openSubsonic": True,
    }


def ok(body: dict | None = None) -> dict:
    return {**envelope("ok"), **(body or {})}


def failed(error: SubsonicError) -> dict:
    return {**envelope("failed"), "error": {"code": error.code, "message": error.message}}


# -- rendering -------------------------------------------------------------------------------


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return iso(value)
    return str(value)


def iso(moment: dt.datetime) -> str:
    # Stored times are naive UTC.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _xml_text(value) -> str:
    return NOT_XML.sub("", _scalar(value))


def _xml_element(name: str, node: dict, out: list[str], root: bool = False) -> None:
    attrs, children, text = [], [], None
    for key, value in node.items():
        if value is None:
            continue
        if key == "value":
            text = _xml_text(value)
        elif isinstance(value, dict):
            children.append((key, value))
        elif isinstance(value, list):
            children.extend((key, item) for item in value)
        else:
            attrs.append(f" {key}={quoteattr(_xml_text(value))}")
    if root:
        attrs.insert(0, f' xmlns="{NAMESPACE}"')
    out.append(f"<{name}{''.join(attrs)}")
    if not children and text is None:
        out.append("/>")
        return
    out.append(">")
    if text is not None:
        out.append(escape(text))
    for child_name, child in children:
        if isinstance(child, dict):
            _xml_element(child_name, child, out)
        else:
            out.append(f"<{child_name}>{escape(_xml_text(child))}</{child_name}>")
    out.append(f"</{name}>")


def to_xml(response: dict) -> bytes:
    out = ['<?xml version="1.0" encoding="UTF-8"?>']
    _xml_element("subsonic-response", response, out, root=True)
    return "".join(out).encode()


def _json_value(value):
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dt.datetime):
        return iso(value)
    return value


def to_json(response: dict) -> bytes:
    body = {"subsonic-response": _json_value(response)}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def valid_callback(name: str | None) -> bool:
    return bool(name) and len(name) <= CALLBACK_MAX and CALLBACK.fullmatch(name) is not None


def render(response: dict, fmt: str | None, callback: str | None) -> tuple[bytes, str]:
    """Body and content type for ``f`` (xml, the default; json; jsonp with ``callback``)."""
    if fmt == "jsonp" and not valid_callback(callback):
        return _no_callback(callback)
    return render_encoded(encode(response, fmt), fmt, callback)


def _no_callback(callback: str | None) -> tuple[bytes, str]:
    # Without a usable callback, JSONP cannot be answered: say so in plain JSON.
    error = SubsonicError(
        Code.MISSING_PARAMETER if not callback else Code.GENERIC,
        "f=jsonp needs a 'callback' that is a JavaScript name",
    )
    return to_json(failed(error)), JSON_TYPE


@dataclass(frozen=True)
class Encoded:
    """A response already encoded for ``f``: JSON (for json and jsonp, wrapped in the
    callback when sent) or XML. A method may return one instead of a dict: an answer kept
    across requests is encoded once (``Kept``)."""

    data: bytes
    json: bool


def wants_json(fmt: str | None) -> bool:
    return fmt in ("json", "jsonp")


def encode(response: dict, fmt: str | None) -> Encoded:
    if wants_json(fmt):
        return Encoded(to_json(response), json=True)
    return Encoded(to_xml(response), json=False)


def render_encoded(encoded: Encoded, fmt: str | None, callback: str | None) -> tuple[bytes, str]:
    """Body and content type of an encoded response, as ``render`` gives them."""
    if encoded.json != wants_json(fmt):
        raise ValueError(f"an answer encoded as {'JSON' if encoded.json else 'XML'} for f={fmt}")
    if fmt == "jsonp":
        if not valid_callback(callback):
            return _no_callback(callback)
        return callback.encode() + b"(" + encoded.data + b");", JSONP_TYPE
    return encoded.data, JSON_TYPE if encoded.json else XML_TYPE
