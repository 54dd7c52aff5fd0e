"""Every writer heard: updates a relay never received reach spectators from the database."""

import time

import pytest
from channels.layers import get_channel_layer
from django.db import transaction

from live.delivery import reads
from live.models import Board, Change, Player
from tests.conftest import TIMEOUT, in_thread, receive, spectate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def never_publish(monkeypatch):
    """Writers commit and never publish: a process killed between its commit and its publish."""
    import live.delivery.publish

    monkeypatch.setattr(live.delivery.publish, "publish_change_set", lambda **kwargs: None)


async def set_score(player: Player, score: int) -> float:
    player.score = score
    await in_thread(player.save)
    return time.monotonic()


async def test_a_change_that_was_never_published_reaches_spectators_as_an_update(players, never_publish):
    async with spectate("finals") as ws:
        assert (await receive(ws))["version"] == 2
        committed = await set_score(players[3], 50)
        update = await receive(ws)
        delay = time.monotonic() - committed
    assert (update["type"], update["version"]) == ("update", 3)
    assert update["players"] == [{"id": players[3].pk, "name": "Dee", "score": 50, "rank": 1}]
    assert delay < 2.0


async def test_lost_updates_arrive_in_order_one_update_per_version(players, lose_updates):
    async with spectate("finals") as ws:
        await receive(ws)
        for score in (51, 52, 53):
            await set_score(players[3], score)
        frames = [await receive(ws) for _ in range(3)]
    assert [(f["type"], f["version"]) for f in frames] == [("update", 3), ("update", 4), ("update", 5)]
    assert frames[-1]["players"][0]["score"] == 53


async def test_a_board_behind_the_database_reads_it_once_per_process_not_per_spectator(
    players, never_publish, monkeypatch
):
    calls = []
    read_updates = reads.read_updates

    async def counted(board_id, after):
        calls.append(after)
        return await read_updates(board_id, after)

    monkeypatch.setattr(reads, "read_updates", counted)
    async with spectate("finals") as first, spectate("finals") as second:
        await receive(first)
        await receive(second)
        await set_score(players[0], 77)
        assert (await receive(first))["version"] == 3
        assert (await receive(second))["version"] == 3
    assert calls == [2]


async def test_an_update_that_overtakes_its_predecessor_is_held_and_delivered_in_order(players, monkeypatch):
    """Two writers commit 3 and 4 almost at once and 4 is published first: no resync needed."""
    layer = get_channel_layer()
    held_back = []
    group_send = layer.group_send

    async def reorder(group, message):
        if message.get("version") == 3:
            held_back.append((group, message))
            return
        await group_send(group, message)
        if message.get("version") == 4:
            await group_send(*held_back.pop())

    monkeypatch.setattr(layer, "group_send", reorder)
    async with spectate("finals") as ws:
        await receive(ws)
        await set_score(players[3], 60)
        await set_score(players[2], 61)
        frames = [await receive(ws), await receive(ws)]
        assert await ws.receive_nothing(timeout=0.3)
    assert [(f["type"], f["version"]) for f in frames] == [("update", 3), ("update", 4)]


async def test_a_gap_that_stays_open_is_read_from_the_change_records(players, monkeypatch):
    layer = get_channel_layer()
    group_send = layer.group_send

    async def lose_version_3(group, message):
        if message.get("version") != 3:
            await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", lose_version_3)
    async with spectate("finals") as ws:
        await receive(ws)
        await set_score(players[3], 70)
        started = time.monotonic()
        await set_score(players[2], 71)
        frames = [await receive(ws), await receive(ws)]
        waited = time.monotonic() - started
    assert [(f["type"], f["version"]) for f in frames] == [("update", 3), ("update", 4)]
    assert frames[0]["players"][0]["name"] == "Dee"
    assert waited < 1.0  # the reorder hold (0.1 s) and one read, not the periodic check


async def test_a_deleted_board_whose_removal_was_lost_closes_its_spectators(players, monkeypatch):
    layer = get_channel_layer()
    group_send = layer.group_send

    async def lose_everything(group, message):
        if not group.startswith("relay-"):
            return
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", lose_everything)
    async with spectate("finals") as ws:
        await receive(ws)
        await in_thread(Board.objects.filter(slug="finals").delete)
        assert await ws.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4404}


def test_every_change_set_commits_with_its_version_and_record(players):
    board = players[0].board
    dee = players[3]
    dee.score = 11
    dee.save()
    record = Change.objects.get(board=board, version=3)
    assert Board.objects.get(pk=board.pk).version == 3
    assert [(e.player_id, e.score_before, e.score_after) for e in record.players.all()] == [(dee.pk, 10, 11)]


def test_a_rolled_back_change_leaves_neither_version_nor_record(players):
    board = players[0].board
    with pytest.raises(RuntimeError), transaction.atomic():
        players[3].delete()
        raise RuntimeError("roll back")
    assert Board.objects.get(pk=board.pk).version == 2
    assert not Change.objects.filter(board=board, version=3).exists()


async def test_spectators_stay_idle_when_nothing_changes(players):
    """The database check sends nothing while the relay is up to date."""
    async with spectate("finals") as ws:
        await receive(ws)
        assert await ws.receive_nothing(timeout=1.5)


async def test_a_board_first_watched_during_the_version_read_is_not_taken_for_deleted():
    """The read asked about the boards watched when it began; a feed added meanwhile is not in it."""
    from live.delivery.freshness import FreshnessCheck

    class Feed:
        version = 1
        removed = False

        async def board_removed(self):
            self.removed = True

    feeds = {1: Feed()}

    async def read_versions(board_ids):
        feeds[2] = Feed()  # a spectator joins board 2 while the versions are read
        return {board_id: 1 for board_id in board_ids}

    await FreshnessCheck(feeds, read_versions).check()
    assert not feeds[2].removed
