"""Helpers for the Subsonic API tests: credentials in each of Subsonic's forms, and the
Subsonic XML schema made to accept what OpenSubsonic adds.

``subsonic-rest-api.xsd`` beside this file is the Subsonic 1.15 schema (vendored unchanged;
its header says from where). OpenSubsonic, which Mosic speaks, adds attributes (``type``,
``serverVersion``, ``openSubsonic`` on every response, ``played`` and ``userRating`` on
more elements, ...) and turned ``playQueue/@current`` from an int into a song id. So the
schema is loaded with two changes and no others:

1. every complex type also allows attributes it does not declare (``xs:anyAttribute``,
   ``processContents="skip"``): declared attributes are still checked for presence and
   type, so a missing required attribute or a wrong type still fails;
2. ``PlayQueue/@current`` is a string, as in OpenSubsonic;
3. a song (``Child``) may hold OpenSubsonic's ``replayGain`` element, whose figures are
   numbers (``REPLAY_GAIN``).

Elements OpenSubsonic added (``openSubsonicExtensions``, ``tokenInfo``,
``playQueueByIndex``) are not in the schema at all; those answers are checked field by field
instead.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import cache
from pathlib import Path

from lxml import etree

XSD = Path(__file__).with_name("subsonic-rest-api.xsd")
XS = "{http://www.w3.org/2001/XMLSchema}"
NS = "{http://subsonic.org/restapi}"
USER = "mosic"
# Methods whose answer is an element OpenSubsonic added, and that element.
NOT_IN_SCHEMA = {
    "getOpenSubsonicExtensions": "openSubsonicExtensions",
    "tokenInfo": "tokenInfo",
    "getPlayQueueByIndex": "playQueueByIndex",
    "getLyricsBySongId": "lyricsList",
}


@cache
def schema() -> etree.XMLSchema:
    tree = etree.parse(str(XSD))
    for complex_type in tree.iter(f"{XS}complexType"):
        holder = complex_type.find(f"{XS}complexContent/{XS}extension")
        holder = holder if holder is not None else complex_type
        if holder.find(f"{XS}anyAttribute") is None:
            holder.append(etree.Element(f"{XS}anyAttribute", processContents="skip"))
        if complex_type.get("name") == "PlayQueue":
            for attribute in complex_type.iter(f"{XS}attribute"):
                if attribute.get("name") == "current":
                    attribute.set("type", "xs:string")
        if complex_type.get("name") == "Child":
            sequence = etree.SubElement(complex_type, f"{XS}sequence")
            etree.SubElement(sequence, f"{XS}element", name="replayGain",
                             type="sub:ReplayGain", minOccurs="0")  # fmt: skip
            complex_type.insert(0, sequence)  # before the attributes, as XSD orders them
    holder = etree.fromstring(REPLAY_GAIN)
    tree.getroot().extend(list(holder))
    return etree.XMLSchema(tree)


# OpenSubsonic's ReplayGain: every figure optional, peaks never negative.
REPLAY_GAIN = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
                            xmlns:sub="http://subsonic.org/restapi">
  <xs:simpleType name="Peak">
    <xs:restriction base="xs:double"><xs:minInclusive value="0"/></xs:restriction>
  </xs:simpleType>
  <xs:complexType name="ReplayGain">
    <xs:attribute name="trackGain" type="xs:double"/>
    <xs:attribute name="albumGain" type="xs:double"/>
    <xs:attribute name="trackPeak" type="sub:Peak"/>
    <xs:attribute name="albumPeak" type="sub:Peak"/>
    <xs:attribute name="baseGain" type="xs:double"/>
    <xs:attribute name="fallbackGain" type="xs:double"/>
  </xs:complexType>
</xs:schema>"""


def validate_xml(body: bytes) -> etree._Element:
    """Parse a Subsonic XML answer, fail unless the (OpenSubsonic-aware) schema accepts
    it, and return its root. An answer with an element the schema does not know
    (``NOT_IN_SCHEMA``) is validated without that element: its envelope still is."""
    root = etree.fromstring(body)
    checked = etree.fromstring(body)
    for child in list(checked):
        if etree.QName(child).localname in NOT_IN_SCHEMA.values():
            checked.remove(child)
    checker = schema()
    assert checker.validate(checked), f"{checker.error_log}\n{body[:2000]!r}"
    return root


def token_auth(key: str, user: str = USER) -> dict[str, str]:
    salt = secrets.token_hex(8)
    token = hashlib.md5((key + salt).encode(), usedforsecurity=False).hexdigest()
    return {"u": user, "t": token, "s": salt}


def password_auth(key: str, *, encoded: bool = False, user: str = USER) -> dict[str, str]:
    return {"u": user, "p": "enc:" + key.encode().hex() if encoded else key}
