"""What spectators may send, and how the server answers bad input (docs/PROTOCOL.md)."""

import json
import re
import time
from typing import Any

from live.delivery.frames import encode, error_payload

# Spectators send almost nothing: a ping or a resync request is under 30 bytes.
MAX_CLIENT_MESSAGE_BYTES = 4096

# A page pings every 20 s and resyncs only after a gap; each resync reads the database,
# so a client sending more than this many frames within one second is closed.
MAX_CLIENT_MESSAGES_PER_SECOND = 10

CLOSE_GOING_AWAY = 1001  # the server process is stopping; reconnect, to another process
CLOSE_UNSUPPORTED_DATA = 1003  # a binary frame
CLOSE_INVALID_DATA = 1007  # not UTF-8 (sent by autobahn itself)
CLOSE_POLICY_VIOLATION = 1008  # flooding: over MAX_CLIENT_MESSAGES_PER_SECOND
CLOSE_MESSAGE_TOO_BIG = 1009  # a frame over MAX_CLIENT_MESSAGE_BYTES
CLOSE_TRY_AGAIN_LATER = 1013  # the channel layer is unreachable; reconnect later
CLOSE_FORBIDDEN = 4403  # a private board this user may not view; do not reconnect
CLOSE_BOARD_NOT_FOUND = 4404  # unknown or deleted board; do not reconnect

# RFC 6455 codes a server may send that autobahn's sendClose() refuses (live/delivery/daphne.py).
SERVER_CLOSE_CODES = frozenset(
    {CLOSE_GOING_AWAY, CLOSE_UNSUPPORTED_DATA, CLOSE_INVALID_DATA, CLOSE_POLICY_VIOLATION}
    | {CLOSE_MESSAGE_TOO_BIG, 1011, 1012, CLOSE_TRY_AGAIN_LATER}
)

CLIENT_MESSAGE_TYPES = ("ping", "resync")  # on /ws/boards/<slug>/
MULTIPLEX_MESSAGE_TYPES = ("ping", "subscribe", "unsubscribe", "resync")  # on /ws/

# Boards one /ws/ connection may subscribe to at once (docs/PROTOCOL.md says at least 20).
MAX_SUBSCRIPTIONS = 20
# A slug as Django's <slug:> converter takes it, within Board.slug's length.
SLUG = re.compile(r"[-a-zA-Z0-9_]{1,100}")

PONG = encode({"type": "pong"})


class ClientError(Exception):
    """A client frame the server cannot act on; answered with an error frame."""

    def __init__(
        self, code: str, message: str, *, close_code: int | None = None, slug: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # Set for abuse that ends the connection instead of an error frame.
        self.close_code = close_code
        self.slug = slug  # the /ws/ subscription it is about, if any

    def frame(self) -> str:
        return encode(error_payload(self.code, self.message, slug=self.slug))


class FloodGuard:
    """Counts one connection's frames in fixed one-second windows."""

    clock = staticmethod(time.monotonic)

    def __init__(self, limit: int = MAX_CLIENT_MESSAGES_PER_SECOND) -> None:
        self.limit = limit
        self.window_start = float("-inf")
        self.count = 0

    def allow(self) -> bool:
        """Record one frame; False once the current window holds more than `limit` frames."""
        now = self.clock()
        if now - self.window_start >= 1.0:
            self.window_start, self.count = now, 0
        self.count += 1
        return self.count <= self.limit


def message_size(text: str) -> int:
    """Size in UTF-8 bytes; lone surrogates (never valid on the wire) count as 3 bytes."""
    return len(text.encode("utf-8", "surrogatepass"))


def parse_client_message(text: str, *, types: tuple[str, ...] = CLIENT_MESSAGE_TYPES) -> dict[str, Any]:
    """Decode one text frame from a spectator, or raise ClientError."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise ClientError("invalid_json", "Frames must be JSON text.") from None
    if not isinstance(message, dict):
        raise ClientError("invalid_message", "A frame must be a JSON object.")
    if message.get("type") not in types:
        raise ClientError("unknown_type", f"Unknown message type; expected one of: {', '.join(types)}.")
    return message


def parse_client_frame(
    text: str | None,
    data: bytes | None,
    *,
    flood_guard: FloodGuard,
    types: tuple[str, ...] = CLIENT_MESSAGE_TYPES,
) -> dict[str, Any]:
    """Check one frame from a spectator against every limit, then decode it (or ClientError)."""
    if not flood_guard.allow():
        raise ClientError("flood", "Too many frames.", close_code=CLOSE_POLICY_VIOLATION)
    if text is None:
        raise ClientError("binary", "Frames must be text.", close_code=CLOSE_UNSUPPORTED_DATA)
    if message_size(text) > MAX_CLIENT_MESSAGE_BYTES:
        raise ClientError("too_big", "Frame too big.", close_code=CLOSE_MESSAGE_TOO_BIG)
    return parse_client_message(text, types=types)


def board_of(message: dict[str, Any]) -> str:
    """The slug a /ws/ subscribe, unsubscribe or resync names, or ClientError."""
    board = message.get("board")
    if not isinstance(board, str) or not SLUG.fullmatch(board):
        raise ClientError("invalid_board", "`board` must be a board's slug: 1 to 100 of a-z A-Z 0-9 - _.")
    return board


def close_code_for(refusal) -> int:
    """The close code of a board this socket cannot watch (a selectors.BoardUnavailable)."""
    return CLOSE_FORBIDDEN if refusal.reason == "forbidden" else CLOSE_BOARD_NOT_FOUND
