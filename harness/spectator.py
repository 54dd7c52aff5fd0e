"""A protocol-following spectator: a `websockets` client that behaves like scoreboard.js."""

import asyncio
import json
import random
import time
from contextlib import asynccontextmanager, suppress

import websockets

from harness.database import Database
from harness.servers import origin_of

CONVERGE_WITHIN = 5.0  # seconds, the promise of docs/RELIABILITY.md


class Spectator:
    """A `websockets` client that behaves like scoreboard.js.

    It applies the snapshot and then updates in version order, asks for a resync on a gap,
    and reconnects with the page's back-off on any close but 4404, to the next server URL.
    """

    def __init__(self, urls: list[str], slug: str = "demo") -> None:
        self.urls = [f"{url}/ws/boards/{slug}/" for url in urls]
        self.version: int | None = None
        self.scores: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.first_snapshot: int | None = None  # the version of the first snapshot
        self.versions_seen: list[int] = []  # every update's version, in arrival order
        self.awaiting_snapshot = True
        self.close_codes: list[int | None] = []
        self.frames: list[str] = []  # frame types in arrival order
        self.applied_at: dict[int, float] = {}  # version -> wall-clock time it was shown
        self.connections = 0
        self.changed = asyncio.Condition()
        self.task: asyncio.Task | None = None

    def start(self) -> "Spectator":
        self.task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        attempt = 0
        index = 0
        while True:
            url = self.urls[index % len(self.urls)]
            code = None  # never connected
            try:
                async with websockets.connect(url, origin=origin_of(url), open_timeout=5) as socket:
                    attempt = 0
                    self.connections += 1
                    self.awaiting_snapshot = True
                    with suppress(websockets.ConnectionClosed):
                        async for text in socket:
                            await self._receive(socket, json.loads(text))
                    code = socket.close_code  # 1006 when the TCP connection just dropped
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                pass
            await self._note(close_code=code)
            if code == 4404:
                return
            index += 1
            ceiling = min(10.0, 0.5 * 2**attempt)
            attempt += 1
            await asyncio.sleep(ceiling / 2 + random.random() * ceiling / 2)  # the page's back-off

    async def _receive(self, socket, message: dict) -> None:
        kind = message["type"]
        if kind == "snapshot":
            self.scores = {p["id"]: p["score"] for p in message["players"]}
            self.names = {p["id"]: p["name"] for p in message["players"]}
            self.version = message["version"]
            if self.first_snapshot is None:
                self.first_snapshot = self.version
            self.applied_at.setdefault(self.version, time.time())
            self.awaiting_snapshot = False
        elif kind == "update":
            self.versions_seen.append(message["version"])
            if self.awaiting_snapshot or message["version"] <= self.version:
                return
            if message["version"] == self.version + 1:
                self.scores.update({p["id"]: p["score"] for p in message["players"]})
                self.names.update({p["id"]: p["name"] for p in message["players"]})
                for player_id in message["removed"]:
                    self.scores.pop(player_id, None)
                    self.names.pop(player_id, None)
                self.version = message["version"]
                self.applied_at[self.version] = time.time()
            else:
                self.frames.append("gap")
                self.awaiting_snapshot = True
                await socket.send(json.dumps({"type": "resync"}))
        await self._note(frame=kind)

    async def _note(self, *, frame: str | None = None, close_code: int | None = None) -> None:
        async with self.changed:
            if frame is not None:
                self.frames.append(frame)
            else:
                self.close_codes.append(close_code)
            self.changed.notify_all()

    async def wait_until(self, predicate, timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout), self.changed:
                await self.changed.wait_for(lambda: predicate(self))
        except TimeoutError:
            raise AssertionError(
                f"spectator not {what} within {timeout}s: version={self.version} scores={self.scores} "
                f"frames={self.frames[-10:]} closes={self.close_codes}"
            ) from None


@asynccontextmanager
async def spectators(urls: list[str], count: int):
    """`count` spectators spread over the servers' URLs, always stopped."""
    crowd: list[Spectator] = []
    try:
        await join(crowd, urls, count)
        yield crowd
    finally:
        for spectator in crowd:
            await spectator.stop()


async def join(crowd: list[Spectator], urls: list[str], count: int, *, at_once: int = 40) -> None:
    """`count` more spectators in `crowd`, `at_once` connecting at a time (Daphne's backlog is 50)."""
    for _ in range(count):
        if len(crowd) >= at_once:
            await crowd[-at_once].wait_until(lambda s: s.version is not None, 30, "connected")
        i = len(crowd)
        crowd.append(Spectator(urls[i % len(urls) :] + urls[: i % len(urls)]).start())


async def converge(
    crowd: list[Spectator], db: Database, board_id: int, timeout: float = CONVERGE_WITHIN
) -> float:
    """Wait until every spectator shows the committed standings; returns the seconds taken."""
    started = time.monotonic()
    version, scores = await asyncio.to_thread(db.standings, board_id)
    for spectator in crowd:
        remaining = max(0.1, timeout - (time.monotonic() - started))
        await spectator.wait_until(
            lambda s: s.version == version and s.scores == scores, remaining, f"at version {version}"
        )
    return time.monotonic() - started
