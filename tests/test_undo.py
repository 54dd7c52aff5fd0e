"""Undo: a new change-set that restores what an earlier one set, or a refusal listing what changed since."""

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from live.models import Board, Change, Player
from live.scores.changes import attributed
from live.scores.undo import Conflict, UndoRefused, undo_change
from tests.conftest import in_thread, receive, spectate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_superuser("staff1", password="pw-for-tests-only")


@pytest.fixture
def other_staff(db) -> User:
    return User.objects.create_superuser("staff2", password="pw-for-tests-only")


def change_as(user, source: str = "form"):
    return attributed(user=user, source=source)


def record(board: Board, version: int | None = None) -> Change:
    records = Change.objects.filter(board=board)
    return records.get(version=version) if version else records.order_by("-version").first()


def scores(board: Board) -> dict[str, int]:
    return dict(board.players.values_list("name", "score"))


def set_score(player: Player, score: int) -> None:
    player.refresh_from_db()
    player.score = score
    player.save()


def test_an_undo_restores_the_old_scores_as_a_new_change_set_by_its_user(board, players, staff, other_staff):
    ada, bob = players[0], players[1]
    with change_as(other_staff, "list"), transaction.atomic():
        set_score(ada, 35)
        set_score(bob, 5)
    undone = record(board)

    new = undo_change(change=undone, user=staff)

    assert scores(board) == {"Ada": 30, "Bob": 20, "Cy": 20, "Dee": 10}
    assert new == record(board) and new.version == undone.version + 1
    assert (new.source, new.user, new.undoes) == ("undo", staff, undone.version)
    assert sorted((e.name_after, e.score_before, e.score_after) for e in new.players.all()) == [
        ("Ada", 35, 30),
        ("Bob", 5, 20),
    ]


def test_an_undo_removes_the_players_it_added_and_brings_back_those_it_removed(board, players, staff):
    dee_id = players[3].pk
    with transaction.atomic():
        players[3].delete()
        eve = Player.objects.create(board=board, name="Eve", score=7)

    undo_change(change=record(board), user=staff)

    assert scores(board) == {"Ada": 30, "Bob": 20, "Cy": 20, "Dee": 10}
    assert not Player.objects.filter(pk=eve.pk).exists()
    assert Player.objects.get(name="Dee").pk == dee_id, "restored with its own id"
    entries = {e.player_id: (e.score_before, e.score_after) for e in record(board).players.all()}
    assert entries == {dee_id: (None, 10), eve.pk: (7, None)}


def test_an_undo_restores_names_and_the_boards_own_fields(board, players, staff):
    with transaction.atomic():
        ada = Player.objects.get(name="Ada")
        ada.name = "Ada L."
        ada.save()
        board.refresh_from_db()
        board.name, board.is_public = "Finals 2026", False
        board.save()

    undo_change(change=record(board), user=staff)

    board.refresh_from_db()
    assert (board.name, board.is_public) == ("Finals", True)
    assert Player.objects.get(pk=ada.pk).name == "Ada"


def test_two_players_who_swapped_names_get_them_back(board, players, staff):
    with transaction.atomic():
        ada, bob = Player.objects.get(name="Ada"), Player.objects.get(name="Bob")
        ada.name = "tmp"
        ada.save()
        bob.name = "Ada"
        bob.save()
        ada.name = "Bob"
        ada.save()

    undo_change(change=record(board), user=staff)

    assert scores(board) == {"Ada": 30, "Bob": 20, "Cy": 20, "Dee": 10}
    assert Player.objects.get(name="Ada").pk == players[0].pk


def test_an_undo_of_an_undo_makes_the_change_again(board, players, staff):
    set_score(players[0], 99)
    first = record(board)
    undo = undo_change(change=first, user=staff)
    undo_change(change=undo, user=staff)
    assert scores(board)["Ada"] == 99
    assert board.changes.count() == first.version + 2


def test_an_undo_is_refused_listing_each_conflict_and_who_made_it(board, players, staff, other_staff):
    ada, bob, cy = players[0], players[1], players[2]
    with transaction.atomic():
        set_score(ada, 35)
        set_score(bob, 25)
        set_score(cy, 22)
    undone = record(board)
    with change_as(other_staff, "list"):
        set_score(ada, 40)
    later = record(board)
    bob_id = bob.pk
    Player.objects.get(pk=bob_id).delete()
    version = Board.objects.get(pk=board.pk).version

    with pytest.raises(UndoRefused) as refused:
        undo_change(change=undone, user=staff)

    when = later.at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert refused.value.conflicts == [
        Conflict("Ada", "score", "35", "40", f"staff2 through list at {when} (version {later.version})"),
        Conflict("Bob", "the player", "“Bob” with 25", "deleted", refused.value.conflicts[1].since),
    ]
    assert refused.value.conflicts[1].since.startswith("a script through script at ")
    assert str(refused.value.conflicts[0]) == (
        f"Ada: score should be 35, is 40 (changed by staff2 through list at {when} (version {later.version}))"
    )
    assert "was not undone" in refused.value.reason
    assert Board.objects.get(pk=board.pk).version == version, "nothing was written"
    assert Player.objects.get(pk=cy.pk).score == 22, "not even the players without a conflict"


def test_a_player_that_cannot_come_back_under_its_name_is_refused(board, players, staff):
    players[3].delete()
    removal = record(board)
    Player.objects.create(board=board, name="Dee", score=1)

    with pytest.raises(UndoRefused) as refused:
        undo_change(change=removal, user=staff)

    assert refused.value.reason == "The name “Dee” is taken now by another player of the board."
    assert scores(board)["Dee"] == 1


def test_a_removed_player_already_back_is_a_conflict(board, players, staff):
    players[3].delete()
    removal = record(board)
    undo_change(change=removal, user=staff)
    with pytest.raises(UndoRefused) as refused:
        undo_change(change=removal, user=staff)
    [conflict] = refused.value.conflicts
    assert (conflict.subject, conflict.expected, conflict.current) == (
        "Dee",
        "absent",
        "here as “Dee” with 10",
    )
    assert "staff1 through undo" in conflict.since


def test_a_move_between_boards_is_refused_with_the_way_to_undo_it(board, players, staff):
    cup = Board.objects.create(name="Cup", slug="cup")
    dee = Player.objects.get(name="Dee")
    dee.board = cup
    dee.save()
    with pytest.raises(UndoRefused) as left:
        undo_change(change=record(board), user=staff)
    with pytest.raises(UndoRefused) as joined:
        undo_change(change=record(cup), user=staff)
    assert left.value.reason == "Dee was moved to another board: move it back in its change form."
    assert joined.value.reason == "Dee was moved here from another board: move it back in its change form."


def test_the_change_set_that_created_the_board_cannot_be_undone(board, staff):
    with pytest.raises(UndoRefused, match="created the board"):
        undo_change(change=record(board, 1), user=staff)


async def test_a_spectator_receives_the_undo_like_any_other_change(board, players, staff):
    async with spectate("finals") as ws:
        await receive(ws)
        await in_thread(set_score, players[3], 50)
        changed = await receive(ws)
        undone = await in_thread(record, board, changed["version"])
        await in_thread(undo_change, change=undone, user=staff)
        update = await receive(ws)
    assert update == {
        "type": "update",
        "slug": "finals",
        "version": changed["version"] + 1,
        "players": [{"id": players[3].pk, "name": "Dee", "score": 10, "rank": 4}],
        "removed": [],
    }


async def test_a_spectator_sees_a_removed_player_come_back(board, players, staff):
    async with spectate("finals") as ws:
        await receive(ws)
        await in_thread(players[0].delete)
        removal = await receive(ws)
        await in_thread(undo_change, change=await in_thread(record, board, removal["version"]), user=staff)
        update = await receive(ws)
    assert removal["removed"] == [update["players"][0]["id"]]
    assert update["players"] == [{"id": removal["removed"][0], "name": "Ada", "score": 30, "rank": 1}]
