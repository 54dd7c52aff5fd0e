"""Server-Sent Events through a real Daphne: streamed as they happen, resumed by Last-Event-ID,
and a reader that stops reading is dropped instead of growing the server's memory."""

import http.client
import json
import socket
import threading
import time
import urllib.request

import pytest

from harness.servers import DaphneProcess, manage, server_env, sqlite_database

pytestmark = pytest.mark.e2e

TIMEOUT = 20
WIDE_BOARD = (
    "from live.models import Board, Player; b = Board.objects.create(name='Wide', slug='wide'); "
    "Player.objects.bulk_create(Player(board=b, name=f'player {i:03} ' + 60 * 'x', score=i) "
    "for i in range(500))"
)
# Every update of the wide board changes all 500 players: about 45 KB per event. The server
# process hears of them by its database check (the in-memory layer): about 25 at a time, 1 MB.
AWARD_ALL = (
    "import time; from live.models import Player; from live.scores.services import award_points\n"
    "ids = list(Player.objects.filter(board__slug='wide').values_list('pk', flat=True))\n"
    "for _ in range({count}): award_points(player_ids=ids, points=1); time.sleep(0.02)"
)


class Stream:
    """An SSE response read line by line (http.client decodes the chunked body)."""

    def __init__(self, server: DaphneProcess, path: str, headers: dict | None = None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
        self.connection.request("GET", path, headers=headers or {})
        self.response = self.connection.getresponse()

    def events(self):
        """(id or None, frame) for each event, as they arrive."""
        fields = {}
        while line := self.response.readline():
            line = line.rstrip(b"\n").decode()
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
            elif "data" in fields:
                yield (int(fields["id"]) if "id" in fields else None), json.loads(fields["data"])
                fields = {}

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def server(tmp_path, start_daphne) -> DaphneProcess:
    env = server_env(database_url=sqlite_database(tmp_path), LIVE_SEND_BUFFER_LIMIT=str(2 * 2**20))
    manage("seed_demo", env=env)
    manage("shell", "-v", "0", "-c", WIDE_BOARD, env=env)
    return start_daphne(env)


def set_score(server: DaphneProcess, name: str, score: int) -> None:
    code = (
        f"from live.models import Player; p = Player.objects.get(name={name!r}); p.score = {score}; p.save()"
    )
    manage("shell", "-v", "0", "-c", code, env=server.env)


def test_events_stream_as_they_happen_and_a_reconnect_resumes_from_its_last_id(server):
    stream = Stream(server, "/events/boards/demo/")
    assert stream.response.status == 200
    assert stream.response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    assert stream.response.getheader("Transfer-Encoding") == "chunked"
    events = stream.events()
    first_id, snapshot = next(events)
    assert snapshot["type"] == "snapshot" and first_id == snapshot["version"]
    set_score(server, "Ken", 77)
    update_id, update = next(events)
    assert (update_id, update["type"]) == (first_id + 1, "update")
    stream.close()
    # Written straight to the connection, as the WebSockets' updates are: no ASGI send.
    assert frames_sent(server) == {"direct": 1.0, "asgi": 0.0}

    set_score(server, "Ada", 1)  # missed while away
    resumed = Stream(server, "/events/boards/demo/", {"Last-Event-ID": str(update_id)})
    missed_id, missed = next(resumed.events())
    resumed.close()
    assert (missed_id, missed["type"]) == (update_id + 1, "update")
    assert [p["name"] for p in missed["players"]] == ["Ada"]


def frames_sent(server: DaphneProcess) -> dict[str, float]:
    """The server's count of update frames written, by path (its /metrics)."""
    sent = {"direct": 0.0, "asgi": 0.0}
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=TIMEOUT) as response:
        for line in response.read().decode().splitlines():
            for path in sent:
                if line.startswith(f'scoreboard_frames_sent_total{{kind="update",path="{path}"}}'):
                    sent[path] = float(line.rpartition(" ")[2])
    return sent


def stalled_reader(server: DaphneProcess) -> socket.socket:
    """Asks for the wide board's stream with a 4 KiB receive buffer, then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /events/boards/wide/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock


def test_a_stream_that_stops_reading_is_dropped_and_the_others_get_everything(server):
    changes = 200
    healthy = Stream(server, "/events/boards/wide/")
    received = []

    def read_all():
        for _, frame in healthy.events():
            received.append(frame["type"])
            if received.count("update") == changes:
                return

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    stalled = stalled_reader(server)
    time.sleep(1)  # both streams are spectators now
    manage("shell", "-v", "0", "-c", AWARD_ALL.format(count=changes), env=server.env, timeout=120)
    reader.join(TIMEOUT)
    healthy.close()
    assert received.count("update") == changes, "a healthy reader gets every update"

    # The server dropped the stalled one: reading what it left ends (EOF or reset) instead of waiting.
    stalled.settimeout(TIMEOUT)
    left, deadline = 0, time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline and (chunk := stalled.recv(1 << 20)):
            left += len(chunk)
    except ConnectionResetError:
        pass
    finally:
        stalled.close()
    assert "closing an event stream that stopped reading" in server.output()
    assert left < changes * 45_000 / 2, f"the server kept {left:,} bytes for a reader that stopped"
