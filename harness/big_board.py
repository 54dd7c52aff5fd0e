"""A big board for tests and benchmarks: 1,000 players whose names are 100 code points each.

The names mix what makes text hard: astral-plane emoji (four UTF-8 bytes, two UTF-16 units),
joiner sequences and flags, right-to-left Arabic and Hebrew, and combining marks. Scores
repeat (many ties), so ranks like 1, 2, 2, 4 and the code-point name order both matter.
"""

import json

from harness.servers import manage

BIG_BOARD_SLUG = "big"
BIG_BOARD_PLAYERS = 1000
NAME_CODE_POINTS = 100

# Each fragment starts a name in turn, so names differ early and sort across scripts.
FRAGMENTS = [
    "🏆",  # U+1F3C6: astral, sorts after every BMP character
    "مرحبا بالعالم",  # Arabic, right to left
    "שָׁלוֹם עוֹלָם",  # Hebrew with vowel points (combining marks)
    "Zoë Ångström",  # precomposed Latin
    "Zoe\u0308 A\u030angstro\u0308m",  # the same, with combining marks
    "👩🏽\u200d💻",  # a woman technologist: skin tone and a zero-width joiner
    "🇯🇵🇧🇷",  # flags: pairs of regional indicators
    "🥇🥈🥉🎯🎲",  # astral emoji only
    "\u202bעברית\u202c",  # an RTL embedding around Hebrew
    "𝔊𝔬𝔱𝔥𝔦𝔠",  # mathematical Fraktur: astral letters
    "Ｆｕｌｌ",  # full-width Latin (BMP, above U+FF00)
    "ﷺ ﷽",  # Arabic ligatures (BMP, U+FDxx)
    "a\u0301\u0302\u0303\u0304",  # stacked combining marks
]


def big_board_name(index: int) -> str:
    """The `index`th name: exactly NAME_CODE_POINTS code points, unique per index."""
    first = FRAGMENTS[index % len(FRAGMENTS)]
    rest = " ".join(FRAGMENTS[(index + k) % len(FRAGMENTS)] for k in range(1, len(FRAGMENTS)))
    name = f"{first} {index:04d} {rest} " * 2
    name = name[:NAME_CODE_POINTS]
    assert len(name) == NAME_CODE_POINTS
    return name


def big_board_players(count: int = BIG_BOARD_PLAYERS) -> list[tuple[str, int]]:
    """(name, score) pairs; 50 distinct scores, so about 20 players share each."""
    return [(big_board_name(i), (i * 37) % 50) for i in range(count)]


CREATE_BOARD = """
import json, sys
from django.db import transaction
from live.models import Board, Player
slug, title, players = json.loads(sys.stdin.read())
with transaction.atomic():
    board = Board.objects.create(slug=slug, name=title)
    Player.objects.bulk_create(Player(board=board, name=n, score=s) for n, s in players)
"""


def create_big_board(
    env: dict, *, slug: str = BIG_BOARD_SLUG, count: int = BIG_BOARD_PLAYERS
) -> list[tuple[str, int]]:
    """Create the board in the database of `env`, through manage.py in its own process."""
    players = big_board_players(count)
    title = f"Big board 🏆 {count:,} players · لوحة كبيرة · לוח גדול"
    manage("shell", "-v", "0", "-c", CREATE_BOARD, env=env, input=json.dumps([slug, title, players]))
    return players


SET_SCORE = """
import json, sys
from live.models import Player
slug, name, score = json.loads(sys.stdin.read())
player = Player.objects.get(board__slug=slug, name=name)
player.score = score
player.save()
"""


def set_score(env: dict, name: str, score: int, *, slug: str = BIG_BOARD_SLUG) -> None:
    """Save one player's score through the ORM in its own process, as a script or worker would."""
    manage("shell", "-v", "0", "-c", SET_SCORE, env=env, input=json.dumps([slug, name, score]))


def standings(players: list[tuple[str, int]]) -> list[list[str]]:
    """[rank, name, score] rows as the page must show them, ranked here (not by live/):
    score descending, then name by code point (Python's str order); ties share a rank."""
    ordered = sorted(players, key=lambda player: (-player[1], player[0]))
    table, rank = [], 0
    for position, (name, score) in enumerate(ordered, start=1):
        if position == 1 or score != ordered[position - 2][1]:
            rank = position
        table.append([str(rank), name, str(score)])
    return table
