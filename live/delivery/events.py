"""Server-Sent Events: the spectator protocol as one long HTTP response (docs/PROTOCOL.md).

For networks that block WebSockets. Each stream is one more spectator of the process's relay
(live/delivery/feed.py), exactly like a WebSocket: the same frames, in the same order, and
no channel-layer member of its own. The response stays open until the client goes away.
"""

import asyncio
import functools
import logging
import re
import time

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from django.conf import settings

from live.delivery import daphne, reads
from live.delivery.auth import member_identity
from live.delivery.collector import COLLECTOR
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
VERSION = re.compile(rb'"version":(\d+)')
FRAME_WITH_VERSION = (b'{"type":"snapshot"', b'{"type":"update"')


def frame_version(payload: bytes) -> int | None:
    if not payload.startswith(FRAME_WITH_VERSION):
        return None
    match = VERSION.search(payload)
    return int(match.group(1)) if match else None


def event_of(payload: bytes) -> bytes:
    """One frame (its UTF-8 JSON) as an SSE event: JSON escapes CR and LF, the format's only
    line breaks, so a frame is one data line; snapshots and updates carry their version."""
    version = frame_version(payload)
    head = b"data: " if version is None else b"id: %d\ndata: " % version
    return head + payload + b"\n\n"


@functools.lru_cache(maxsize=64)
def event(text: str) -> bytes:
    """The event of a frame sent through ASGI, encoded once for every stream of the board
    (frames are shared str objects, so a cache hit costs an identity check)."""
    return event_of(text.encode())


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
    # A logged-in user's stream is a member socket too (live/delivery/members.py).
    user_id: int | None = None
    session_key: str | None = None
    private_access_lost = False
    counted = False  # by the collector (live/delivery/collector.py), while the stream is open
    # Where the feed writes frames framed once for all (live/delivery/daphne.py), once the
    # response has started under Daphne; until then, and elsewhere, it calls send_frame().
    socket: daphne.DaphneStream | None = None

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
        identity = member_identity(self.scope)
        if identity is not None:
            self.user_id, self.session_key = identity
            # Before reading its access, so that no change of it slips between.
            if not await self.relayed(get_relay().join_member(self)):
                return False
        try:
            board_id, may_view_private = await get_relay().find_board(
                slug=slug, user=self.scope.get("user"), session_key=self.session_key
            )
        except BoardUnavailable as refusal:
            await self.send_ending(close_code_for(refusal))
            return False
        # An access change handled while that read ran wins over it.
        self.may_view_private = may_view_private and not self.private_access_lost
        self.board_id = board_id
        if not await self.relayed(get_relay().watch(board_id, self)):
            return False
        resume_from = last_event_id(self.scope)
        if resume_from is not None:
            await self.resume(resume_from)
        if self.ended_with is not None:  # refused meanwhile (made private, deleted)
            await self.leave()
            await self.send_ending(self.ended_with)
            return False
        await self.send_headers(status=200, headers=STREAM_HEADERS)
        # Taken and sent with no await between: a frame arriving later follows through send_frame().
        held, self.held = self.held, None
        await self.send_body(OPENING + b"".join(event(text) for text in held), more_body=True)
        self.last_sent = time.monotonic()
        # From now on the feed writes updates straight to the connection, where Daphne allows.
        request = self.scope.get("extensions", {}).get(daphne.REQUEST_EXTENSION)
        if request is not None and settings.LIVE_DIRECT_SEND:
            self.socket = daphne.DaphneStream(request, encode=event_of)
        self.keep_alive = asyncio.create_task(self.keep_alive_loop())
        self.counted = True
        COLLECTOR.opened()
        return True

    async def relayed(self, joining) -> bool:
        """Await the relay's joining of a group; False (and a 503) if the broker is down."""
        try:
            await joining
        except Exception as exc:  # noqa: BLE001 - the broker is down; the client retries
            logger.warning("event stream refused, channel layer unavailable: %s", exc)
            await self.leave()
            payload = error_payload("unavailable", "Try again later.")
            await self.send_json(503, payload, [(b"retry-after", b"%d" % RETRY_AFTER_SECONDS)])
            return False
        return True

    async def resume(self, version: int) -> None:
        """Replace the held snapshot by what a client holding `version` lacks (PROTOCOL.md)."""
        snapshot = self.held[0][:2048].encode() if self.held else b""  # the version is near the start
        current = frame_version(snapshot) if snapshot.startswith(b'{"type":"snapshot"') else None
        if current is None or version > current:
            return  # a newer version than the board's: this client needs the snapshot
        missed: list[str] = []
        if version < current:
            frames = await reads.read_updates_until(self.board_id, version, current)
            if frames is None:
                return  # not in the change records: the snapshot serves
            missed = [frame.text for frame in frames]
        # Frames the relay sent meanwhile stay behind the missed ones, in order; the board's
        # count, which the snapshot carried, comes as a watching frame.
        watching = get_relay().watching_frame(self.board_id)
        self.held[0:1] = [*missed, *([watching] if watching else [])]

    async def send_frame(self, text: str) -> None:
        if self.held is not None:
            self.held.append(text)
            return
        await self.send_body(event(text), more_body=True)
        self.last_sent = time.monotonic()

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
        while True:
            written = max(self.last_sent, self.socket.last_write if self.socket is not None else 0.0)
            quiet_for = KEEP_ALIVE_AFTER - (time.monotonic() - written)
            if quiet_for > 0:
                await asyncio.sleep(quiet_for)
                continue
            await self.send_body(KEEP_ALIVE, more_body=True)
            self.last_sent = time.monotonic()

    def stop_keep_alive(self) -> None:
        if self.keep_alive is not None:
            self.keep_alive.cancel()
            self.keep_alive = None

    def lose_private_access(self) -> list[tuple[int, "EventStreamConsumer"]]:
        self.private_access_lost = True
        self.may_view_private = False
        return [] if self.board_id is None else [(self.board_id, self)]

    async def disconnect(self) -> None:
        if self.counted:
            self.counted = False
            COLLECTOR.closed()
        self.stop_keep_alive()
        await self.leave()
        if self.user_id is not None:
            await get_relay().leave_member(self)

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
