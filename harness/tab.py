"""One open page's WebSocket, with or without a session cookie: each frame and the close, timed."""

import asyncio
import json
import time
from contextlib import suppress

import websockets

from harness.servers import origin_of


class Tab:
    """A `websockets` client of one board that records what arrives, and when (wall clock)."""

    def __init__(self, server_url: str, slug: str, *, session: str | None = None) -> None:
        self.url = f"{server_url}/ws/boards/{slug}/"
        self.headers = {"Cookie": f"sessionid={session}"} if session else {}
        self.frames: list[tuple[float, dict]] = []
        self.close_code: int | None = None
        self.closed_at: float | None = None
        self.changed = asyncio.Condition()
        self.socket = None
        self.task: asyncio.Task | None = None

    async def open(self) -> "Tab":
        """Connect and wait for the first frame (the snapshot)."""
        self.socket = await websockets.connect(
            self.url, origin=origin_of(self.url), additional_headers=self.headers, open_timeout=10
        )
        self.task = asyncio.create_task(self._read())
        await self.wait_for(lambda: self.frames, "given its snapshot")
        return self

    async def _read(self) -> None:
        with suppress(websockets.ConnectionClosed):
            async for text in self.socket:
                async with self.changed:
                    self.frames.append((time.time(), json.loads(text)))
                    self.changed.notify_all()
        async with self.changed:
            self.close_code, self.closed_at = self.socket.close_code, time.time()
            self.changed.notify_all()

    async def wait_for(self, predicate, what: str, timeout: float = 10) -> None:
        try:
            async with asyncio.timeout(timeout), self.changed:
                await self.changed.wait_for(predicate)
        except TimeoutError:
            kinds = [frame["type"] for _, frame in self.frames]
            raise AssertionError(
                f"{self.url} not {what} within {timeout}s: {kinds}, close {self.close_code}"
            ) from None

    async def closed(self, timeout: float = 10) -> tuple[int | None, float]:
        await self.wait_for(lambda: self.closed_at is not None, "closed", timeout)
        return self.close_code, self.closed_at

    async def frame(self, kind: str, *, after: int = 0, timeout: float = 10) -> dict:
        """The first frame of type `kind` among those from index `after` on."""
        await self.wait_for(
            lambda: any(f["type"] == kind for _, f in self.frames[after:]), f"sent {kind}", timeout
        )
        return next(f for _, f in self.frames[after:] if f["type"] == kind)

    async def send(self, message: dict) -> None:
        await self.socket.send(json.dumps(message))

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self.task is not None:
            with suppress(asyncio.CancelledError):
                await self.task
