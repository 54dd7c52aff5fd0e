"""Undo: a new change-set that puts back what an earlier one changed, if nobody changed it since.

An undo never rewrites the record: it is a change-set of its own (a new version, source
"undo", made by the staff user who asked), written through the models like any other
change, so it is recorded and every spectator receives it. It restores each old value only
if the player (or the board) still holds the value the undone change-set set; otherwise
nothing is written and the refusal lists each conflict: what was expected, what is there
now, and who changed it since.

What an undo does with players: a player the change-set added is deleted; a player it
removed is restored with its id, name and score; a renamed player gets its old name back;
a score its old value. Refused as well: a change-set that created the board, a player moved
between boards (move it back in its change form), and a name that another player holds now.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from live.models import Board, Change, Player, PlayerChange
from live.scores import changes
from live.scores.history import who

MOVE_BACK = "move it back in its change form."


@dataclass(frozen=True)
class Conflict:
    """A value the undo would restore that someone changed since."""

    subject: str  # the player's name, or "the board"
    what: str  # "score", "name", "the player", ...
    expected: str
    current: str
    since: str | None = None  # who changed it since, when and through what

    def __str__(self) -> str:
        changed = f" (changed by {self.since})" if self.since else ""
        return f"{self.subject}: {self.what} should be {self.expected}, is {self.current}{changed}"


class UndoRefused(Exception):
    """The undo was not done; `reason` says why and `conflicts` lists what changed since."""

    def __init__(self, reason: str, conflicts: list[Conflict] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.conflicts = conflicts or []


@dataclass
class _Plan:
    deletes: list[int] = field(default_factory=list)
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> {"name": ..., "score": ...}
    restores: list[PlayerChange] = field(default_factory=list)
    board_fields: dict[str, Any] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


def undo_change(*, change: Change, user) -> Change:
    """Undo change-set `change` as a new change-set made by `user`; returns its record.

    Raises UndoRefused, having written nothing, when anything it would restore changed since.
    """
    with transaction.atomic(), changes.attributed(user=user, source=Change.Source.UNDO):
        changes.lock_board(board_id=change.board_id)  # nothing changes between the check and the writes
        board = Board.objects.filter(pk=change.board_id).first()
        if board is None:
            raise UndoRefused("The board of this change-set was deleted.")
        plan = _plan(change=change, board=board)
        if plan.refusals or plan.conflicts:
            reason = " ".join(plan.refusals) or (
                f"Version {change.version} was not undone: what it changed was changed again since."
            )
            raise UndoRefused(reason, plan.conflicts)
        if not (plan.deletes or plan.updates or plan.restores or plan.board_fields):
            raise UndoRefused(f"Version {change.version} changed nothing that an undo could put back.")
        change_set = changes.open_change_set(board_id=board.pk)
        change_set.record.undoes = change.version
        change_set.record.save(update_fields=["undoes"])
        try:
            with transaction.atomic():
                _write(plan=plan, board=board)
        except IntegrityError:
            raise UndoRefused(
                f"Version {change.version} was not undone: a name or slug it would restore is taken now."
            ) from None
        return change_set.record


def _plan(*, change: Change, board: Board) -> _Plan:
    plan = _Plan()
    if any(old is None for old, _ in change.board_fields.values()):
        plan.refusals.append("This change-set created the board: delete the board instead.")
        return plan
    for name, (old, new) in change.board_fields.items():
        now = getattr(board, name)
        if now != new:
            plan.conflicts.append(
                Conflict("the board", name, _shown(new), _shown(now), _board_changed_since(change, name))
            )
        else:
            plan.board_fields[name] = old
    entries = list(change.players.all())
    current = {
        row["pk"]: row
        for row in Player.objects.filter(pk__in=[e.player_id for e in entries]).values(
            "pk", "board_id", "name", "score"
        )
    }
    for entry in entries:
        _plan_entry(plan, change=change, entry=entry, now=current.get(entry.player_id))
    _check_names(plan, board=board, entries=entries)
    return plan


def _plan_entry(plan: _Plan, *, change: Change, entry: PlayerChange, now: dict | None) -> None:
    name = entry.name_after if entry.name_after is not None else entry.name_before
    if name is None:
        return  # added and removed within the change-set: nothing to put back
    since = _player_changed_since(change, entry.player_id) if now != _expected(entry, change) else None
    if entry.name_after is None:  # it removed the player: bring it back
        if now is None:
            plan.restores.append(entry)
        elif now["board_id"] != change.board_id:
            plan.refusals.append(f"{name} was moved to another board: {MOVE_BACK}")
        else:
            plan.conflicts.append(Conflict(name, "the player", "absent", f"here as {_player(now)}", since))
        return
    if now is None:
        plan.conflicts.append(Conflict(name, "the player", _player(_after(entry)), "deleted", since))
        return
    if now["board_id"] != change.board_id:
        plan.refusals.append(f"{name} was moved to another board: {MOVE_BACK}")
        return
    if entry.name_before is None:  # it added the player: remove it
        if _moved_here(change, entry.player_id):
            plan.refusals.append(f"{name} was moved here from another board: {MOVE_BACK}")
        elif (now["name"], now["score"]) != (entry.name_after, entry.score_after):
            plan.conflicts.append(Conflict(name, "the player", _player(_after(entry)), _player(now), since))
        else:
            plan.deletes.append(entry.player_id)
        return
    restore = {}
    for what, before, after in [
        ("name", entry.name_before, entry.name_after),
        ("score", entry.score_before, entry.score_after),
    ]:
        if before == after:
            continue
        if now[what] != after:
            plan.conflicts.append(Conflict(name, what, _shown(after), _shown(now[what]), since))
        else:
            restore[what] = before
    if restore:
        plan.updates[entry.player_id] = restore


def _check_names(plan: _Plan, *, board: Board, entries: list[PlayerChange]) -> None:
    """Refuse an undo that would give one name to two players of the board."""
    names = dict(board.players.values_list("pk", "name"))
    for player_id in plan.deletes:
        names.pop(player_id, None)
    for player_id, values in plan.updates.items():
        if "name" in values:
            names[player_id] = values["name"]
    for entry in plan.restores:
        names[entry.player_id] = entry.name_before
    holders: dict[str, list[int]] = {}
    for player_id, name in names.items():
        holders.setdefault(name, []).append(player_id)
    restored = {e.player_id for e in plan.restores} | {i for i, v in plan.updates.items() if "name" in v}
    for name, ids in holders.items():
        if len(ids) > 1 and restored & set(ids):
            plan.refusals.append(f"The name “{name}” is taken now by another player of the board.")


def _write(*, plan: _Plan, board: Board) -> None:
    for player in Player.objects.filter(pk__in=plan.deletes):
        player.delete()
    players = {p.pk: p for p in Player.objects.filter(pk__in=list(plan.updates))}
    renamed = [pk for pk, values in plan.updates.items() if "name" in values]
    if len(renamed) > 1:  # names may swap between them: free every old name first
        for pk in renamed:
            players[pk].name = f"undo-{uuid.uuid4().hex}"
            players[pk].save(update_fields=["name"])
    for pk, values in plan.updates.items():
        for what, value in values.items():
            setattr(players[pk], what, value)
        players[pk].save(update_fields=[*values, "updated_at"])
    for entry in plan.restores:
        restored = Player(pk=entry.player_id, board=board, name=entry.name_before, score=entry.score_before)
        restored.save(force_insert=True)
    if plan.board_fields:
        for name, value in plan.board_fields.items():
            setattr(board, name, value)
        board.save(update_fields=[*plan.board_fields, "updated_at"])


def _expected(entry: PlayerChange, change: Change) -> dict | None:
    if entry.name_after is None:
        return None
    return {"pk": entry.player_id, "board_id": change.board_id, **_after(entry)}


def _after(entry: PlayerChange) -> dict[str, Any]:
    return {"name": entry.name_after, "score": entry.score_after}


def _player(values: dict[str, Any]) -> str:
    return f"“{values['name']}” with {values['score']}"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "public" if value else "private"
    return f"“{value}”" if isinstance(value, str) else str(value)


def _moved_here(change: Change, player_id: int) -> bool:
    """Whether a player this change-set added came from another board (a move, not a new player)."""
    return (
        PlayerChange.objects.filter(player_id=player_id, change__at__lte=change.at)
        .exclude(change__board_id=change.board_id)
        .exists()
    )


def _since(record: Change | None) -> str | None:
    if record is None:
        return None
    when: datetime = timezone.localtime(record.at)
    return f"{who(record)} through {record.source} at {when:%Y-%m-%d %H:%M:%S %Z} (version {record.version})"


def _player_changed_since(change: Change, player_id: int) -> str | None:
    # On this board, versions say what came after; a move to or from another board, the time.
    later = Q(change__board_id=change.board_id, change__version__gt=change.version) | (
        ~Q(change__board_id=change.board_id) & Q(change__at__gte=change.at)
    )
    entry = (
        PlayerChange.objects.filter(later, player_id=player_id)
        .select_related("change__user")
        .order_by("-change__at", "-change__version")
        .first()
    )
    return _since(entry and entry.change)


def _board_changed_since(change: Change, name: str) -> str | None:
    record = (
        Change.objects.filter(board_id=change.board_id, version__gt=change.version)
        .filter(board_fields__has_key=name)
        .select_related("user")
        .order_by("-version")
        .first()
    )
    return _since(record)
