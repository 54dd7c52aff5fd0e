"""Score changes that bypass model signals and so record their changes themselves."""

from collections.abc import Iterable

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from live import broadcast
from live.models import Player


def award_points(*, player_ids: Iterable[int], points: int) -> int:
    """Add (or, if negative, subtract) points atomically; one update per board on commit."""
    with transaction.atomic():
        players = Player.objects.filter(pk__in=list(player_ids))
        # QuerySet.update() fires no post_save: record each change here instead.
        for player_id, board_id in players.values_list("pk", "board_id"):
            broadcast.record_change(board_id=board_id, player_id=player_id)
        return players.update(score=F("score") + points, updated_at=timezone.now())
