"""The JSON frames of the protocol (docs/PROTOCOL.md), for snapshots and updates alike.

Every frame a spectator receives is built here and encoded once, by `encode()`. Frames about
one board carry its slug at the top level, so that the same encoded update serves per-board
sockets and /ws/ subscriptions alike.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from live.models import Board, Player


def encode(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def board_payload(board: Board) -> dict[str, Any]:
    return {"slug": board.slug, "name": board.name}


def ranked(players: Iterable[Player]) -> list[dict[str, Any]]:
    """Players in rank order (score descending, then name); ties share a rank: 1, 2, 2, 4."""
    ordered = sorted(players, key=lambda p: (-p.score, p.name))
    payloads = []
    rank = 0
    for position, player in enumerate(ordered, start=1):
        if position == 1 or player.score != ordered[position - 2].score:
            rank = position
        payloads.append({"id": player.pk, "name": player.name, "score": player.score, "rank": rank})
    return payloads


def snapshot_payload(*, board: Board, version: int, players: Iterable[Player]) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "slug": board.slug,
        "board": board_payload(board),
        "version": version,
        "players": ranked(players),
    }


def update_payload(
    *,
    board: Board,
    version: int,
    players: Iterable[Player],
    changed_ids: set[int],
    removed_ids: Iterable[int],
    board_changed: bool,
) -> dict[str, Any]:
    """An update carrying the changed players, with their ranks among all `players`."""
    payload: dict[str, Any] = {
        "type": "update",
        "slug": board.slug,
        "version": version,
        "players": [p for p in ranked(players) if p["id"] in changed_ids],
        "removed": sorted(removed_ids),
    }
    if board_changed:
        payload["board"] = board_payload(board)
    return payload


def error_payload(code: str, message: str, *, slug: str | None = None) -> dict[str, Any]:
    """An error frame; `slug` names the subscription it is about (/ws/ only)."""
    payload = {"type": "error", "code": code, "message": message}
    if slug is not None:
        payload["slug"] = slug
    return payload


def stale_frame(slug: str) -> str:
    """The server lost its channel layer: this board's updates may be missing until a snapshot."""
    return encode({"type": "stale", "slug": slug})


def unsubscribed_frame(slug: str, reason: str) -> str:
    """A /ws/ subscription ended: client, not_found, forbidden or removed (docs/PROTOCOL.md)."""
    return encode({"type": "unsubscribed", "slug": slug, "reason": reason})


def renamed_frame(slug: str, to: str) -> str:
    """A /ws/ subscription's board changed its slug: from now on it is named `to`."""
    return encode({"type": "renamed", "slug": slug, "to": to})


def watching_payload(*, slug: str, count: int) -> dict[str, Any]:
    return {"type": "watching", "slug": slug, "count": count}


def watching_frame(*, slug: str, count: int) -> "Frame":
    """A board's `watching` frame: no version, the same for every spectator of the board."""
    return Frame(version=0, text=encode(watching_payload(slug=slug, count=count)), public=True)


def with_watching(snapshot: "Frame", count: int) -> "Frame":
    """The snapshot with its `watching` count, as the last key of the object already encoded:
    a board's snapshot is read and encoded once per version, whatever the count."""
    text = snapshot.text
    assert text.endswith("}"), "an encoded snapshot is a JSON object"
    return replace(snapshot, text=f'{text[:-1]},"watching":{count:d}}}', _prepared=None)


# A member frame's limits (docs/PROTOCOL.md, "Messages to one member").
MEMBER_EVENT = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
MAX_MEMBER_PAYLOAD_BYTES = 8192
MAX_NOTICE_CHARACTERS = 1000


class InvalidMemberMessage(ValueError):
    """A message to a member that breaks the protocol's limits; the message says which."""


def member_frame(*, event: str, payload: dict[str, Any]) -> str:
    """`{"type": "member", "event": ..., "payload": ...}`, encoded, or InvalidMemberMessage."""
    if not isinstance(event, str) or not MEMBER_EVENT.fullmatch(event):
        raise InvalidMemberMessage(
            f"event {event!r}: 1 to 32 of a-z 0-9 _ . - starting with a letter, e.g. 'notice'"
        )
    if not isinstance(payload, dict):
        raise InvalidMemberMessage(f"payload must be a JSON object (a dict), not {type(payload).__name__}")
    if event == "notice":
        text = payload.get("text")
        if set(payload) != {"text"} or not isinstance(text, str):
            raise InvalidMemberMessage('a notice\'s payload is {"text": "..."}')
        if not 1 <= len(text) <= MAX_NOTICE_CHARACTERS:
            raise InvalidMemberMessage(
                f"a notice's text has 1 to {MAX_NOTICE_CHARACTERS} characters, not {len(text)}"
            )
    try:
        encoded_payload = encode(payload)
    except (TypeError, ValueError) as error:
        raise InvalidMemberMessage(f"payload is not JSON: {error}") from None
    try:
        size = len(encoded_payload.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidMemberMessage("payload holds a lone surrogate, which no socket can send") from None
    if size > MAX_MEMBER_PAYLOAD_BYTES:
        raise InvalidMemberMessage(
            f"payload is {size} bytes of JSON; the limit is {MAX_MEMBER_PAYLOAD_BYTES}"
        )
    return encode({"type": "member", "event": event, "payload": payload})


@dataclass(eq=False)
class Frame:
    """An encoded snapshot or update of one board version, ready for every socket."""

    version: int
    text: str
    # Relays hold a private board's frames back from spectators not allowed to see it.
    public: bool
    snapshot: bool = False
    slug: str = ""  # the board's slug as of this version (relays look watched boards up by it)
    # The message framed once, by the first socket that sends it (live/delivery/daphne.py).
    _prepared: object = field(default=None, repr=False)

    def prepared_for(self, socket) -> object:
        if self._prepared is None:
            self._prepared = socket.prepare(self.text)
        return self._prepared
