from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class LiveConfig(AppConfig):
    name = "live"
    verbose_name = "Live scoreboard"

    def ready(self) -> None:
        from live import signals
        from live.models import Board, Player

        # dispatch_uid: ready() can run more than once (in tests, for one).
        post_save.connect(signals.player_changed, sender=Player, dispatch_uid="live.player_saved")
        post_delete.connect(signals.player_changed, sender=Player, dispatch_uid="live.player_deleted")
        post_save.connect(signals.board_changed, sender=Board, dispatch_uid="live.board_saved")
        post_delete.connect(signals.board_changed, sender=Board, dispatch_uid="live.board_deleted")
