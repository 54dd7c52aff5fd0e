import random
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from live.models import Board, Change, Player
from live.scores.changes import attributed, lock_board


class Command(BaseCommand):
    help = "Change random scores on a board through the ORM, so spectator pages move."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--board", default="demo", help="slug of the board (default: demo)")
        parser.add_argument("--interval", type=float, default=0.4, help="seconds between changes")
        parser.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
        parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable runs")

    def handle(self, *args, board: str, interval: float, count: int, seed: int | None, **options) -> None:
        if interval < 0 or count < 0:
            raise CommandError("--interval and --count must not be negative.")
        try:
            target = Board.objects.get(slug=board)
        except Board.DoesNotExist:
            raise CommandError(f"No board with slug {board!r}. Try: python manage.py seed_demo") from None
        rng = random.Random(seed)
        self.done = 0
        try:
            with attributed(source=Change.Source.SIMULATE):
                while count == 0 or self.done < count:
                    self.change_one(target, rng=rng, verbose=options["verbosity"] > 1)
                    if interval:
                        time.sleep(interval)
        except KeyboardInterrupt:
            pass
        self.stdout.write(f"Made {self.done} changes on {board!r}.")

    def change_one(self, board: Board, *, rng: random.Random, verbose: bool) -> None:
        player_ids = list(board.players.values_list("pk", flat=True))
        if not player_ids:
            raise CommandError(f"Board {board.slug!r} has no players.")
        # The board's lock, taken first as every writer does, keeps concurrent writers from
        # losing each other's points (live/scores/changes.py).
        with transaction.atomic():
            lock_board(board_id=board.pk)
            player = Player.objects.filter(pk=rng.choice(player_ids)).first()
            if player is None:
                return  # deleted meanwhile
            before = player.score
            player.score = max(0, player.score + rng.choice([-3, -1, 1, 2, 5, 10]))
            player.save(update_fields=["score", "updated_at"])
        self.done += 1
        if verbose:
            # Old and new score, so a test can account for every change.
            self.stdout.write(f"{player.name}: {before} -> {player.score}")
