from django.core.management.base import BaseCommand
from django.db import transaction

from live.models import Board, Player

DEMO_PLAYERS = [
    ("Ada", 42),
    ("Grace", 37),
    ("Linus", 35),
    ("Margaret", 35),
    ("Guido", 28),
    ("Barbara", 21),
    ("Ken", 14),
    ("Radia", 9),
]


class Command(BaseCommand):
    help = "Create the demo board (slug 'demo') and its players, unless they exist."

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            board, created = Board.objects.get_or_create(slug="demo", defaults={"name": "Demo league"})
            added = 0
            for name, score in DEMO_PLAYERS:
                _, was_added = Player.objects.get_or_create(board=board, name=name, defaults={"score": score})
                added += was_added
        status = "created" if created else "exists"
        self.stdout.write(f"Demo board {status}: /boards/{board.slug}/ ({added} players added)")
