"""Model signal handlers: each records a change for its board, nothing more."""

from live import broadcast


def player_changed(sender, instance, using, **kwargs) -> None:
    broadcast.record_player_change(player=instance, using=using)


def board_changed(sender, instance, using, **kwargs) -> None:
    broadcast.record_board_change(board=instance, using=using)
