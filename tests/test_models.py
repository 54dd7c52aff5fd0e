"""Boards, players and the ranking rule."""

import pytest
from django.db import IntegrityError

from live.delivery.frames import ranked
from live.models import Board, Player

pytestmark = pytest.mark.django_db


def test_ties_share_a_rank_and_the_next_rank_skips():
    board = Board(pk=1, name="B", slug="b")
    players = [
        Player(pk=i, board=board, name=name, score=score)
        for i, (name, score) in enumerate([("Dee", 10), ("Cy", 20), ("Ada", 30), ("Bob", 20)], start=1)
    ]
    assert [(p["name"], p["rank"]) for p in ranked(players)] == [
        ("Ada", 1),
        ("Bob", 2),
        ("Cy", 2),
        ("Dee", 4),
    ]


def test_players_are_ordered_by_score_then_name(players):
    assert [p.name for p in Player.objects.all()] == ["Ada", "Bob", "Cy", "Dee"]


def test_a_player_name_is_unique_per_board(board, players):
    other = Board.objects.create(name="Other", slug="other")
    Player.objects.create(board=other, name="Ada")
    with pytest.raises(IntegrityError):
        Player.objects.create(board=board, name="Ada")


def test_string_representations(board, players):
    assert str(board) == "Finals" and str(players[0]) == "Ada"
    assert board.get_absolute_url() == "/boards/finals/"


def test_saving_a_stale_board_never_writes_its_version_back(board):
    stale = Board.objects.get(pk=board.pk)
    Board.objects.filter(pk=board.pk).update(version=41)
    stale.name = "Renamed"
    stale.save()
    board.refresh_from_db()
    assert (board.name, board.version) == ("Renamed", 41)


def test_group_names_use_the_id_so_a_slug_can_change(board):
    assert board.group_name == f"board-{board.pk}" == Board.group_name_for(board.pk)
