"""The spectator WebSocket: snapshot first, updates, resync, ping and every bad input."""

import pytest
from channels.testing import WebsocketCommunicator

from live.delivery.protocol import MAX_CLIENT_MESSAGE_BYTES
from live.models import Board
from scoreboard.asgi import application
from tests.conftest import TIMEOUT, expect_close, in_thread, receive, spectate

pytestmark = pytest.mark.django_db(transaction=True)


async def test_first_frame_is_a_snapshot_in_rank_order(players):
    async with spectate("finals") as ws:
        snapshot = await receive(ws)
    assert snapshot == {
        "type": "snapshot",
        "slug": "finals",
        "board": {"slug": "finals", "name": "Finals"},
        "version": 2,
        "players": [
            {"id": players[0].pk, "name": "Ada", "score": 30, "rank": 1},
            {"id": players[1].pk, "name": "Bob", "score": 20, "rank": 2},
            {"id": players[2].pk, "name": "Cy", "score": 20, "rank": 2},
            {"id": players[3].pk, "name": "Dee", "score": 10, "rank": 4},
        ],
        "watching": 1,
    }


async def next_frame_after(write, *args) -> dict:
    """The frame a new spectator of "finals" receives after its snapshot, once `write` ran."""
    async with spectate("finals") as ws:
        await receive(ws)
        await in_thread(write, *args)
        return await receive(ws)


def set_score(player, score: int) -> None:
    player.score = score
    player.save()


async def test_a_committed_save_arrives_as_the_next_version(players):
    dee = players[3]
    update = await next_frame_after(set_score, dee, 25)
    assert update == {
        "type": "update",
        "slug": "finals",
        "version": 3,
        "players": [{"id": dee.pk, "name": "Dee", "score": 25, "rank": 2}],
        "removed": [],
    }


async def test_a_deleted_player_is_listed_as_removed(players):
    ada_id = players[0].pk
    update = await next_frame_after(players[0].delete)
    assert update["players"] == [] and update["removed"] == [ada_id]


async def test_resync_answers_with_a_snapshot_of_the_newest_version(players):
    async with spectate("finals") as ws:
        await receive(ws)
        await in_thread(set_score, players[0], 99)
        assert (await receive(ws))["version"] == 3
        await ws.send_json_to({"type": "resync"})
        snapshot = await receive(ws)
    assert (snapshot["type"], snapshot["version"]) == ("snapshot", 3)
    assert snapshot["players"][0] == {"id": players[0].pk, "name": "Ada", "score": 99, "rank": 1}


async def test_ping_is_answered_with_pong(board):
    async with spectate("finals") as ws:
        await receive(ws)
        await ws.send_json_to({"type": "ping"})
        assert await receive(ws) == {"type": "pong"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('"ping"', "invalid_message"),
        ('{"type": "subscribe"}', "unknown_type"),
        ("{}", "unknown_type"),
    ],
)
async def test_a_bad_text_frame_gets_an_error_and_the_connection_stays_usable(board, frame, code):
    async with spectate("finals") as ws:
        await receive(ws)
        await ws.send_to(text_data=frame)
        error = await receive(ws)
        assert error["type"] == "error" and error["code"] == code and error["message"]
        await ws.send_json_to({"type": "ping"})
        assert await receive(ws) == {"type": "pong"}


async def test_deeply_nested_json_within_the_size_limit_gets_an_error(board):
    async with spectate("finals") as ws:
        await receive(ws)
        await ws.send_to(text_data="[" * (MAX_CLIENT_MESSAGE_BYTES - 1))
        assert (await receive(ws))["code"] == "invalid_json"


async def test_a_binary_frame_closes_with_1003(board):
    async with spectate("finals") as ws:
        await receive(ws)
        await ws.send_to(bytes_data=b"\x00\x01")
        await expect_close(ws, 1003)


async def test_a_frame_over_the_size_limit_closes_with_1009(board):
    async with spectate("finals") as ws:
        await receive(ws)
        await ws.send_to(text_data="é" * (MAX_CLIENT_MESSAGE_BYTES // 2 + 1))
        await expect_close(ws, 1009)


async def test_an_unknown_board_is_accepted_then_closed_with_4404(db):
    async with spectate("no-such-board") as ws:
        await expect_close(ws, 4404)


async def test_an_unknown_websocket_path_is_closed_with_4404(db):
    async with spectate("", path="/ws/elsewhere/") as ws:
        await expect_close(ws, 4404)


async def test_a_deleted_board_closes_its_spectators_with_4404(players):
    async with spectate("finals") as ws:
        await receive(ws)
        await in_thread(Board.objects.filter(slug="finals").delete)
        await expect_close(ws, 4404)


@pytest.mark.parametrize("origin", [b"http://evil.example", b"null"])
async def test_a_foreign_origin_is_refused_at_the_handshake(board, origin):
    headers = [(b"host", b"testserver"), (b"origin", origin)]
    communicator = WebsocketCommunicator(application, "/ws/boards/finals/", headers=headers)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert not connected
    await communicator.disconnect()


async def test_a_request_without_origin_is_refused(board):
    communicator = WebsocketCommunicator(
        application, "/ws/boards/finals/", headers=[(b"host", b"testserver")]
    )
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert not connected
    await communicator.disconnect()


async def test_an_update_not_newer_than_the_snapshot_is_not_sent(players):
    """An update still on its way when the snapshot read its version is already in the snapshot."""
    from live.delivery.relay import get_relay

    board_id = players[0].board_id
    async with spectate("finals") as ws:
        assert (await receive(ws))["version"] == 2
        for version in (1, 2, 3):
            text = f'{{"type":"update","version":{version},"players":[],"removed":[]}}'
            await get_relay().dispatch(
                {"type": "board.update", "board_id": board_id, "version": version, "text": text}
            )
        assert (await receive(ws))["version"] == 3
        assert await ws.receive_nothing(timeout=0.1)
