"""Falcon's in-process test client, made to behave like a listener who stays connected.

``falcon.testing.ASGIConductor`` signals ``http.disconnect`` as soon as a request is sent,
which no real client does: Mosic would stop every stream at once, as it does for a listener
who hangs up. ``StaysConnected`` holds that disconnect back until the app has sent its whole
response. The app itself runs unchanged; hang-ups are tested over real HTTP (test_e2e).
"""

from __future__ import annotations

import asyncio


class StaysConnected:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered = asyncio.Event()

        async def receive_after_answer():
            event = await receive()
            if event["type"] == "http.disconnect":
                await answered.wait()
            return event

        async def send_and_note(message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered.set()

        await self.app(scope, receive_after_answer, send_and_note)
