"""The process relay: one channel-layer member per board, frames fanned out locally."""

import asyncio
from contextlib import AsyncExitStack

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from live.delivery.heartbeat import HEARTBEAT_EVERY, HEARTBEAT_TIMEOUT
from live.delivery.relay import get_relay
from live.models import Board, Player
from scoreboard.asgi import application
from tests.conftest import SPECTATOR_HEADERS, in_thread, receive, spectate

pytestmark = pytest.mark.django_db(transaction=True)


async def open_spectators(stack: AsyncExitStack, slug: str, count: int) -> list:
    spectators = [await stack.enter_async_context(spectate(slug)) for _ in range(count)]
    for ws in spectators:
        assert (await receive(ws))["type"] == "snapshot"
    return spectators


async def test_each_board_reaches_only_its_own_spectators(players):
    other = await in_thread(Board.objects.create, name="Other", slug="other")
    await in_thread(Player.objects.create, board=other, name="Zed", score=1)
    async with AsyncExitStack() as stack:
        finals = await open_spectators(stack, "finals", 30)
        others = await open_spectators(stack, "other", 10)
        dee = players[3]
        dee.score = 11
        await in_thread(dee.save)
        zed = await in_thread(Player.objects.get, name="Zed")
        zed.score = 2
        await in_thread(zed.save)
        for ws in finals:
            assert [p["name"] for p in (await receive(ws))["players"]] == ["Dee"]
        for ws in others:
            assert [p["name"] for p in (await receive(ws))["players"]] == ["Zed"]
        for ws in finals + others:
            assert await ws.receive_nothing(timeout=0.05)


async def test_the_group_has_one_member_per_process_whatever_the_audience(players):
    layer = get_channel_layer()
    async with AsyncExitStack() as stack:
        await open_spectators(stack, "finals", 25)
        assert len(layer.groups[players[0].board.group_name]) == 1
        assert len(get_relay().feeds[players[0].board.pk]) == 25


async def test_spectators_leaving_do_not_disturb_the_others(players):
    board = players[0].board
    async with AsyncExitStack() as stack:
        staying = await open_spectators(stack, "finals", 5)
        async with AsyncExitStack() as leaving_stack:
            await open_spectators(leaving_stack, "finals", 5)
        assert len(get_relay().feeds[board.pk]) == 5
        ada = players[0]
        ada.score = 31
        await in_thread(ada.save)
        for ws in staying:
            assert (await receive(ws))["version"] == 3


async def test_the_relay_leaves_the_group_when_the_last_spectator_goes(players):
    board, layer, relay = players[0].board, get_channel_layer(), get_relay()
    async with AsyncExitStack() as stack:
        await open_spectators(stack, "finals", 3)
        assert relay.channel is not None
    assert board.pk not in relay.feeds
    assert not layer.groups.get(board.group_name)
    assert relay.channel is None  # listener stopped


async def test_an_update_during_the_snapshot_is_sent_after_it(players, monkeypatch):
    """Frames that arrive while a snapshot is read are held back, then sent if newer."""
    import live.delivery.reads

    original = live.delivery.reads.read_snapshot
    reading = asyncio.Event()
    proceed = asyncio.Event()

    async def slow_snapshot(board_id):
        snapshot = await original(board_id)
        reading.set()
        await asyncio.wait_for(proceed.wait(), 5)
        return snapshot

    monkeypatch.setattr(live.delivery.reads, "read_snapshot", slow_snapshot)
    connecting = asyncio.create_task(spectate("finals").__aenter__())
    await asyncio.wait_for(reading.wait(), 5)
    dee = players[3]
    dee.score = 12
    await in_thread(dee.save)  # published while the snapshot (version 2) is held
    proceed.set()
    ws = await asyncio.wait_for(connecting, 5)
    try:
        assert (await receive(ws))["version"] == 2
        update = await receive(ws)
        assert (update["type"], update["version"]) == ("update", 3)
    finally:
        await ws.disconnect()


async def test_the_relay_leaves_its_heartbeat_group_too_when_the_last_spectator_goes(players):
    layer, relay = get_channel_layer(), get_relay()
    async with AsyncExitStack() as stack:
        await open_spectators(stack, "finals", 2)
        channel = relay.channel
        assert any(channel in members for members in layer.groups.values())
    assert not any(channel in members for members in layer.groups.values())


async def test_a_lost_channel_layer_makes_spectators_stale_then_a_snapshot_follows(players, monkeypatch):
    """The heartbeat notices a broker that swallows messages; recovery resyncs everyone."""
    layer = get_channel_layer()
    group_send = layer.group_send

    async def lost(group, message):
        pass  # accepted and never delivered, as the pubsub layer does while Redis is away

    async with AsyncExitStack() as stack:
        spectators = await open_spectators(stack, "finals", 2)
        monkeypatch.setattr(layer, "group_send", lost)
        for ws in spectators:
            assert await ws.receive_json_from(timeout=HEARTBEAT_EVERY + HEARTBEAT_TIMEOUT + 1) == {
                "type": "stale",
                "slug": "finals",
            }
        dee = players[3]
        dee.score = 99
        await in_thread(dee.save)  # lost: sent while the broker is away
        monkeypatch.setattr(layer, "group_send", group_send)
        for ws in spectators:
            snapshot = await ws.receive_json_from(timeout=2)
            assert (snapshot["type"], snapshot["version"]) == ("snapshot", 3)
            assert {"id": dee.pk, "name": "Dee", "score": 99, "rank": 1} in snapshot["players"]
        assert get_relay().live


async def test_a_spectator_refused_while_the_broker_is_down_leaves_no_relay_running(players, monkeypatch):
    layer, relay = get_channel_layer(), get_relay()

    async def unreachable(group, channel):
        raise ConnectionError("the broker is down")

    monkeypatch.setattr(layer, "group_add", unreachable)
    ws = WebsocketCommunicator(application, "/ws/boards/finals/", headers=SPECTATOR_HEADERS)
    connected, _ = await ws.connect(timeout=5)
    assert connected
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 1013}
    await ws.disconnect()
    assert relay.channel is None and not relay._tasks


async def test_a_heartbeat_late_behind_a_long_fan_out_is_not_a_lost_broker(players, monkeypatch):
    """A busy event loop delays the heartbeat; that is load, and spectators stay live."""
    from live.delivery.consumers import SpectatorConsumer

    send_frame = SpectatorConsumer.send_frame

    async def slow_send(self, text):
        await asyncio.sleep(HEARTBEAT_EVERY + HEARTBEAT_TIMEOUT)  # stands in for a huge fan-out
        await send_frame(self, text)

    async with AsyncExitStack() as stack:
        spectators = await open_spectators(stack, "finals", 2)
        monkeypatch.setattr(SpectatorConsumer, "send_frame", slow_send)
        dee = players[3]
        dee.score = 13
        await in_thread(dee.save)
        for ws in spectators:
            frame = await ws.receive_json_from(timeout=4 * (HEARTBEAT_EVERY + HEARTBEAT_TIMEOUT))
            assert (frame["type"], frame["version"]) == ("update", 3)
        assert get_relay().live


async def test_recovery_reads_one_snapshot_per_board_not_one_per_spectator(players, monkeypatch):
    import live.delivery.reads

    layer, reads = get_channel_layer(), []
    group_send, fetch_snapshot = layer.group_send, live.delivery.reads.read_snapshot

    async def counted_fetch(board_id):
        reads.append(board_id)
        return await fetch_snapshot(board_id)

    async def lost(group, message):
        pass

    async with AsyncExitStack() as stack:
        spectators = await open_spectators(stack, "finals", 20)
        monkeypatch.setattr(layer, "group_send", lost)
        for ws in spectators:
            assert (await ws.receive_json_from(timeout=HEARTBEAT_EVERY + HEARTBEAT_TIMEOUT + 1))[
                "type"
            ] == "stale"
        monkeypatch.setattr(live.delivery.reads, "read_snapshot", counted_fetch)
        monkeypatch.setattr(layer, "group_send", group_send)
        for ws in spectators:
            assert (await ws.receive_json_from(timeout=3))["type"] == "snapshot"
    assert reads == [players[0].board.pk]
