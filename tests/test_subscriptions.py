"""The /ws/ connection's subscriptions in one process: the edges of live/delivery/subscriptions.py.

The behaviour across real processes is in tests/test_multiplex.py.
"""

import asyncio

import pytest
from channels.layers import get_channel_layer

from live.delivery.heartbeat import HEARTBEAT_EVERY, HEARTBEAT_TIMEOUT
from live.delivery.relay import get_relay
from live.models import Board, Player
from tests.conftest import TIMEOUT, in_thread, receive, spectate

pytestmark = pytest.mark.django_db(transaction=True)


def subscribe(slug: str) -> dict:
    return {"type": "subscribe", "board": slug}


async def until_no_feeds() -> None:
    """The relay leaves a board's group once its last spectator left (a task, after the frame)."""
    async with asyncio.timeout(TIMEOUT):
        while get_relay().feeds:
            await asyncio.sleep(0.01)  # polling the relay's state: it has no event to await


@pytest.fixture
def second(db) -> Board:
    board = Board.objects.create(name="Second", slug="second")
    Player.objects.create(board=board, name="Ann", score=1)
    return board


async def test_each_subscribed_board_is_told_stale_with_its_slug(players, second, monkeypatch):
    layer = get_channel_layer()

    async def lost(group, message):
        pass  # accepted and never delivered, as the pubsub layer does while Redis is away

    async with spectate("", path="/ws/") as ws:
        for slug in ("finals", "second"):
            await ws.send_json_to(subscribe(slug))
            assert (await receive(ws))["type"] == "snapshot"
        monkeypatch.setattr(layer, "group_send", lost)
        wait = HEARTBEAT_EVERY + HEARTBEAT_TIMEOUT + 1
        stale = [await ws.receive_json_from(timeout=wait) for _ in range(2)]
        assert sorted(stale, key=lambda frame: frame["slug"]) == [
            {"type": "stale", "slug": "finals"},
            {"type": "stale", "slug": "second"},
        ]


async def test_an_unsubscribe_before_the_snapshot_is_the_last_frame_of_that_board(players):
    async with spectate("", path="/ws/") as ws:
        await ws.send_json_to(subscribe("finals"))
        await ws.send_json_to({"type": "unsubscribe", "board": "finals"})
        assert await receive(ws) == {"type": "unsubscribed", "slug": "finals", "reason": "client"}
        await until_no_feeds()
        await ws.send_json_to({"type": "ping"})
        assert await receive(ws) == {"type": "pong"}, "no snapshot after unsubscribed"


async def test_subscribing_twice_while_the_first_snapshot_is_on_its_way_sends_one(players):
    async with spectate("", path="/ws/") as ws:
        await ws.send_json_to(subscribe("finals"))
        await ws.send_json_to(subscribe("finals"))
        assert (await receive(ws))["type"] == "snapshot"
        await ws.send_json_to({"type": "ping"})
        assert await receive(ws) == {"type": "pong"}


async def test_a_board_made_private_ends_as_forbidden_and_its_feed_is_left(players):
    board = players[0].board
    async with spectate("", path="/ws/") as ws:
        await ws.send_json_to(subscribe("finals"))
        await receive(ws)
        board.is_public = False
        await in_thread(board.save)
        assert await receive(ws) == {"type": "unsubscribed", "slug": "finals", "reason": "forbidden"}
        await until_no_feeds()
        await ws.send_json_to({"type": "resync", "board": "finals"})
        assert (await receive(ws))["code"] == "not_subscribed"


async def test_a_subscription_knows_its_connection_and_who_opened_it(players):
    """The seam for messages to one member: each subscription's connection, user and session."""
    async with spectate("", path="/ws/") as ws:
        await ws.send_json_to(subscribe("finals"))
        await receive(ws)
        feed = get_relay().feeds[players[0].board_id]
        (subscription,) = feed.spectators()
        connection = subscription.connection
        assert list(connection.subscriptions) == [subscription]
        assert not connection.user.is_authenticated and connection.session_key is None
        assert subscription.may_view_private is False
