"""What spectators may send, and how the server answers bad input (docs/PROTOCOL.md)."""

import json
from typing import Any

from live.serializers import encode

# Spectators send almost nothing: a ping or a resync request is under 30 bytes.
MAX_CLIENT_MESSAGE_BYTES = 4096

CLOSE_UNSUPPORTED_DATA = 1003  # a binary frame
CLOSE_MESSAGE_TOO_BIG = 1009  # a frame over MAX_CLIENT_MESSAGE_BYTES
CLOSE_TRY_AGAIN_LATER = 1013  # the channel layer is unreachable; reconnect later
CLOSE_BOARD_NOT_FOUND = 4404  # unknown or deleted board; do not reconnect

CLIENT_MESSAGE_TYPES = ("ping", "resync")

PONG = encode({"type": "pong"})


class ClientError(Exception):
    """A client frame the server cannot act on; answered with an error frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def frame(self) -> str:
        return encode({"type": "error", "code": self.code, "message": self.message})


def parse_client_message(text: str) -> dict[str, Any]:
    """Decode one text frame from a spectator, or raise ClientError."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise ClientError("invalid_json", "Frames must be JSON text.") from None
    if not isinstance(message, dict):
        raise ClientError("invalid_message", "A frame must be a JSON object.")
    if message.get("type") not in CLIENT_MESSAGE_TYPES:
        raise ClientError(
            "unknown_type",
            f"Unknown message type; expected one of: {', '.join(CLIENT_MESSAGE_TYPES)}.",
        )
    return message
