"""Writes that bypass model signals, and so record their change-sets themselves."""

from collections.abc import Iterable

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from live.models import Player
from live.scores import changes


def award_points(*, player_ids: Iterable[int], points: int) -> int:
    """Add (or, if negative, subtract) points atomically; one change-set per board."""
    player_ids = list(player_ids)
    with transaction.atomic():
        boards = set(Player.objects.filter(pk__in=player_ids).values_list("board_id", flat=True))
        for board_id in sorted(boards):  # board locks first, in one order for every writer
            changes.open_change_set(board_id=board_id)
        players = Player.objects.filter(pk__in=player_ids)
        before = list(players.order_by("pk").values("pk", "board_id", "name", "score"))
        updated = players.update(score=F("score") + points, updated_at=timezone.now())
        for row in before:
            changes.note_player(
                board_id=row["board_id"],
                player_id=row["pk"],
                before=row,
                after={"name": row["name"], "score": row["score"] + points},
            )
        return updated
