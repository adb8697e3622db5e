"""``GET /`` and ``GET /web/{name}``: the player's static files, shipped in the package.

Read once when the app is built (a few kilobytes), each with a strong ETag from its bytes, and
always sent with a strict Content-Security-Policy: scripts, styles, media and requests from
this origin only, nothing inline. Metadata-only clips (audio hosted elsewhere) are therefore
not played in the page; it links to them instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

import falcon

from mosic.media import ranges

INDEX = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
# Revalidate every time (a 304 costs one small request), so an upgraded Mosic is seen at once.
CACHE_CONTROL = ["no-cache"]


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every file of ``mosic/web/static`` by name."""
    assets = {}
    for entry in files("mosic.web").joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if entry.is_file() and suffix in CONTENT_TYPES:
            body = entry.read_bytes()
            etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
            assets[entry.name] = Asset(body, CONTENT_TYPES[suffix], etag)
    return assets


def send_asset(req, resp, asset: Asset) -> None:
    resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Referrer-Policy", "no-referrer")
    resp.cache_control = CACHE_CONTROL
    resp.etag = asset.etag
    resp.content_type = asset.content_type
    if ranges.etag_matches(req.get_header("If-None-Match"), asset.etag):
        resp.status = falcon.HTTP_304
        return
    resp.data = asset.body


class WebPage:
    """``/``: the player page."""

    def __init__(self, *, assets: dict[str, Asset]) -> None:
        self._page = assets[INDEX]

    async def on_get(self, req, resp) -> None:
        send_asset(req, resp, self._page)


class WebAsset:
    """``/web/{name}``: the page's script, style sheet and icon."""

    def __init__(self, *, assets: dict[str, Asset]) -> None:
        self._assets = assets

    async def on_get(self, req, resp, name: str) -> None:
        asset = self._assets.get(name)
        if asset is None:
            raise falcon.HTTPNotFound(title="Not found", description="no such file of the player")
        send_asset(req, resp, asset)
