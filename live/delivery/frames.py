"""The JSON frames of the protocol (docs/PROTOCOL.md), for snapshots and updates alike.

Every frame a spectator receives is built here and encoded once, by `encode()`.
"""

import json
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
        "version": version,
        "players": [p for p in ranked(players) if p["id"] in changed_ids],
        "removed": sorted(removed_ids),
    }
    if board_changed:
        payload["board"] = board_payload(board)
    return payload


def error_payload(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


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
