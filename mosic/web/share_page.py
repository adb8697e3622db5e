"""``GET /share/{share_id}``: a share's public page, for anyone who holds its link, no key.

The page (``static/share.html`` and ``share.js``) holds no data: it reads the share's songs
from ``/share/{share_id}/songs`` and plays their share-scoped streams, and lists nothing else.
Each visit counts one (``visit_count``): the page is sent whole every time (``no-store``, no
validators), so a reload is a visit too. Once the share has expired or was deleted the answer
is 410 with a page that says so (``static/share-gone.html``); 404 for a share that never was.
The headers are the player's (``mosic.web.pages``), and the link, the share's secret, is
neither sent on as a referrer nor offered to search engines.
"""

from __future__ import annotations

import falcon

from mosic.core.shares import ShareGone, ShareNotFound, Shares
from mosic.web.pages import CONTENT_SECURITY_POLICY, Asset

SHARE_PAGE = "share.html"
GONE_PAGE = "share-gone.html"


def _send(resp, asset: Asset) -> None:
    resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Referrer-Policy", "no-referrer")
    resp.set_header("X-Robots-Tag", "noindex, nofollow")
    resp.cache_control = ["no-store"]
    resp.content_type = asset.content_type
    resp.data = asset.body


class SharePage:
    def __init__(self, *, assets: dict[str, Asset], shares: Shares) -> None:
        self._page = assets[SHARE_PAGE]
        self._gone = assets[GONE_PAGE]
        self._shares = shares

    async def on_get(self, req, resp, share_id: str) -> None:
        try:
            await self._shares.visit(share_id)
        except ShareNotFound:
            raise falcon.HTTPNotFound(
                title="Not found", description="no share has this id"
            ) from None
        except ShareGone:
            resp.status = falcon.HTTP_410
            _send(resp, self._gone)
            return
        _send(resp, self._page)
