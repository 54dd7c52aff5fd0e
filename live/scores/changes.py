"""Change-sets: every change to a board is numbered and recorded in the writer's own transaction.

The first change recorded for a board in a transaction bumps the board's version, which
takes its row lock (the database's write lock on SQLite) until the transaction ends, and
creates the board's `Change` record for that version. Every player write then adds its
old and new values to that record. Data, version and record commit together: a crash at
any moment can delay an update, never leave a committed change without its version.

When the transaction commits, the change-set is handed to `live.delivery.publish`. A
rolled-back transaction (or savepoint) takes its version and record with it.

Locks are always taken board first, then players, so writers of one board never deadlock.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import F

from live.models import Board, Change, Player, PlayerChange

BOARD_FIELDS = ("name", "slug", "is_public")


@dataclass(frozen=True)
class Attribution:
    user_id: int | None
    source: str


SCRIPT = Attribution(user_id=None, source=Change.Source.SCRIPT)
_attribution: ContextVar[Attribution | None] = ContextVar("live_attribution", default=None)


@contextmanager
def attributed(*, user=None, source: str) -> Iterator[None]:
    """Record the change-sets made inside this block as made by `user` through `source`."""
    user_id = user.pk if user is not None and user.is_authenticated else None
    token = _attribution.set(Attribution(user_id=user_id, source=source))
    try:
        yield
    finally:
        _attribution.reset(token)


@dataclass
class PendingChangeSet:
    """The change-set of one board in the current transaction."""

    record: Change
    publish: Any
    entries: dict[int, PlayerChange] = field(default_factory=dict)


# Per thread, as database connections are: (db alias, board id) -> PendingChangeSet.
_local = threading.local()


def _pending() -> dict[tuple[str, int], PendingChangeSet]:
    if not hasattr(_local, "change_sets"):
        _local.change_sets = {}
    return _local.change_sets


def _is_scheduled(change_set: PendingChangeSet, using: str) -> bool:
    # Django keeps (savepoint ids, callback, robust) per pending on_commit callback and
    # drops them on rollback; it has no rollback hook to tell us otherwise.
    return any(entry[1] is change_set.publish for entry in transaction.get_connection(using).run_on_commit)


def lock_board(*, board_id: int, using: str = DEFAULT_DB_ALIAS) -> None:
    """Take the board's row lock before reading players to change them (read, then write).

    Every writer locks the board before its players, so writers never deadlock.
    """
    list(Board.objects.using(using).select_for_update().filter(pk=board_id).values_list("pk"))


def open_change_set(*, board_id: int, using: str = DEFAULT_DB_ALIAS) -> PendingChangeSet | None:
    """The board's change-set in this transaction: the first call numbers and records it.

    Returns None if the board does not exist (any more).
    """
    if not transaction.get_connection(using).in_atomic_block:
        raise RuntimeError("Changes to a board must be made inside transaction.atomic().")
    key = (using, board_id)
    pending = _pending()
    change_set = pending.get(key)
    if change_set is not None and _is_scheduled(change_set, using):
        return change_set
    # Takes the board's row lock until this transaction ends: versions follow commit order.
    if not Board.objects.using(using).filter(pk=board_id).update(version=F("version") + 1):
        pending.pop(key, None)
        return None
    version = Board.objects.using(using).values_list("version", flat=True).get(pk=board_id)
    attribution = _attribution.get() or SCRIPT
    record = Change.objects.using(using).create(
        board_id=board_id, version=version, user_id=attribution.user_id, source=attribution.source
    )
    change_set = pending[key] = PendingChangeSet(record=record, publish=partial(_publish, key))
    transaction.on_commit(change_set.publish, using=using)
    return change_set


def _publish(key: tuple[str, int]) -> None:
    from live.delivery.publish import publish_change_set

    change_set = _pending().pop(key, None)
    if change_set is None:
        return
    publish_change_set(board_id=key[1], version=change_set.record.version)


def _player_row(player_id: int | None, using: str) -> dict[str, Any] | None:
    if player_id is None:
        return None
    return Player.objects.using(using).filter(pk=player_id).values("board_id", "name", "score").first()


def note_player(
    *, board_id: int, player_id: int, before: dict | None, after: dict | None, using: str = DEFAULT_DB_ALIAS
) -> None:
    """Add a player's old and new values (None: absent) to its board's change-set."""
    change_set = open_change_set(board_id=board_id, using=using)
    if change_set is None:
        return
    entry = change_set.entries.get(player_id)
    if entry is None:
        entry = change_set.entries[player_id] = PlayerChange(
            change=change_set.record,
            player_id=player_id,
            name_before=before and before["name"],
            score_before=before and before["score"],
        )
    entry.name_after = after and after["name"]
    entry.score_after = after and after["score"]
    entry.save(using=using)


# Model signal handlers (connected in LiveConfig.ready()) call these.


def player_saving(*, player: Player, using: str) -> None:
    """Before a player is written: lock its board(s), remember the row as it was."""
    boards = {player.board_id, getattr(player, "loaded_board_id", None)} - {None}
    for board_id in sorted(boards):  # one order for every writer
        open_change_set(board_id=board_id, using=using)
    before = None if player._state.adding else _player_row(player.pk, using)
    if before is not None and before["board_id"] not in boards:
        open_change_set(board_id=before["board_id"], using=using)  # moved by someone meanwhile
    player._live_before = before


def player_saved(*, player: Player, using: str) -> None:
    before = player.__dict__.pop("_live_before", None)
    after = {"name": player.name, "score": player.score}
    if before is not None and before["board_id"] != player.board_id:
        # Moved: it leaves one board and joins another.
        note_player(board_id=before["board_id"], player_id=player.pk, before=before, after=None, using=using)
        before = None
    note_player(board_id=player.board_id, player_id=player.pk, before=before, after=after, using=using)
    player.loaded_board_id = player.board_id


def player_deleting(*, player: Player, origin: Any, using: str) -> None:
    if _board_being_deleted(origin):
        return  # the whole board goes: spectators hear that, not each player
    open_change_set(board_id=player.board_id, using=using)
    player._live_before = _player_row(player.pk, using)


def player_deleted(*, player: Player, origin: Any, using: str) -> None:
    before = player.__dict__.pop("_live_before", None)
    if before is None or _board_being_deleted(origin):
        return
    note_player(board_id=before["board_id"], player_id=player.pk, before=before, after=None, using=using)


def _board_being_deleted(origin: Any) -> bool:
    model = getattr(origin, "model", type(origin))
    return model is Board


def board_saving(*, board: Board, using: str) -> None:
    if board._state.adding or board.pk is None:
        return
    open_change_set(board_id=board.pk, using=using)
    board._live_before = Board.objects.using(using).filter(pk=board.pk).values(*BOARD_FIELDS).first()


def board_saved(*, board: Board, created: bool, using: str) -> None:
    before = board.__dict__.pop("_live_before", None) or {}
    change_set = open_change_set(board_id=board.pk, using=using)
    if change_set is None:
        return
    changed = {
        name: [before.get(name), getattr(board, name)]
        for name in BOARD_FIELDS
        if created or before.get(name) != getattr(board, name)
    }
    if changed:
        fields = change_set.record.board_fields
        for name, (old, new) in changed.items():
            fields[name] = [fields.get(name, [old])[0], new]
        change_set.record.save(using=using, update_fields=["board_fields"])


def board_deleted(*, board: Board, using: str) -> None:
    """The board is gone: its spectators are told once the deletion commits."""
    from live.delivery.publish import publish_board_removed

    transaction.on_commit(partial(publish_board_removed, board_id=board.pk), using=using)
