"""Server-Sent Events: the WebSocket's frames over one long HTTP response, through the ASGI app."""

import asyncio
import json
from contextlib import asynccontextmanager

import pytest
from channels.layers import get_channel_layer
from channels.testing import ApplicationCommunicator

from live.delivery import events
from live.delivery.relay import get_relay
from live.models import Board, Player
from scoreboard.asgi import application
from tests.conftest import TIMEOUT, in_thread, spectate
from tests.test_private_boards import make_user, session_headers

pytestmark = pytest.mark.django_db(transaction=True)


class EventStream:
    """The client side of one request: its status, headers and the events of its body."""

    def __init__(self, communicator: ApplicationCommunicator) -> None:
        self.communicator = communicator
        self.status: int | None = None
        self.headers: dict[bytes, bytes] = {}
        self.buffer = b""
        self.ended = False

    async def start(self) -> None:
        start = await self.communicator.receive_output(TIMEOUT)
        assert start["type"] == "http.response.start"
        self.status = start["status"]
        self.headers = dict(start["headers"])

    async def chunk(self) -> bytes:
        message = await self.communicator.receive_output(TIMEOUT)
        assert message["type"] == "http.response.body"
        self.ended = not message.get("more_body", False)
        return message["body"]

    async def next_block(self) -> str:
        """The next event or comment: the text up to its blank line."""
        while b"\n\n" not in self.buffer:
            assert not self.ended, "the stream ended"
            self.buffer += await self.chunk()
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        return block.decode()

    async def next_event(self) -> tuple[int | None, dict]:
        """(id or None, frame), skipping comments."""
        while (block := await self.next_block()).startswith(":"):
            pass
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        assert set(fields) <= {"id", "data"}, block
        return (int(fields["id"]) if "id" in fields else None), json.loads(fields["data"])

    async def body(self) -> bytes:
        """The whole body of a response that is not a stream."""
        data = self.buffer
        while not self.ended:
            data += await self.chunk()
        return data

    async def nothing_for(self, seconds: float) -> None:
        assert await self.communicator.receive_nothing(seconds), "unexpected output"


@asynccontextmanager
async def stream(slug: str, *, headers=(), method: str = "GET"):
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": f"/events/boards/{slug}/",
        "raw_path": f"/events/boards/{slug}/".encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    client = EventStream(communicator)
    await client.start()
    try:
        yield client
    finally:
        await communicator.send_input({"type": "http.disconnect"})
        await communicator.wait(TIMEOUT)


async def set_score(player: Player, score: int) -> None:
    player.score = score
    await in_thread(player.save)


async def test_the_stream_opens_with_the_websockets_snapshot_with_its_version_as_id(players):
    async with stream("finals") as sse:
        assert sse.status == 200
        assert sse.headers[b"content-type"] == b"text/event-stream; charset=utf-8"
        assert sse.headers[b"cache-control"] == b"no-cache"
        event_id, snapshot = await sse.next_event()
    async with spectate("finals") as ws:
        assert snapshot == await ws.receive_json_from(TIMEOUT)
    assert (event_id, snapshot["type"], snapshot["version"]) == (2, "snapshot", 2)


async def test_each_committed_change_arrives_as_the_websockets_update(players):
    async with stream("finals") as sse, spectate("finals") as ws:
        await sse.next_event()
        await ws.receive_json_from(TIMEOUT)
        await set_score(players[3], 25)
        event_id, update = await sse.next_event()
        assert update == await ws.receive_json_from(TIMEOUT)
    assert (event_id, update["type"], update["version"]) == (3, "update", 3)
    assert update["players"] == [{"id": players[3].pk, "name": "Dee", "score": 25, "rank": 2}]


async def test_a_stream_is_a_spectator_of_the_relay_not_a_channel_layer_member(players, monkeypatch):
    layer = get_channel_layer()
    joined = []
    group_add = layer.group_add

    async def counted(group, channel):
        joined.append(group)
        await group_add(group, channel)

    monkeypatch.setattr(layer, "group_add", counted)
    async with stream("finals") as first, stream("finals") as second:
        await first.next_event()
        await second.next_event()
        board_id = players[0].board_id
        assert len(get_relay().feeds[board_id]) == 2
    assert joined.count(f"board-{board_id}") == 1
    assert board_id not in get_relay().feeds, "the streams left the relay when the clients went away"


async def test_last_event_id_of_the_current_version_resumes_without_a_snapshot(players):
    """Only the count the snapshot would have carried: a watching frame, without an id."""
    async with stream("finals", headers=[(b"last-event-id", b"2")]) as sse:
        assert await sse.next_block() == ": live scoreboard"
        assert await sse.next_event() == (None, {"type": "watching", "slug": "finals", "count": 1})
        assert sse.buffer == b""
        await sse.nothing_for(0.3)
        await set_score(players[3], 25)
        event_id, update = await sse.next_event()
    assert (event_id, update["type"]) == (3, "update")


async def test_last_event_id_of_an_older_version_resumes_with_the_missed_updates(players):
    await set_score(players[3], 25)
    await set_score(players[2], 5)
    async with stream("finals", headers=[(b"last-event-id", b"2")]) as sse:
        missed = [await sse.next_event(), await sse.next_event()]
        watching = await sse.next_event()
        await set_score(players[1], 1)
        live = await sse.next_event()
    assert [(i, frame["type"]) for i, frame in missed] == [(3, "update"), (4, "update")]
    assert watching == (None, {"type": "watching", "slug": "finals", "count": 1})
    assert missed[1][1]["players"] == [{"id": players[2].pk, "name": "Cy", "score": 5, "rank": 4}]
    assert (live[0], live[1]["type"]) == (5, "update")


@pytest.mark.parametrize("last_id", [b"99", b"abc", b"-1", b""])
async def test_a_last_event_id_that_cannot_be_resumed_gets_the_snapshot(players, last_id):
    """Newer than the board (another database?), or not a version at all."""
    async with stream("finals", headers=[(b"last-event-id", last_id)]) as sse:
        event_id, frame = await sse.next_event()
    assert (event_id, frame["type"]) == (2, "snapshot")


async def test_missed_updates_the_change_records_cannot_give_get_the_snapshot(players, monkeypatch):
    await set_score(players[3], 40)

    async def not_recorded(board_id, after, until):
        return None  # what updates_since() says beyond its limit or before the records

    monkeypatch.setattr(events.reads, "read_updates_until", not_recorded)
    async with stream("finals", headers=[(b"last-event-id", b"2")]) as sse:
        event_id, frame = await sse.next_event()
    assert (event_id, frame["type"]) == (3, "snapshot")


async def test_a_quiet_stream_sends_a_keep_alive_comment(board, monkeypatch):
    monkeypatch.setattr(events, "KEEP_ALIVE_AFTER", 0.2)
    async with stream("finals") as sse:
        await sse.next_event()
        assert await sse.next_block() == ": keep-alive"
        assert await sse.next_block() == ": keep-alive"


async def test_an_unknown_board_is_404_json_and_no_stream(db):
    async with stream("nope") as response:
        body = json.loads(await response.body())
    assert response.status == 404
    assert response.headers[b"content-type"] == b"application/json"
    assert body["code"] == "board_not_found"


async def test_a_private_board_is_a_missing_one_to_outsiders_and_streamed_to_viewers(db):
    board = await in_thread(Board.objects.create, name="Secret", slug="hidden", is_public=False)
    await in_thread(Player.objects.create, board=board, name="Insider", score=7)
    async with stream("hidden", headers=await in_thread(session_headers, None)) as outsider:
        body = await outsider.body()
    async with stream("nope") as missing:
        missing_body = await missing.body()
    assert (outsider.status, body) == (missing.status, missing_body) == (404, missing_body)
    assert json.loads(body)["code"] == "board_not_found" and b"Secret" not in body
    viewer = await in_thread(make_user, "viewer", allowed=True)
    async with stream("hidden", headers=await in_thread(session_headers, viewer)) as insider:
        _, snapshot = await insider.next_event()
    assert snapshot["players"][0]["name"] == "Insider"


async def test_a_board_made_private_ends_an_outsiders_stream_with_forbidden(players):
    board = await in_thread(Board.objects.get, pk=players[0].board_id)
    async with stream("finals") as sse:
        await sse.next_event()
        board.is_public = False
        await in_thread(board.save)
        event_id, frame = await sse.next_event()
        assert sse.buffer == b"" and sse.ended
    assert (event_id, frame["type"], frame["code"]) == (None, "error", "forbidden")


async def test_a_deleted_board_ends_the_stream_with_board_not_found(players):
    board = await in_thread(Board.objects.get, pk=players[0].board_id)
    async with stream("finals") as sse:
        await sse.next_event()
        await in_thread(board.delete)
        _, frame = await sse.next_event()
        assert sse.ended
    assert (frame["type"], frame["code"]) == ("error", "board_not_found")


async def test_only_get_is_allowed(board):
    async with stream("finals", method="POST") as response:
        await response.body()
    assert response.status == 405
    assert response.headers[b"allow"] == b"GET"


async def test_a_channel_layer_that_is_down_answers_503_with_retry_after(board, monkeypatch):
    async def down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(get_channel_layer(), "group_add", down)
    async with stream("finals") as response:
        await response.body()
    assert response.status == 503
    assert response.headers[b"retry-after"] == b"5"
    assert players_watched() == 0


def players_watched() -> int:
    return sum(len(feed) for feed in get_relay().feeds.values())


async def test_other_http_paths_still_reach_django(players):
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": "/api/boards/finals/",
        "raw_path": b"/api/boards/finals/",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    response = EventStream(communicator)
    await response.start()
    body = json.loads(await response.body())
    await asyncio.wait_for(communicator.wait(TIMEOUT), TIMEOUT + 1)
    assert response.status == 200 and body["type"] == "snapshot"


class Transport:
    """What DaphneStream needs of a Twisted transport: it falls back to write() for this one."""

    bufferSize = 65536

    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data


class Request:
    startedWriting = True
    finished = False
    stream_dropped = False
    chunked = True
    send_buffer_limit = 1 << 20

    def __init__(self) -> None:
        self.channel = type("Channel", (), {"transport": Transport()})()


def test_a_message_framed_for_websockets_serves_event_streams_and_the_other_way_round():
    """The relay frames an update once for every socket (Frame.prepared_for): whichever kind
    prepares it, both kinds can send it."""
    from autobahn.twisted.websocket import WebSocketServerFactory

    from live.delivery.daphne import DaphneStream

    text = '{"type":"update","version":7,"players":[{"id":1,"name":"Zoë","score":3,"rank":1}],"removed":[]}'
    by_websocket = WebSocketServerFactory().prepareMessage(text.encode())
    stream = DaphneStream(Request(), encode=events.event_of)
    by_stream = stream.prepare(text)
    assert by_stream.payloadHybi == by_websocket.payloadHybi
    event = b"id: 7\ndata: " + text.encode() + b"\n\n"
    for prepared in (by_websocket, by_stream, by_websocket):
        stream.send(prepared)
    assert stream.request.channel.transport.written == (b"%x\r\n%s\r\n" % (len(event), event)) * 3
