"""nginx's questions before a stream (``MOSIC_NGINX_AUTH_REQUEST``): may it send the file?

With deploy/nginx/mosic-auth-request.conf, nginx asks Mosic, in an ``auth_request``
subrequest, about every stream request before it sends anything: the same URI, method and
headers (key, signed link, Range, conditions) with ``X-Mosic-Decide: 1`` added. Mosic answers
one of two ways, without a body:

* **200 with ``X-Mosic-File: <stored file name>``** and the answer's ``Content-Type``,
  ``ETag``, ``Last-Modified`` and ``Cache-Control``: nginx sends that file from the media
  root itself, applying the Range. Mosic has authorised the request and counted the play
  by the stream rule, from the original request's method and Range, as for any answer it
  sends itself.
* **204**: not one for nginx to send (a denial, a 304, a 416, a HEAD, a transcode, a
  library or metadata-only clip, a condition nginx would judge differently, any error).
  nginx then passes the request on to Mosic as without the option, and Mosic answers it, with
  its own status and body; nothing was counted for the question.

A 204 rather than Mosic's own status, because nginx answers any status of its subrequest but
2xx, 401 and 403 with a 500 of its own, and would send its own page for those two.
"""

from __future__ import annotations

import falcon

DECIDE_HEADER = "X-Mosic-Decide"
FILE_HEADER = "X-Mosic-File"
QUESTION_METHODS = frozenset({"GET", "HEAD"})


def asks_decision(req) -> bool:
    """Whether this request is nginx asking (``DECIDE_HEADER``), not one to answer. Only a
    read is a question: nothing that changes state is ever turned into one."""
    return req.method in QUESTION_METHODS and bool(req.get_header(DECIDE_HEADER))


class NginxDecisions:
    """Turns every answer to nginx's question that does not name a file into a bodiless 204
    ("ask Mosic"): errors, denials and Subsonic's failed answers included, and every answer
    while ``MOSIC_NGINX_AUTH_REQUEST`` is off (so a misconfigured pair still serves, through
    Mosic, each play counted once). nginx sets the header on its questions alone and clears it
    on every request it passes on."""

    async def process_response(self, req, resp, resource, req_succeeded) -> None:
        if not asks_decision(req) or (resp.status_code == 200 and resp.get_header(FILE_HEADER)):
            return
        resp.status = falcon.HTTP_204
        resp.text = resp.data = resp.media = None
        resp.content_length = None
        if resp.stream is not None:  # none of ours sets one for a question; closed if any did
            stream, resp.stream = resp.stream, None
            if hasattr(stream, "aclose"):
                await stream.aclose()
