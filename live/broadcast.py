"""The one place that turns committed changes into messages on the channel layer.

Signal handlers and services call `record_*()` during a transaction. When it commits, all
changes to one board become one change-set: the board's version is bumped once, the
committed rows are read under the board's row lock, and one pre-encoded update frame is
sent to the board's group. A rolled-back transaction sends nothing.
"""

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import F

from live.models import Board, Player
from live.serializers import encode, update_payload

logger = logging.getLogger(__name__)

# A save must never hang on an unreachable broker: give up and let spectators resync.
SEND_TIMEOUT = 5.0


@dataclass
class ChangeSet:
    publish: Callable[[], None]
    player_ids: set[int] = field(default_factory=set)
    board_changed: bool = False


# Per thread (database connections are per thread too): (db alias, board id) -> ChangeSet.
_pending = threading.local()


def _pending_changes() -> dict[tuple[str, int], ChangeSet]:
    if not hasattr(_pending, "changes"):
        _pending.changes = {}
    return _pending.changes


def _is_scheduled(changes: ChangeSet, using: str) -> bool:
    # Django keeps (savepoint ids, callback, robust) per pending on_commit callback and
    # drops them on rollback; it has no rollback hook to tell us otherwise.
    return any(entry[1] is changes.publish for entry in transaction.get_connection(using).run_on_commit)


def record_change(
    *,
    board_id: int,
    player_id: int | None = None,
    board_changed: bool = False,
    using: str = DEFAULT_DB_ALIAS,
) -> None:
    """Note a change to a board (or one of its players), to be published on commit."""
    key = (using, board_id)
    pending = _pending_changes()
    changes = pending.get(key)
    if changes is None or not _is_scheduled(changes, using):
        # New, or left over from a rolled-back transaction: start afresh.
        changes = pending[key] = ChangeSet(publish=partial(_publish_pending, key))
    if player_id is not None:
        changes.player_ids.add(player_id)
    changes.board_changed |= board_changed
    # Registered on every call, so that a rolled-back savepoint (whose callbacks Django
    # drops) cannot take the outer transaction's changes with it; the first to run publishes.
    transaction.on_commit(changes.publish, using=using)


def record_player_change(*, player: Player, using: str = DEFAULT_DB_ALIAS) -> None:
    record_change(board_id=player.board_id, player_id=player.pk, using=using)
    previous_board_id = getattr(player, "loaded_board_id", None)
    if previous_board_id is not None and previous_board_id != player.board_id:
        record_change(board_id=previous_board_id, player_id=player.pk, using=using)


def record_board_change(*, board: Board, using: str = DEFAULT_DB_ALIAS) -> None:
    record_change(board_id=board.pk, board_changed=True, using=using)


def _publish_pending(key: tuple[str, int]) -> None:
    changes = _pending_changes().pop(key, None)
    if changes is None:
        return  # already published by an earlier callback of the same commit
    using, board_id = key
    try:
        publish_changes(
            board_id=board_id,
            player_ids=changes.player_ids,
            board_changed=changes.board_changed,
            using=using,
        )
    except Exception:
        # The data is committed; spectators catch up on their next resync.
        logger.exception("could not number the change-set of board=%s", board_id)


def publish_changes(
    *,
    board_id: int,
    player_ids: set[int],
    board_changed: bool = False,
    using: str = DEFAULT_DB_ALIAS,
) -> int | None:
    """Number one committed change-set and send it as one update; returns its version.

    Bumping the counter takes the board's row lock (the database's write lock on SQLite),
    so the rows read next are the committed state as of that version, whichever process
    commits next.
    """
    with transaction.atomic(using=using):
        bumped = Board.objects.using(using).filter(pk=board_id).update(version=F("version") + 1)
        if not bumped:
            board = None
        else:
            board = Board.objects.using(using).get(pk=board_id)
            players = list(Player.objects.using(using).filter(board_id=board_id))
    if board is None:
        send_to_board(board_id=board_id, message={"type": "board.removed", "board_id": board_id})
        return None
    current_ids = {p.pk for p in players}
    frame = encode(
        update_payload(
            board=board,
            version=board.version,
            players=players,
            changed_ids=player_ids & current_ids,
            removed_ids=player_ids - current_ids,
            board_changed=board_changed,
        )
    )
    send_to_board(
        board_id=board_id,
        message={
            "type": "board.update",
            "board_id": board_id,
            "version": board.version,
            "text": frame,
            # Relays hold back a private board's updates from spectators not allowed to see it.
            "public": board.is_public,
        },
    )
    return board.version


def send_to_board(*, board_id: int, message: dict[str, Any]) -> bool:
    """Send one message to a board's group; a failure is logged, never raised."""
    layer = get_channel_layer()
    group = Board.group_name_for(board_id)
    try:
        async_to_sync(_group_send)(layer, group, message)
    except Exception as exc:  # noqa: BLE001 - any broker failure must not fail the save
        logger.error(
            "channel layer unavailable: board=%s version=%s not delivered (%s: %s); spectators will resync",
            board_id,
            message.get("version"),
            type(exc).__name__,
            exc,
        )
        return False
    return True


async def _group_send(layer, group: str, message: dict[str, Any]) -> None:
    async with asyncio.timeout(SEND_TIMEOUT):
        try:
            await layer.group_send(group, message)
        except Exception:  # noqa: BLE001
            # A pooled connection from before a Redis restart fails once, then is replaced.
            # A message sent twice is harmless: spectators ignore versions they already have.
            await layer.group_send(group, message)
