"""Server-Sent Events: the spectator protocol as one long HTTP response (docs/PROTOCOL.md).

For networks that block WebSockets. Each stream is one more spectator of the process's relay
(live/delivery/feed.py), exactly like a WebSocket: the same frames, in the same order, and
no channel-layer member of its own. The response stays open until the client goes away.
"""

import asyncio
import functools
import logging
import re

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer

from live.delivery import reads
from live.delivery.frames import encode, error_payload
from live.delivery.protocol import CLOSE_BOARD_NOT_FOUND, CLOSE_FORBIDDEN, close_code_for
from live.delivery.relay import get_relay
from live.scores.selectors import BoardUnavailable

logger = logging.getLogger(__name__)

# A comment after this many seconds without an event: proxies and clients see a live stream.
KEEP_ALIVE_AFTER = 15.0
KEEP_ALIVE = b": keep-alive\n\n"
OPENING = b": live scoreboard\n\n"
RETRY_AFTER_SECONDS = 5

STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # nginx would otherwise buffer the response and deliver events in bursts.
    (b"x-accel-buffering", b"no"),
    # Served before Django's middleware, so what it would add is said here.
    (b"x-content-type-options", b"nosniff"),
]

# Where a WebSocket closes with a code, a stream says why in an error frame, then ends.
ENDINGS = {
    CLOSE_BOARD_NOT_FOUND: (404, "board_not_found", "No board with this slug."),
    CLOSE_FORBIDDEN: (403, "forbidden", "You may not view this board."),
}

# Snapshots and updates carry their version right after their type (and a snapshot's board,
# whose name is a JSON string: an unescaped quote cannot occur inside it).
VERSION = re.compile(r'"version":(\d+)')
FRAME_WITH_VERSION = ('{"type":"snapshot"', '{"type":"update"')


def frame_version(text: str) -> int | None:
    if not text.startswith(FRAME_WITH_VERSION):
        return None
    match = VERSION.search(text)
    return int(match.group(1)) if match else None


@functools.lru_cache(maxsize=64)
def event(text: str) -> bytes:
    """One frame as an SSE event, encoded once for every stream of the board (frames are
    shared str objects, so a cache hit costs an identity check)."""
    version = frame_version(text)
    # JSON escapes CR and LF, the only line breaks of the format: one data line per frame.
    head = b"data: " if version is None else b"id: %d\ndata: " % version
    return head + text.encode() + b"\n\n"


def last_event_id(scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"last-event-id":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 20 else None
    return None


class EventStreamConsumer(AsyncHttpConsumer):
    """One spectator of one board over Server-Sent Events, fed by the relay like a socket."""

    channel_layer_alias = None

    board_id: int | None = None
    may_view_private = False
    # No socket to write frames framed once for all (live/delivery/daphne.py): the feed
    # hands each frame to send_frame().
    socket = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Frames from the relay wait here until the response has started.
        self.held: list[str] | None = []
        self.ended_with: int | None = None
        self.last_sent = 0.0
        self.keep_alive: asyncio.Task | None = None

    async def dispatch(self, message) -> None:
        # Like consumers.NoDatabaseConsumer: no hop to close database connections it never
        # opened (its reads hop in live/delivery/reads.py).
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def http_disconnect(self, message) -> None:
        await self.disconnect()
        raise StopConsumer()

    async def http_request(self, message) -> None:
        # AsyncHttpConsumer ends the consumer when handle() returns; a stream must live on
        # (so that http.disconnect still reaches it) until the client goes away.
        if "body" in message:
            self.body.append(message["body"])
        if message.get("more_body"):
            return
        if not await self.open_stream():
            await self.disconnect()
            raise StopConsumer()

    async def open_stream(self) -> bool:
        """Start the stream (True), or answer with an error response (False)."""
        if self.scope["method"] != "GET":
            await self.send_json(405, error_payload("method_not_allowed", "Use GET."), [(b"allow", b"GET")])
            return False
        slug = self.scope["url_route"]["kwargs"]["slug"]
        try:
            board_id, self.may_view_private = await get_relay().find_board(
                slug=slug, user=self.scope.get("user")
            )
        except BoardUnavailable as refusal:
            await self.send_ending(close_code_for(refusal))
            return False
        self.board_id = board_id
        try:
            await get_relay().watch(board_id, self)
        except Exception as exc:  # noqa: BLE001 - the broker is down; the client retries
            logger.warning("event stream refused, channel layer unavailable: %s", exc)
            await self.leave()
            payload = error_payload("unavailable", "Try again later.")
            await self.send_json(503, payload, [(b"retry-after", b"%d" % RETRY_AFTER_SECONDS)])
            return False
        resume_from = last_event_id(self.scope)
        if resume_from is not None:
            await self.resume(resume_from)
        if self.ended_with is not None:  # refused meanwhile (made private, deleted)
            await self.leave()
            await self.send_ending(self.ended_with)
            return False
        held, self.held = self.held, None
        await self.send_headers(status=200, headers=STREAM_HEADERS)
        await self.send_body(OPENING + b"".join(event(text) for text in held), more_body=True)
        self.last_sent = asyncio.get_running_loop().time()
        self.keep_alive = asyncio.create_task(self.keep_alive_loop())
        return True

    async def resume(self, version: int) -> None:
        """Replace the held snapshot by what a client holding `version` lacks (PROTOCOL.md)."""
        snapshot = self.held[0] if self.held else ""
        current = frame_version(snapshot) if snapshot.startswith('{"type":"snapshot"') else None
        if current is None or version > current:
            return  # a newer version than the board's: this client needs the snapshot
        missed: list[str] = []
        if version < current:
            frames = await reads.read_updates_until(self.board_id, version, current)
            if frames is None:
                return  # not in the change records: the snapshot serves
            missed = [frame.text for frame in frames]
        # Frames the relay sent meanwhile stay behind the missed ones, in order.
        self.held[0:1] = missed

    async def send_frame(self, text: str) -> None:
        if self.held is not None:
            self.held.append(text)
            return
        await self.send_body(event(text), more_body=True)
        self.last_sent = asyncio.get_running_loop().time()

    async def close_with(self, code: int) -> None:
        if self.held is not None:
            self.ended_with = code
            return
        self.stop_keep_alive()
        ending = ENDINGS.get(code)
        last = b"" if ending is None else event(encode(error_payload(*ending[1:])))
        # Daphne finishes the response, then sends http.disconnect: the relay is left there.
        await self.send_body(last, more_body=False)

    async def keep_alive_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            quiet_until = self.last_sent + KEEP_ALIVE_AFTER
            if loop.time() < quiet_until:
                await asyncio.sleep(quiet_until - loop.time())
                continue
            await self.send_body(KEEP_ALIVE, more_body=True)
            self.last_sent = loop.time()

    def stop_keep_alive(self) -> None:
        if self.keep_alive is not None:
            self.keep_alive.cancel()
            self.keep_alive = None

    async def disconnect(self) -> None:
        self.stop_keep_alive()
        await self.leave()

    async def leave(self) -> None:
        board_id, self.board_id = self.board_id, None
        if board_id is not None:
            await get_relay().leave(board_id, self)

    async def send_ending(self, code: int) -> None:
        status, error, message = ENDINGS[code]
        await self.send_json(status, error_payload(error, message))

    async def send_json(self, status: int, payload: dict, headers: list | None = None) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"x-content-type-options", b"nosniff"),
            *(headers or []),
        ]
        await self.send_response(status, encode(payload).encode(), headers=headers)
