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
    help = "Create the demo board (slug 'demo') with its players, unless the board exists."

    def handle(self, *args, **options) -> None:
        # Once it exists the board is the staff's: never re-add players they renamed or removed.
        board = Board.objects.filter(slug="demo").first()
        if board is not None:
            self.stdout.write(f"Demo board exists: /boards/{board.slug}/")
            return
        with transaction.atomic():
            board = Board.objects.create(slug="demo", name="Demo league")
            for name, score in DEMO_PLAYERS:
                Player.objects.create(board=board, name=name, score=score)
        self.stdout.write(f"Demo board created: /boards/{board.slug}/ ({len(DEMO_PLAYERS)} players)")
