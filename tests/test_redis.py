"""The same delivery path against a real redis-server, with each channels-redis layer."""

import asyncio
import os

import pytest
from asgiref.sync import SyncToAsync
from channels.layers import get_channel_layer

from live.delivery import publish
from tests.conftest import in_thread, receive, spectate

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
async def redis_cleanup(redis_layer):
    yield redis_layer
    await get_channel_layer().flush()


async def test_a_save_reaches_spectators_through_redis(players, redis_cleanup):
    async with spectate("finals") as first, spectate("finals") as second:
        for ws in (first, second):
            assert (await receive(ws))["version"] == 2
        dee = players[3]
        dee.score = 50
        await in_thread(dee.save)
        for ws in (first, second):
            update = await receive(ws)
            assert update["version"] == 3
            assert update["players"] == [{"id": dee.pk, "name": "Dee", "score": 50, "rank": 1}]


async def test_consecutive_saves_arrive_in_version_order(players, redis_cleanup):
    async with spectate("finals") as ws:
        await receive(ws)
        dee = players[3]
        for score in range(11, 31):
            dee.score = score
            await in_thread(dee.save)
        versions = [(await receive(ws))["version"] for _ in range(20)]
    assert versions == list(range(3, 23))


@pytest.mark.parametrize("asgiref_left_a_loop", [False, True])
def test_a_writer_process_publishes_every_change_over_the_same_connection(
    redis_layer, redis_url, asgiref_left_a_loop, monkeypatch
):
    """Outside a server (a script, `manage.py simulate`), sends share one loop and its connections:
    `async_to_sync` alone made a new event loop, so a new Redis connection, for every change.
    asgiref leaves its last (stopped) loop in a thread's locals: that is no server to send on."""
    import redis

    if asgiref_left_a_loop:
        stopped = asyncio.new_event_loop()
        stopped.close()
        monkeypatch.setattr(SyncToAsync.threadlocal, "main_event_loop", stopped, raising=False)
        monkeypatch.setattr(SyncToAsync.threadlocal, "main_event_loop_pid", os.getpid(), raising=False)
    stats = redis.Redis.from_url(redis_url)
    try:
        publish.send_to_board(board_id=0, message={"type": publish.UPDATE, "board_id": 0})  # connects
        before = stats.info("stats")["total_connections_received"]
        for version in range(20):
            publish.send_to_board(board_id=0, message={"type": publish.UPDATE, "version": version})
        assert stats.info("stats")["total_connections_received"] - before <= 1
    finally:
        stats.close()
