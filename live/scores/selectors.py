"""Reads: who may see which board, and a board's snapshot. One place per rule.

A private board (`is_public` off) is shown only to logged-in users with the permission
`live.view_private_board` (superusers have every permission). Views, consumers and the
relay all ask here, and a refusal is one exception, `BoardUnavailable`, turned into an
HTTP response, a close code or a frame in one place each.

To everyone else a private board does not exist: `board_for()` answers NOT_FOUND for it
after the same single query as for a missing slug, so neither the answer nor its timing
tells an outsider that it exists (docs/PROTOCOL.md). FORBIDDEN is left for a spectator whose
access ends while it watches (the board is made private): it already knew the board.
"""

import re
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from live.delivery.frames import Frame, encode, snapshot_payload, update_payload
from live.models import Board, Change, Player

NOT_FOUND = "not_found"
FORBIDDEN = "forbidden"


class BoardUnavailable(Exception):
    """The board does not exist, or this user may not view it (`reason` says which)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def may_view_private_boards(user) -> bool:
    return user is not None and user.is_authenticated and user.has_perm("live.view_private_board")


def visible_boards(user) -> QuerySet[Board]:
    """The boards `user` may watch: every public board, and private ones with permission."""
    boards = Board.objects.all()
    return boards if may_view_private_boards(user) else boards.filter(is_public=True)


def natural_key(text: str) -> tuple:
    """Numbers in names compare as numbers: "Plain 60" before "Plain 100"; case is ignored."""
    parts = re.split(r"(\d+)", text.casefold())
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts))


def board_list(user) -> list[Board]:
    """The boards `user` may watch in natural order of their names, each with `player_count`,
    `leader_name` and `leader_score` (None on an empty board). One query, however many boards."""
    players = Player.objects.filter(board=OuterRef("pk"))
    leader = players.order_by("-score", "name")[:1]
    count = players.order_by().values("board").annotate(n=Count("pk")).values("n")
    boards = visible_boards(user).annotate(
        player_count=Coalesce(Subquery(count, output_field=IntegerField()), 0),
        leader_name=Subquery(leader.values("name")),
        leader_score=Subquery(leader.values("score")),
    )
    return sorted(boards, key=lambda board: (natural_key(board.name), board.name, board.slug))


def watchable_slugs(slugs: list[str], *, user) -> list[str]:
    """Those of `slugs` that name boards `user` may watch, in the given order, once each."""
    existing = set(visible_boards(user).filter(slug__in=slugs).values_list("slug", flat=True))
    return list(dict.fromkeys(slug for slug in slugs if slug in existing))


def is_visible(*, public: bool, may_view_private: bool) -> bool:
    """The rule itself: a public board to anyone, a private one with the permission."""
    return public or may_view_private


def check_visible(board: Board, *, may_view_private: bool) -> None:
    if not is_visible(public=board.is_public, may_view_private=may_view_private):
        raise BoardUnavailable(FORBIDDEN)


def board_for(*, slug: str, user) -> Board:
    """The board `user` asks for by slug, or BoardUnavailable(NOT_FOUND), also when it is private."""
    board = visible_boards(user).filter(slug=slug).first()
    if board is None:
        raise BoardUnavailable(NOT_FOUND)
    return board


def _board(board_id: int) -> Board:
    board = Board.objects.filter(pk=board_id).first()
    if board is None:
        raise BoardUnavailable(NOT_FOUND)
    return board


def _snapshot(board: Board) -> dict[str, Any]:
    # Version first (read with the board), rows second: the rows are then at least as new
    # as the version, and any later change arrives as an update with a higher version.
    return snapshot_payload(board=board, version=board.version, players=list(board.players.all()))


def board_snapshot(*, board_id: int, may_view_private: bool = True) -> dict[str, Any]:
    """The board's current standings, as the first WebSocket frame and the JSON API send them."""
    board = _board(board_id)
    check_visible(board, may_view_private=may_view_private)
    return _snapshot(board)


def snapshot_frame(*, board_id: int) -> Frame:
    """The board's snapshot, encoded once for every spectator allowed to see it."""
    board = _board(board_id)
    return Frame(
        version=board.version,
        text=encode(_snapshot(board)),
        public=board.is_public,
        snapshot=True,
        slug=board.slug,
    )


def board_versions(board_ids: list[int]) -> dict[int, int]:
    """The committed version of each board that still exists."""
    return dict(Board.objects.filter(pk__in=board_ids).values_list("pk", "version"))


def updates_since(
    *, board_id: int, after: int, until: int | None = None, limit: int = 100
) -> list[Frame] | None:
    """The update frames of the board's change-sets after version `after` (up to `until`).

    Built from the change records and the current rows, as on the publishing side: the rows
    are at least as new as each version. None when a version has no record (it predates the
    records) or more than `limit` are missing: a snapshot serves better then.
    """
    board = _board(board_id)
    until = board.version if until is None else until
    if until - after > limit:
        return None
    records = list(
        Change.objects.filter(board_id=board_id, version__gt=after, version__lte=until)
        .order_by("version")
        .prefetch_related("players")
    )
    if [r.version for r in records] != list(range(after + 1, until + 1)):
        return None
    players = list(board.players.all())
    current_ids = {p.pk for p in players}
    frames = []
    for record in records:
        changed = {entry.player_id for entry in record.players.all()}
        payload = update_payload(
            board=board,
            version=record.version,
            players=players,
            changed_ids=changed & current_ids,
            removed_ids=changed - current_ids,
            board_changed=bool(record.board_fields),
        )
        frames.append(
            Frame(version=record.version, text=encode(payload), public=board.is_public, slug=board.slug)
        )
    return frames
