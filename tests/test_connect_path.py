"""Connecting costs no database hop for an anonymous spectator of a board already watched."""

import asyncio

import pytest
from channels.testing import WebsocketCommunicator

from live.delivery import auth, reads
from scoreboard.asgi import application
from tests.conftest import SPECTATOR_HEADERS, TIMEOUT, in_thread, receive, spectate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def database_hops(monkeypatch) -> list[str]:
    """Every read the delivery side makes of the database, by name."""
    hops = []
    for name in ("find_board", "read_snapshot", "read_updates", "read_versions"):
        original = getattr(reads, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            hops.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(reads, name, counted)
    return hops


async def test_the_first_spectator_of_a_board_reads_it_once(players, database_hops):
    async with spectate("finals") as ws:
        assert (await receive(ws))["type"] == "snapshot"
    assert sorted(database_hops) == ["find_board", "read_snapshot"]


async def test_an_anonymous_spectator_of_a_watched_public_board_costs_no_database_hop(players, database_hops):
    async with spectate("finals") as first:
        await receive(first)
        database_hops.clear()
        async with spectate("finals") as second:
            snapshot = await receive(second)
    assert snapshot["version"] == 2
    assert database_hops == []


async def test_anonymous_spectators_arriving_together_share_one_lookup(players, database_hops):
    """A reconnect storm: 30 spectators at once, of a board nobody watches yet and of a missing one."""
    sockets = [WebsocketCommunicator(application, f"/ws/boards/{slug}/", headers=SPECTATOR_HEADERS)
               for slug in ["finals", "nope"] * 15]  # fmt: skip
    try:
        assert all(ok for ok, _ in await asyncio.gather(*(ws.connect(timeout=TIMEOUT) for ws in sockets)))
        frames = [await receive(ws) for ws in sockets[::2]]
        closes = [await ws.receive_output(timeout=TIMEOUT) for ws in sockets[1::2]]
    finally:
        await asyncio.gather(*(ws.disconnect() for ws in sockets))
    assert {frame["type"] for frame in frames} == {"snapshot"}
    assert {close["code"] for close in closes} == {4404}
    assert sorted(database_hops) == ["find_board", "find_board", "read_snapshot"]  # one per slug


async def test_a_watched_board_is_found_by_its_new_slug_after_a_rename(players, database_hops):
    board = players[0].board
    async with spectate("finals") as first:
        await receive(first)
        board.slug = "grand-finals"
        await in_thread(board.save)
        assert (await receive(first))["board"]["slug"] == "grand-finals"
        database_hops.clear()
        async with spectate("grand-finals") as second:
            assert (await receive(second))["board"]["slug"] == "grand-finals"
        # Found by its new slug without a lookup; the snapshot is new since the update.
        assert database_hops == ["read_snapshot"]


def test_a_connection_without_the_session_cookie_is_anonymous_without_a_lookup():
    assert not auth.has_session_cookie({"headers": [(b"cookie", b"csrftoken=abc")]})
    assert auth.has_session_cookie({"headers": [(b"cookie", b"csrftoken=abc; sessionid=xyz")]})
    assert not auth.has_session_cookie({"headers": []})


async def test_a_spectator_leaving_costs_no_database_hop(players, monkeypatch):
    """Channels closes stale database connections on every disconnect, in the database thread."""
    import channels.generic.websocket

    hops = []

    async def counted():
        hops.append("aclose_old_connections")

    monkeypatch.setattr(channels.generic.websocket, "aclose_old_connections", counted)
    for path in ("/ws/boards/finals/", "/ws/"):
        async with spectate("finals", path=path) as ws:
            if path == "/ws/":
                await ws.send_json_to({"type": "subscribe", "board": "finals"})
            assert (await receive(ws))["type"] == "snapshot"
    assert hops == []
