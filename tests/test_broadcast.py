"""Signals -> one message per committed change-set, sent from transaction.on_commit."""

import json
import logging

import pytest
from django.db import transaction

from live.delivery.publish import publish_change_set
from live.models import Board, Player
from live.scores.services import award_points
from tests.conftest import in_thread

pytestmark = pytest.mark.django_db(transaction=True)


def frame(message: dict) -> dict:
    assert message["type"] == "board.update"
    update = json.loads(message["text"])
    assert update["version"] == message["version"]
    return update


async def test_a_save_sends_one_update_with_the_next_version(players, group_listener):
    next_message = await group_listener(players[0].board)
    dee = players[3]
    dee.score = 31
    await in_thread(dee.save)
    update = frame(await next_message())
    assert update == {
        "type": "update",
        "slug": "finals",
        "version": 3,
        "players": [{"id": dee.pk, "name": "Dee", "score": 31, "rank": 1}],
        "removed": [],
    }


async def test_a_rolled_back_transaction_sends_nothing(players, group_listener):
    next_message = await group_listener(players[0].board)

    def rolled_back_then_committed():
        with pytest.raises(RuntimeError), transaction.atomic():
            Player.objects.get(name="Ada").delete()
            raise RuntimeError("roll back")
        bob = Player.objects.get(name="Bob")
        bob.score = 21
        bob.save()

    await in_thread(rolled_back_then_committed)
    update = frame(await next_message())
    # The first message is the committed save: the rollback neither sent nor used a version.
    assert update["version"] == 3
    assert [p["name"] for p in update["players"]] == ["Bob"] and update["removed"] == []


async def test_a_rolled_back_savepoint_keeps_the_outer_changes(players, group_listener):
    next_message = await group_listener(players[0].board)

    def outer_commits_inner_rolls_back():
        with transaction.atomic():
            Player.objects.filter(name="Ada").first().delete()
            with pytest.raises(RuntimeError), transaction.atomic():
                dee = Player.objects.get(name="Dee")
                dee.score = 99
                dee.save()
                raise RuntimeError("roll back the savepoint only")

    await in_thread(outer_commits_inner_rolls_back)
    update = frame(await next_message())
    assert update["version"] == 3
    assert update["removed"] == [players[0].pk]
    assert all(p["score"] != 99 for p in update["players"])


async def test_many_changes_in_one_transaction_are_one_message(players, group_listener):
    board = players[0].board
    next_message = await group_listener(board)

    def one_transaction():
        with transaction.atomic():
            for player in Player.objects.all():
                player.score += 1
                player.save()
            Player.objects.create(board=board, name="Eve", score=5)
        Player.objects.filter(name="Eve").update(score=6)  # no signal, no message
        Player.objects.get(name="Ada").save()

    await in_thread(one_transaction)
    first, second = frame(await next_message()), frame(await next_message())
    assert first["version"] == 3 and second["version"] == 4
    assert sorted(p["name"] for p in first["players"]) == ["Ada", "Bob", "Cy", "Dee", "Eve"]
    assert [p["name"] for p in second["players"]] == ["Ada"]


async def test_the_version_is_bumped_once_per_change_set(players):
    def two_commits():
        for score in (50, 60):
            with transaction.atomic():
                for player in Player.objects.all():
                    player.score = score
                    player.save()
        return Board.objects.get().version

    assert await in_thread(two_commits) == 4


async def test_renaming_a_board_sends_its_new_name(board, group_listener):
    next_message = await group_listener(board)
    board.name = "Grand final"
    await in_thread(board.save)
    update = frame(await next_message())
    assert update["board"] == {"slug": "finals", "name": "Grand final"}


async def test_moving_a_player_updates_both_boards(players, group_listener):
    other = await in_thread(Board.objects.create, name="Other", slug="other")
    from_finals, from_other = await group_listener(players[0].board), await group_listener(other)
    ada = await in_thread(Player.objects.get, name="Ada")
    ada.board = other
    await in_thread(ada.save)
    assert frame(await from_finals())["removed"] == [ada.pk]
    assert [p["name"] for p in frame(await from_other())["players"]] == ["Ada"]


async def test_award_points_adds_atomically_and_sends_one_update_per_board(players, group_listener):
    next_message = await group_listener(players[0].board)
    changed = await in_thread(award_points, player_ids=[players[1].pk, players[3].pk], points=5)
    update = frame(await next_message())
    assert changed == 2
    assert {p["name"]: p["score"] for p in update["players"]} == {"Bob": 25, "Dee": 15}


async def test_deleting_a_board_tells_its_spectators(board, group_listener):
    next_message = await group_listener(board)
    board_id = board.pk
    await in_thread(board.delete)
    assert await next_message() == {"type": "board.removed", "board_id": board_id}


def test_a_save_succeeds_and_logs_when_the_channel_layer_is_down(players, settings, caplog, unused_tcp_port):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{unused_tcp_port}/0"]},
        }
    }
    dee = players[3]
    dee.score = 77
    with caplog.at_level(logging.ERROR, logger="live.delivery.publish"):
        dee.save()
    assert Player.objects.get(pk=dee.pk).score == 77
    assert Board.objects.get().version == 3
    [record] = [r for r in caplog.records if r.name == "live.delivery.publish"]
    assert f"board={dee.board_id} version=3" in record.getMessage()
    assert record.exc_info is None  # one line, not a traceback


def test_publishing_a_change_set_of_a_deleted_board_sends_nothing(db):
    publish_change_set(board_id=12345, version=1)
