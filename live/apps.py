from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save


class LiveConfig(AppConfig):
    name = "live"
    verbose_name = "Live scoreboard"

    def ready(self) -> None:
        from live import signals
        from live.models import Board, Player

        # dispatch_uid: ready() can run more than once (in tests, for one).
        for signal, handler, sender in [
            (pre_save, signals.player_saving, Player),
            (post_save, signals.player_saved, Player),
            (pre_delete, signals.player_deleting, Player),
            (post_delete, signals.player_deleted, Player),
            (pre_save, signals.board_saving, Board),
            (post_save, signals.board_saved, Board),
            (post_delete, signals.board_deleted, Board),
        ]:
            signal.connect(handler, sender=sender, dispatch_uid=f"live.{handler.__name__}")
