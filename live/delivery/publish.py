"""The one module that sends to the channel layer.

A committed change-set becomes one pre-encoded update frame, sent once to the board's
group. A send is bounded by `settings.LIVE_PUBLISH_TIMEOUT`: a frozen or unreachable broker
never holds a save longer than that. What could not be sent reaches spectators anyway,
through each relay's comparison of its versions with the database (live/delivery/freshness.py).
"""

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from live.models import Board
from live.scores.selectors import BoardUnavailable, updates_since

logger = logging.getLogger(__name__)

UPDATE = "board.update"
REMOVED = "board.removed"


def publish_change_set(*, board_id: int, version: int) -> None:
    """Send committed change-set `version` of a board as one update frame, from its record."""
    try:
        frames = updates_since(board_id=board_id, after=version - 1, until=version)
    except BoardUnavailable:
        return  # deleted since: publish_board_removed() tells its spectators
    if not frames:
        logger.error("change-set board=%s version=%s has no record; relays will resync", board_id, version)
        return
    frame = frames[0]
    send_to_board(
        board_id=board_id,
        message={
            "type": UPDATE,
            "board_id": board_id,
            "version": frame.version,
            "text": frame.text,
            "public": frame.public,
            "slug": frame.slug,
        },
    )


def publish_board_removed(*, board_id: int) -> None:
    send_to_board(board_id=board_id, message={"type": REMOVED, "board_id": board_id})


def send_to_board(*, board_id: int, message: dict[str, Any]) -> None:
    """Send one message to a board's group; a failure is logged, never raised."""
    try:
        async_to_sync(_group_send)(get_channel_layer(), Board.group_name_for(board_id), message)
    except Exception as exc:  # noqa: BLE001 - any broker failure must not fail the save
        logger.error(
            "channel layer unavailable: board=%s version=%s not sent (%s: %s); "
            "relays will read it from the database",
            board_id,
            message.get("version"),
            type(exc).__name__,
            exc or "timed out",
        )


async def _group_send(layer, group: str, message: dict[str, Any]) -> None:
    async with asyncio.timeout(settings.LIVE_PUBLISH_TIMEOUT):
        try:
            await layer.group_send(group, message)
        except Exception:  # noqa: BLE001
            # A pooled connection from before a Redis restart fails once, then is replaced.
            # A message sent twice is harmless: relays drop versions they already have.
            await layer.group_send(group, message)
