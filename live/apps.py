from django.apps import AppConfig
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.core.signals import setting_changed
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save


class LiveConfig(AppConfig):
    name = "live"
    verbose_name = "Live scoreboard"

    def ready(self) -> None:
        from django.contrib.auth.models import Group

        from live import signals
        from live.delivery import guards
        from live.models import Board, Player

        user = get_user_model()
        # dispatch_uid: ready() can run more than once (in tests, for one).
        for signal, handler, sender in [
            (pre_save, signals.player_saving, Player),
            (post_save, signals.player_saved, Player),
            (pre_delete, signals.player_deleting, Player),
            (post_delete, signals.player_deleted, Player),
            (pre_save, signals.board_saving, Board),
            (post_save, signals.board_saved, Board),
            (post_delete, signals.board_deleted, Board),
            # Who may view private boards: their sockets are checked again after the commit.
            (post_save, signals.user_saved, user),
            (post_delete, signals.user_deleted, user),
            (pre_delete, signals.group_deleting, Group),
            (m2m_changed, signals.permissions_changed, user.user_permissions.through),
            (m2m_changed, signals.permissions_changed, user.groups.through),
            (m2m_changed, signals.permissions_changed, Group.permissions.through),
            (user_logged_out, signals.user_logged_out, None),
            # The guards cache what they derive from settings; tests change settings.
            (setting_changed, guards.setting_changed, None),
        ]:
            signal.connect(handler, sender=sender, dispatch_uid=f"live.{handler.__name__}")
