"""The relay's fan-out shortcuts: one delivery per version, snapshots reused only while current."""

import pytest
from channels.layers import get_channel_layer

from live.models import Board, Player
from tests.conftest import TIMEOUT, in_thread, receive, spectate

pytestmark = pytest.mark.django_db(transaction=True)


async def add_point(player: Player) -> None:
    player.score += 1
    await in_thread(player.save)


async def test_a_redelivered_update_reaches_each_spectator_once(players):
    """channels-redis core delivers at least once: a repeated version is dropped by the relay."""
    async with spectate("finals") as ws:
        await receive(ws)
        await add_point(players[0])
        text = await ws.receive_from(timeout=TIMEOUT)
        board_id = players[0].board_id
        message = {"type": "board.update", "board_id": board_id, "version": 3, "text": text}
        await get_channel_layer().group_send(Board.group_name_for(board_id), message)
        await add_point(players[1])
        assert (await receive(ws))["version"] == 4


async def test_a_spectator_joining_after_an_update_gets_a_snapshot_that_includes_it(players):
    async with spectate("finals") as first:
        assert (await receive(first))["version"] == 2  # now held by the relay
        await add_point(players[3])
        assert (await receive(first))["version"] == 3
        async with spectate("finals") as second:
            snapshot = await receive(second)
    assert snapshot["version"] == 3
    assert {"id": players[3].pk, "name": "Dee", "score": 11, "rank": 4} in snapshot["players"]
