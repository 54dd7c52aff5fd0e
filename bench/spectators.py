"""A client process holding many spectator WebSockets (`websockets` package), driven over stdin.

Commands are JSON lines; each gets one JSON line back:
  {"cmd": "open", "urls": [...], "count": n, "concurrency": c}   open n more spectators
      (URLs starting http:// open Server-Sent Events streams instead of WebSockets)
  {"cmd": "collect", "commits": [[version, time], ...], "timeout": s}
      wait until every spectator has the last version (or the timeout), then report
      latencies (receipt time - commit time) and any gap, duplicate or out-of-order frame
  {"cmd": "storm", "concurrency": c}   drop every connection at once (TCP abort), then
      reconnect them all; reports the seconds until each holds a fresh snapshot
  {"cmd": "watching"}   the `watching` frames received since the last ask: in all, and the
      most one spectator received within any one second
URLs: `ws://HOST/ws/boards/SLUG/` one board per socket; `mux+ws://HOST/ws/?boards=a,b,c` one
socket subscribed to several boards, of which the first is measured; a `#passive` suffix
opens a socket that is held (memory, fan-out) but not measured.
  {"cmd": "quit"}
Receipt times are `time.time()`, comparable with the writer's commit times on one machine.
"""

import asyncio
import contextlib
import json
import resource
import sys
import time

from websockets.asyncio.client import connect

from bench.engineio import handshake, message_text, socketio_url
from harness.servers import origin_of

UPDATE_PREFIX = '{"type":"update",'
VERSION_KEY = '"version":'
SLUG_KEY = '"slug":"'


def raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, 65536), max(hard, 65536)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def frame_info(text: str) -> tuple[str, int | None, str | None]:
    """(type, version, slug) of a frame; an update's are read without decoding all of it."""
    if text.startswith(UPDATE_PREFIX):
        start = text.index(VERSION_KEY) + len(VERSION_KEY)
        end = min(i for i in (text.find(",", start), text.find("}", start)) if i != -1)
        slug_at = text.find(SLUG_KEY) + len(SLUG_KEY)
        slug = text[slug_at : text.index('"', slug_at)] if slug_at >= len(SLUG_KEY) else None
        return "update", int(text[start:end]), slug
    message = json.loads(text)
    return message.get("type"), message.get("version"), message.get("slug")


class EventStream:
    """A Server-Sent Events stream over one HTTP/1.1 connection (asyncio streams, chunked body):
    iterating it yields each event's data; `close_code` is set once the stream has ended."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.close_code: int | None = None
        self._events = self._read()

    @classmethod
    async def connect(cls, url: str) -> "EventStream":
        host, _, rest = url.removeprefix("http://").partition("/")
        name, _, port = host.partition(":")
        reader, writer = await asyncio.open_connection(name, int(port or 80), limit=1 << 22)
        request = f"GET /{rest} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
        writer.write(request.encode())
        status = await reader.readline()
        if b" 200 " not in status:
            raise ConnectionError(status.decode(errors="replace").strip())
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # headers: the body is chunked (Daphne sends no length for a stream)
        return cls(reader, writer)

    async def recv(self) -> str:
        return await anext(self._events)

    def __aiter__(self):
        return self._events

    async def _read(self):
        data, buffer = None, b""
        try:
            while size := int((await self.reader.readline()).strip() or b"0", 16):
                buffer += (await self.reader.readexactly(size + 2))[:-2]
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.startswith(b"data: "):
                        data = line[6:].decode()
                    elif line == b"" and data is not None:
                        yield data
                        data = None
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.close_code = 1000
            self.writer.close()


class Spectator:
    def __init__(self, harness: "Harness") -> None:
        self.harness = harness
        self.version: int | None = None
        self.websocket = None
        self.closed_code: int | None = None
        self.boards: list[str] = []  # subscriptions of a /ws/ socket; the first is measured
        self.passive = False
        self.watching_at: list[tuple[float, str | None]] = []  # (receipt, board)

    async def open(self, url: str) -> None:
        self.url = url
        url, _, fragment = url.partition("#")
        self.passive = fragment == "passive"
        if url.startswith("mux+"):
            url, _, boards = url.removeprefix("mux+").partition("?boards=")
            self.boards = boards.split(",")
        self.socketio = url.startswith("sio+")
        if url.startswith("http://"):
            self.websocket = await EventStream.connect(url)
        else:
            self.websocket = await connect(
                socketio_url(url) if self.socketio else url,
                origin=origin_of(url.removeprefix("sio+")),
                open_timeout=60,
                ping_interval=None,
                max_queue=None,
            )
        if self.socketio:
            await asyncio.wait_for(handshake(self.websocket), 60)
        if self.boards:
            await self.subscribe()
            return
        snapshot = json.loads(await asyncio.wait_for(self.next_text(), 60))
        self.version = snapshot["version"]

    async def subscribe(self) -> None:
        for slug in self.boards:
            await self.websocket.send(json.dumps({"type": "subscribe", "board": slug}))
        waiting = set(self.boards)
        while waiting:
            message = json.loads(await asyncio.wait_for(self.next_text(), 60))
            if message["type"] == "watching":
                self.watching_at.append((time.time(), message["slug"]))
            elif message["type"] == "snapshot":
                waiting.discard(message["slug"])
                if message["slug"] == self.boards[0]:
                    self.version = message["version"]
            elif message["type"] in ("unsubscribed", "error"):
                raise ConnectionError(json.dumps(message))

    async def next_text(self) -> str:
        while True:
            text = await self.websocket.recv()
            text = await self.unwrap(text)
            if text is not None:
                return text

    async def unwrap(self, text: str) -> str | None:
        """The frame's JSON text; Socket.IO's pings are answered, its other packets skipped."""
        if not self.socketio:
            return text
        if text == "2":
            await self.websocket.send("3")
            return None
        return message_text(text)

    async def read(self) -> None:
        receipts = self.harness.receipts
        previous = self.version
        try:
            async for packet in self.websocket:
                now = time.time()
                text = await self.unwrap(packet)
                if text is None:
                    continue
                kind, version, slug = frame_info(text)
                if kind == "watching":
                    self.watching_at.append((now, slug))
                    continue
                if self.passive or (self.boards and slug != self.boards[0]):
                    continue  # held for the load it makes, not measured
                snapshot = kind == "snapshot"
                if version is None:  # the server says our standings may be stale
                    self.harness.stale_notices += 1
                    continue
                if snapshot:  # the server resynced us (e.g. after a channel-layer outage)
                    self.harness.resyncs += 1
                    self.version = max(self.version, version)
                elif version != self.version + 1:
                    self.harness.errors.append([self.version, version])
                if snapshot:
                    pass
                elif version > self.version:
                    self.version = version
                    receipts.setdefault(version, []).append(now)
                else:
                    self.harness.duplicates += 1
                if self.version >= self.harness.waiting_for > previous:
                    self.harness.arrived()
                previous = self.version
        finally:
            self.closed_code = self.websocket.close_code
            if self.version < self.harness.waiting_for:
                self.harness.arrived()


def most_within_a_second(times: list[float]) -> int:
    """The most of these (sorted) times that fall within any one second."""
    most = first = 0
    for last, when in enumerate(times):
        while when - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


class Harness:
    def __init__(self) -> None:
        self.spectators: list[Spectator] = []
        self.receipts: dict[int, list[float]] = {}
        self.errors: list[list[int]] = []
        self.resyncs = 0
        self.stale_notices = 0
        self.duplicates = 0
        self.waiting_for = 1 << 62
        self.reached = 0
        self.done = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()

    def measured(self) -> list[Spectator]:
        return [spectator for spectator in self.spectators if not spectator.passive]

    def arrived(self) -> None:
        self.reached += 1
        if self.reached >= len(self.measured()):
            self.done.set()

    def watching(self) -> dict:
        """`watching` frames since the last ask: in all, and the most one spectator received
        within one second, of one board and of all its boards together."""
        frames = busiest = busiest_board = 0
        for spectator in self.spectators:
            received, spectator.watching_at = spectator.watching_at, []
            frames += len(received)
            busiest = max(busiest, most_within_a_second(sorted(t for t, _ in received)))
            for slug in {slug for _, slug in received}:
                times = sorted(t for t, s in received if s == slug)
                busiest_board = max(busiest_board, most_within_a_second(times))
        return {
            "frames": frames,
            "spectators": len(self.spectators),
            "most_in_one_second": busiest,
            "most_of_one_board_in_one_second": busiest_board,
        }

    async def open(self, urls: list[str], count: int, concurrency: int) -> dict:
        gate = asyncio.Semaphore(concurrency)
        failed = 0

        async def one(index: int) -> None:
            nonlocal failed
            spectator = Spectator(self)
            async with gate:
                try:
                    await spectator.open(urls[index % len(urls)])
                except Exception:  # noqa: BLE001 - counted and reported
                    failed += 1
                    return
            self.spectators.append(spectator)
            task = asyncio.create_task(spectator.read())
            self.tasks.add(task)

        start = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(count)))
        return {"opened": count - failed, "failed": failed, "seconds": time.monotonic() - start}

    async def storm(self, concurrency: int) -> dict:
        """Every connection dropped at once, then all back: the time until all are resynced."""
        urls = [spectator.url for spectator in self.spectators]
        started = time.monotonic()
        for spectator in self.spectators:
            spectator.websocket.transport.abort()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.spectators, self.tasks = [], set()
        reopened = await self.open(urls, len(urls), concurrency)
        return {**reopened, "seconds": time.monotonic() - started}

    async def collect(self, commits: list[list[float]], timeout: float) -> dict:
        last = max(int(v) for v, _ in commits)
        self.waiting_for = last
        self.done.clear()
        self.reached = 0
        for spectator in self.measured():
            if spectator.version >= last or spectator.closed_code is not None:
                self.arrived()
        if not self.measured():
            self.done.set()
        with contextlib.suppress(TimeoutError):  # reported as undelivered frames
            await asyncio.wait_for(self.done.wait(), timeout)
        self.waiting_for = 1 << 62
        commit_times = {int(v): t for v, t in commits}
        latencies = []
        per_change = []
        delivered = 0
        for version, when in commit_times.items():
            received = self.receipts.pop(version, [])
            delivered += len(received)
            latencies.extend(round((r - when) * 1000, 3) for r in received)
            if received:
                per_change.append([version, round((max(received) - when) * 1000, 3)])
        errors, self.errors = self.errors, []
        resyncs, self.resyncs = self.resyncs, 0
        stale_notices, self.stale_notices = self.stale_notices, 0
        duplicates, self.duplicates = self.duplicates, 0
        self.receipts.clear()
        return {
            "latencies_ms": latencies,
            "slowest_per_change_ms": per_change,
            "delivered": delivered,
            "expected": len(self.measured()) * len(commit_times),
            "errors": errors[:20],
            "error_count": len(errors),
            "resyncs": resyncs,
            "stale_notices": stale_notices,
            "duplicates": duplicates,
            "open": sum(1 for s in self.spectators if s.closed_code is None),
        }


async def main() -> None:
    raise_open_file_limit()
    harness = Harness()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        if command["cmd"] == "open":
            reply = await harness.open(command["urls"], command["count"], command["concurrency"])
        elif command["cmd"] == "collect":
            reply = await harness.collect(command["commits"], command["timeout"])
        elif command["cmd"] == "storm":
            reply = await harness.storm(command["concurrency"])
        elif command["cmd"] == "watching":
            reply = harness.watching()
        elif command["cmd"] == "ready":
            reply = {}
        else:
            break
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
