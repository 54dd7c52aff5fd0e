"""Reads of the record: a board's change-sets as the history API, the timeline and the admin show them.

The record itself is written by live/scores/changes.py, in each writer's transaction.
Who made a change-set is shown to staff only (`shows_who`); the board's own access rule
stays in live/scores/selectors.py.
"""

from collections.abc import Iterable
from typing import Any

from django.db.models import Max, Prefetch, QuerySet

from live.models import Board, Change, PlayerChange

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def shows_who(user) -> bool:
    """Whether `user` sees who made each change-set (staff do; spectators never)."""
    return user is not None and user.is_authenticated and user.is_staff


def who(change: Change) -> str:
    """Who made a change-set, in words: the username, or the kind of script."""
    if change.user is not None:
        return change.user.get_username()
    return "a script" if change.source == Change.Source.SCRIPT else f"a script ({change.source})"


def change_sets(*, board: Board) -> QuerySet[Change]:
    """The board's change-sets with their entries, the user read along (newest first)."""
    entries = Prefetch("players", queryset=PlayerChange.objects.order_by("player_id"))
    return board.changes.select_related("user").prefetch_related(entries).order_by("-version")


def board_history(
    *, board: Board, after: int = 0, limit: int = DEFAULT_LIMIT, with_who: bool
) -> dict[str, Any]:
    """The history API's document: change-sets after version `after`, oldest first, at most `limit`."""
    records = change_sets(board=board).filter(version__gt=after).order_by("version")[:limit]
    return {"board": board.slug, "changes": [change_payload(record, with_who=with_who) for record in records]}


def change_payload(change: Change, *, with_who: bool) -> dict[str, Any]:
    entries = list(change.players.all())
    payload: dict[str, Any] = {
        "version": change.version,
        "at": change.at.isoformat(),
        "source": change.source,
        "players": [
            {
                "id": entry.player_id,
                "name": entry.name_before if entry.name_after is None else entry.name_after,
                "from": entry.score_before,
                "to": entry.score_after,
            }
            for entry in entries
        ],
        "removed": [entry.player_id for entry in entries if entry.name_after is None],
    }
    if with_who:
        payload["by"] = change.user.get_username() if change.user is not None else None
    return payload


# Words, for the admin's list and the timeline page.


def _quoted(value: Any) -> str:
    return f"“{value}”"


def describe_entry(entry: PlayerChange) -> str:
    """One player's change in words: "Ken 14 → 19", "Ada renamed to “Ada L.”", "Radia added (0)"."""
    if entry.name_before is None and entry.name_after is None:
        return f"player {entry.player_id} added and removed"
    if entry.name_before is None:
        return f"{entry.name_after} added ({entry.score_after})"
    if entry.name_after is None:
        return f"{entry.name_before} removed (was {entry.score_before})"
    parts = []
    if entry.name_before != entry.name_after:
        parts.append(f"{entry.name_before} renamed to {_quoted(entry.name_after)}")
    if entry.score_before != entry.score_after:
        name = "" if parts else f"{entry.name_after} "
        parts.append(f"{name}{entry.score_before} → {entry.score_after}")
    return ", ".join(parts) or f"{entry.name_after} unchanged ({entry.score_after})"


def describe_board_fields(board_fields: dict[str, list]) -> list[str]:
    """The board's own changes in words."""
    if any(old is None for old, _ in board_fields.values()):
        return ["board created"]
    words = []
    for name, (_, new) in board_fields.items():
        if name == "is_public":
            words.append("board made public" if new else "board made private")
        elif name == "name":
            words.append(f"board renamed to {_quoted(new)}")
        else:
            words.append(f"board {name} changed to {_quoted(new)}")
    return words


def describe(change: Change, entries: Iterable[PlayerChange] | None = None) -> list[str]:
    """A change-set in words, one line per board change and per player."""
    entries = change.players.all() if entries is None else entries
    lines = [f"undo of version {change.undoes}"] if change.undoes is not None else []
    return lines + describe_board_fields(change.board_fields) + [describe_entry(e) for e in entries]


def summary(change: Change, *, at_most: int = 5) -> str:
    """A change-set in one line: "Ken 14 → 19; Ada renamed to “Ada L.”; … and 3 more"."""
    lines = describe(change)
    if not lines:
        return "no change"
    shown = "; ".join(lines[:at_most])
    return shown if len(lines) <= at_most else f"{shown}; … and {len(lines) - at_most} more"


def players_on_record(
    *, board_id: int | None = None, player_ids: Iterable[int] = ()
) -> list[tuple[int, str]]:
    """(id, latest recorded name) of the players ever recorded on a board, or of the given ids."""
    entries = PlayerChange.objects.all()
    if board_id is not None:
        entries = entries.filter(change__board_id=board_id)
    else:
        entries = entries.filter(player_id__in=list(player_ids))
    # A player's entries are written in the order of its change-sets: its newest has the highest id.
    newest = entries.values("player_id").annotate(newest=Max("pk")).values("newest")
    rows = PlayerChange.objects.filter(pk__in=newest).values_list("player_id", "name_before", "name_after")
    names = [(player_id, before if after is None else after) for player_id, before, after in rows]
    return sorted(names, key=lambda item: (item[1].casefold(), item[0]))
