"""Protocol-following spectators: `websockets` clients that behave like the pages' connection.js.

`Spectator` watches one board over its own socket (/ws/boards/<slug>/); `Multiplexed` holds one
/ws/ connection for many boards. Both keep each board by the client rule (`Standings`).
"""

import asyncio
import json
import random
import time
from contextlib import asynccontextmanager, suppress

import websockets

from harness.database import Database
from harness.servers import origin_of

CONVERGE_WITHIN = 5.0  # seconds, the promise of docs/RELIABILITY.md


class Standings:
    """One board as a protocol-following client holds it, by the client rule (docs/PROTOCOL.md)."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.scores: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.first_snapshot: int | None = None  # the version of the first snapshot
        self.versions_seen: list[int] = []  # every update's version, in arrival order
        self.awaiting_snapshot = True
        self.applied_at: dict[int, float] = {}  # version -> wall-clock time it was shown

    def apply(self, message: dict) -> str:
        """Apply a snapshot or an update: "applied", "ignored" (an update already held, or
        one while a snapshot is awaited) or "gap" (then ask for a resync)."""
        if message["type"] == "snapshot":
            self.scores = {p["id"]: p["score"] for p in message["players"]}
            self.names = {p["id"]: p["name"] for p in message["players"]}
            self.version = message["version"]
            if self.first_snapshot is None:
                self.first_snapshot = self.version
            self.applied_at.setdefault(self.version, time.time())
            self.awaiting_snapshot = False
            return "applied"
        self.versions_seen.append(message["version"])
        if self.awaiting_snapshot or message["version"] <= self.version:
            return "ignored"
        if message["version"] != self.version + 1:
            self.awaiting_snapshot = True
            return "gap"
        self.scores.update({p["id"]: p["score"] for p in message["players"]})
        self.names.update({p["id"]: p["name"] for p in message["players"]})
        for player_id in message["removed"]:
            self.scores.pop(player_id, None)
            self.names.pop(player_id, None)
        self.version = message["version"]
        self.applied_at[self.version] = time.time()
        return "applied"


class Observed:
    """Frames and closes as they arrive, and a way to wait for a state (with a timeout)."""

    def __init__(self) -> None:
        self.frames: list = []  # in arrival order
        self.close_codes: list[int | None] = []
        self.changed = asyncio.Condition()

    def describe(self) -> str:
        raise NotImplementedError

    async def _note(self, *, frame=None, close_code: int | None = None) -> None:
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
                f"{self.describe()}: not {what} within {timeout}s; "
                f"frames={self.frames[-10:]} closes={self.close_codes}"
            ) from None


class Spectator(Standings, Observed):
    """A `websockets` client of one board's socket that behaves like the page.

    It applies the snapshot and then updates in version order, asks for a resync on a gap,
    and reconnects with the page's back-off on any close but 4404, to the next server URL.
    """

    def __init__(self, urls: list[str], slug: str = "demo") -> None:
        Standings.__init__(self)
        Observed.__init__(self)  # frames: their types
        self.urls = [f"{url}/ws/boards/{slug}/" for url in urls]
        self.connections = 0
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
        if kind in ("snapshot", "update"):
            outcome = self.apply(message)
            if outcome == "ignored":
                return
            if outcome == "gap":
                self.frames.append("gap")
                await socket.send(json.dumps({"type": "resync"}))
        await self._note(frame=kind)

    def describe(self) -> str:
        return f"spectator: version={self.version} scores={self.scores}"


class Multiplexed(Observed):
    """A `websockets` client of /ws/ that behaves like the pages' connection.js: one connection
    for many boards, each kept by the client rule (`boards[slug]`, a Standings).

    It subscribes to its boards, resyncs one board on a gap, follows `renamed`, records how
    each subscription ended, and after any close reconnects with the page's back-off, to the
    next server URL, and subscribes again. It paces its frames under the flood limit.
    """

    def __init__(self, urls: list[str], slugs: tuple[str, ...] = (), *, frames_per_second: int = 5) -> None:
        super().__init__()  # frames: (slug, type)
        self.urls = [f"{url}/ws/" for url in urls]
        self.boards: dict[str, Standings] = {}  # a renamed board is here under both slugs
        self.ended: dict[str, str] = {}  # slug -> the reason of its `unsubscribed` frame
        self.leaving: set[str] = set()  # unsubscribed by this client, not yet answered
        self.errors: list[dict] = []
        self.connections = 0
        self.frames_per_second = frames_per_second
        self.task: asyncio.Task | None = None
        self._outbox: asyncio.Queue[dict] = asyncio.Queue()
        self._sent_at: list[float] = []
        for slug in slugs:
            self.boards[slug] = Standings()

    def start(self) -> "Multiplexed":
        self.task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with suppress(asyncio.CancelledError):
                await self.task

    def subscribe(self, slug: str) -> Standings:
        self.ended.pop(slug, None)
        self.leaving.discard(slug)
        board = self.boards[slug] = Standings()
        self._outbox.put_nowait({"type": "subscribe", "board": slug})
        return board

    def unsubscribe(self, slug: str) -> None:
        self.leaving.add(slug)
        self._outbox.put_nowait({"type": "unsubscribe", "board": slug})

    def resync(self, slug: str) -> None:
        self.boards[slug].awaiting_snapshot = True
        self._outbox.put_nowait({"type": "resync", "board": slug})

    def held(self) -> list[str]:
        """The slugs of the boards this client subscribes to (a renamed one by its newest)."""
        gone = self.ended.keys() | self.leaving
        newest = {id(board): slug for slug, board in self.boards.items() if slug not in gone}
        return list(newest.values())

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
                    self._outbox = asyncio.Queue()  # what was not sent died with the last socket
                    for slug in self.held():
                        self.boards[slug].awaiting_snapshot = True
                        self._outbox.put_nowait({"type": "subscribe", "board": slug})
                    sender = asyncio.create_task(self._send(socket))
                    try:
                        with suppress(websockets.ConnectionClosed):
                            async for text in socket:
                                await self._receive(json.loads(text))
                    finally:
                        sender.cancel()
                    code = socket.close_code
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                pass
            await self._note(close_code=code)
            index += 1
            ceiling = min(10.0, 0.5 * 2**attempt)
            attempt += 1
            await asyncio.sleep(ceiling / 2 + random.random() * ceiling / 2)  # the page's back-off

    async def _send(self, socket) -> None:
        while True:
            message = await self._outbox.get()
            now = time.monotonic()
            self._sent_at = [t for t in self._sent_at if now - t < 1.0]
            if len(self._sent_at) >= self.frames_per_second:
                await asyncio.sleep(1.0 - (now - self._sent_at[0]))  # pacing, not synchronisation
            self._sent_at.append(time.monotonic())
            await socket.send(json.dumps(message))

    async def _receive(self, message: dict) -> None:
        kind, slug = message["type"], message.get("slug")
        board = self.boards.get(slug) if slug is not None else None
        if kind in ("snapshot", "update") and board is not None:
            if board.apply(message) == "gap":
                self.resync(slug)
        elif kind == "renamed" and board is not None:
            self.boards[message["to"]] = board
        elif kind == "unsubscribed":
            for name in [name for name, named in self.boards.items() if named is board] or [slug]:
                self.ended[name] = message["reason"]
                self.leaving.discard(name)
        elif kind == "error":
            self.errors.append(message)
        await self._note(frame=(slug, kind))

    def describe(self) -> str:
        boards = {slug: (b.version, b.scores) for slug, b in self.boards.items()}
        return f"connection: boards={boards} ended={self.ended} errors={self.errors[-3:]}"


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
