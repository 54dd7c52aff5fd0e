"""Model signal handlers: each hands a write to live/scores/changes.py, nothing more."""

from live.scores import changes


def player_saving(sender, instance, using, raw=False, **kwargs) -> None:
    if not raw:
        changes.player_saving(player=instance, using=using)


def player_saved(sender, instance, using, raw=False, **kwargs) -> None:
    if not raw:
        changes.player_saved(player=instance, using=using)


def player_deleting(sender, instance, using, origin=None, **kwargs) -> None:
    changes.player_deleting(player=instance, origin=origin, using=using)


def player_deleted(sender, instance, using, origin=None, **kwargs) -> None:
    changes.player_deleted(player=instance, origin=origin, using=using)


def board_saving(sender, instance, using, raw=False, **kwargs) -> None:
    if not raw:
        changes.board_saving(board=instance, using=using)


def board_saved(sender, instance, created, using, raw=False, **kwargs) -> None:
    if not raw:
        changes.board_saved(board=instance, created=created, using=using)


def board_deleted(sender, instance, using, **kwargs) -> None:
    changes.board_deleted(board=instance, using=using)
