"""The delivery side's database reads, each one hop to Django's database thread."""

import logging

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser

from live.delivery.auth import session_user
from live.delivery.frames import Frame
from live.scores import selectors

logger = logging.getLogger(__name__)


@database_sync_to_async
def read_snapshot(board_id: int) -> Frame | None:
    logger.debug("snapshot read from the database: board=%s", board_id)  # counted by load tests
    try:
        return selectors.snapshot_frame(board_id=board_id)
    except selectors.BoardUnavailable:
        return None


@database_sync_to_async
def read_updates(board_id: int, after: int) -> list[Frame] | None:
    from live.delivery.feed import BoardGone

    try:
        return selectors.updates_since(board_id=board_id, after=after)
    except selectors.BoardUnavailable:
        raise BoardGone from None


@database_sync_to_async
def read_updates_until(board_id: int, after: int, until: int) -> list[Frame] | None:
    """The updates after `after` up to `until` (a snapshot's version), or None."""
    try:
        return selectors.updates_since(board_id=board_id, after=after, until=until)
    except selectors.BoardUnavailable:
        return None


@database_sync_to_async
def read_versions(board_ids: list[int]) -> dict[int, int]:
    return selectors.board_versions(board_ids)


@database_sync_to_async
def find_board(*, slug: str, user, session_key: str | None = None) -> tuple[int, bool]:
    """(board id, may the user view private boards) or BoardUnavailable: one hop for both.

    With `session_key` (a logged-in user's socket, already among the relay's members) the
    session is checked again now: a change committed since the handshake read it counts.
    """
    if session_key is not None:
        user = session_user(session_key, user_id=user.pk) or AnonymousUser()
    may_view_private = selectors.may_view_private_boards(user)
    board = selectors.board_for(slug=slug, user=user)
    return board.pk, may_view_private


@database_sync_to_async
def read_private_access(sessions: dict[int, set[str]]) -> dict[int, set[str]]:
    """Of each user's session keys, those whose session still logs the user in and may view
    private boards (the rule of live/scores/selectors.py): one hop for all of them."""
    return {
        user_id: {
            key for key in keys if selectors.may_view_private_boards(session_user(key, user_id=user_id))
        }
        for user_id, keys in sessions.items()
    }
