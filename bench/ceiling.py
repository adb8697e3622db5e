"""The ceiling: the least an ASGI app can do per request (a fixed 200-byte JSON body), served
by the same uvicorn settings as ``mosic serve`` (httptools, uvloop, no access log, no server
header, lifespan on). No Mosic import: this is what the server and the loop cost alone.

Run by the suite as ``python -m uvicorn bench.ceiling:app …``.
"""

BODY = (b'{"status":"ok","padding":"' + b"x" * 172 + b'"}')[:199] + b"}"
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
