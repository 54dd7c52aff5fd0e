"""Model signal handlers: each hands a write to live/scores/changes.py, or a change of who
may view private boards to live/delivery/access.py, nothing more."""

from live.delivery import access
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


def user_saved(sender, instance, created, update_fields, using, raw=False, **kwargs) -> None:
    if not raw:
        access.user_saved(user=instance, created=created, update_fields=update_fields, using=using)


def user_deleted(sender, instance, using, **kwargs) -> None:
    access.user_deleted(user=instance, using=using)


def group_deleting(sender, instance, using, **kwargs) -> None:
    access.group_deleting(group=instance, using=using)


def permissions_changed(sender, instance, action, reverse, pk_set, using, **kwargs) -> None:
    access.relations_changed(
        through=sender, instance=instance, action=action, reverse=reverse, pk_set=pk_set, using=using
    )


def user_logged_out(sender, request, user, **kwargs) -> None:
    access.logged_out(user=user)
