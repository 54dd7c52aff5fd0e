"""Hostile input at the transport level, against a real Daphne with the production options."""

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request

import pytest
import websockets
from websockets.asyncio.client import connect

from harness.servers import DaphneProcess, makefile_options, manage, server_env, sqlite_database, unit_options
from live.delivery.protocol import MAX_CLIENT_MESSAGE_BYTES, MAX_CLIENT_MESSAGES_PER_SECOND
from tests.conftest import next_frame

TIMEOUT = 10


def option(name: str) -> int:
    options = unit_options()
    return int(options[options.index(name) + 1])


def test_make_run_uses_the_limits_of_the_deployed_units():
    assert unit_options() == makefile_options()
    assert option("--websocket-max-message-size") == MAX_CLIENT_MESSAGE_BYTES
    assert option("--websocket-max-frame-size") == MAX_CLIENT_MESSAGE_BYTES


@pytest.fixture(scope="module")
def start_server(tmp_path_factory):
    """Returns start(options) -> a Daphne on a migrated database with the demo board."""
    tmp_path = tmp_path_factory.mktemp("transport")
    env = server_env(database_url=sqlite_database(tmp_path))
    manage("seed_demo", env=env)
    return lambda options: DaphneProcess(env=env, tmp_path=tmp_path, options=tuple(options)).start()


@pytest.fixture(scope="module")
def server(start_server):
    """One Daphne with exactly the options of the systemd unit."""
    process = start_server(unit_options())
    yield process
    process.stop()


def spectator(server: DaphneProcess, *, origin: str | None = None):
    url = f"{server.ws_url}/ws/boards/demo/"
    return connect(url, origin=origin or server.http_url, open_timeout=TIMEOUT, max_size=None)


async def close_code(ws) -> int:
    """Read until the server closes; the code it sent."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    return closed.value.rcvd.code


async def still_serving(server: DaphneProcess, neighbour) -> None:
    """The process is alive, a connected neighbour is answered, and a new spectator gets in."""
    assert server.running
    await neighbour.send(json.dumps({"type": "ping"}))
    assert await next_frame(neighbour, TIMEOUT) == {"type": "pong"}
    async with spectator(server) as newcomer:
        assert json.loads(await asyncio.wait_for(newcomer.recv(), TIMEOUT))["type"] == "snapshot"


HOSTILE_FRAMES = {
    "invalid UTF-8 in a text frame": (lambda ws: ws.send(b"\xff\xfe{}", text=True), 1007),
    "a truncated UTF-8 sequence": (lambda ws: ws.send(b'{"type": "ping\xe2\x82"}', text=True), 1007),
    "a binary frame": (lambda ws: ws.send(b"\x00\x01"), 1003),
    "one frame over the size limit": (lambda ws: ws.send("x" * (MAX_CLIENT_MESSAGE_BYTES + 1)), 1009),
    "a 1 MiB frame": (lambda ws: ws.send("x" * 2**20), 1009),
    "fragments adding up to over the limit": (
        lambda ws: ws.send(["x" * (MAX_CLIENT_MESSAGE_BYTES // 2 + 1)] * 2),
        1009,
    ),
}


@pytest.mark.parametrize("frame", HOSTILE_FRAMES)
async def test_a_hostile_frame_is_closed_with_its_code_and_the_server_keeps_serving(server, frame):
    send, code = HOSTILE_FRAMES[frame]
    async with spectator(server) as neighbour, spectator(server) as attacker:
        await asyncio.wait_for(neighbour.recv(), TIMEOUT)
        await asyncio.wait_for(attacker.recv(), TIMEOUT)
        await send(attacker)
        assert await close_code(attacker) == code
        await still_serving(server, neighbour)


async def test_a_frame_of_exactly_the_limit_is_answered(server):
    ping = json.dumps({"type": "ping", "pad": ""})
    padded = ping.replace('""', '"' + "x" * (MAX_CLIENT_MESSAGE_BYTES - len(ping)) + '"')
    assert len(padded.encode()) == MAX_CLIENT_MESSAGE_BYTES
    async with spectator(server) as ws:
        await asyncio.wait_for(ws.recv(), TIMEOUT)
        await ws.send(padded)
        assert await next_frame(ws, TIMEOUT) == {"type": "pong"}


async def test_a_flooding_client_is_closed_with_1008(server):
    async with spectator(server) as neighbour, spectator(server) as flooder:
        await asyncio.wait_for(neighbour.recv(), TIMEOUT)
        await asyncio.wait_for(flooder.recv(), TIMEOUT)
        for _ in range(5 * MAX_CLIENT_MESSAGES_PER_SECOND):
            await flooder.send('{"type": "ping"}')
        assert await close_code(flooder) == 1008
        await still_serving(server, neighbour)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost.evil.example"])
async def test_a_foreign_origin_is_refused_with_403_at_the_handshake(server, origin):
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with spectator(server, origin=origin):
            pass
    assert refused.value.response.status_code == 403


def test_a_host_outside_allowed_hosts_gets_400(server):
    request = urllib.request.Request(f"{server.http_url}/boards/demo/", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=TIMEOUT)
    assert refused.value.code == 400


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One unmasked server frame: (opcode, payload)."""
    header = recv_exactly(sock, 2)
    length = header[1] & 0x7F
    if length == 126:
        length = int.from_bytes(recv_exactly(sock, 2), "big")
    elif length == 127:
        length = int.from_bytes(recv_exactly(sock, 8), "big")
    return header[0] & 0x0F, recv_exactly(sock, length)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("closed by the server")
        data += chunk
    return data


def raw_spectator(server: DaphneProcess) -> socket.socket:
    """A socket past the WebSocket handshake, for frames no client library would send."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall(
        f"GET /ws/boards/demo/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Origin: {server.http_url}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101")
    return sock


def test_an_over_size_frame_is_refused_at_its_header_before_its_payload_is_read(server):
    """A frame announcing 1 GiB gets 1009 while only 16 bytes of it were sent: nothing is buffered."""
    with raw_spectator(server) as sock:
        assert read_frame(sock)[0] == 0x1  # the snapshot
        mask = b"\x01\x02\x03\x04"
        sock.sendall(bytes([0x81, 0x80 | 127]) + (2**30).to_bytes(8, "big") + mask + b"x" * 16)
        opcode, payload = read_frame(sock)
    assert opcode == 0x8
    assert int.from_bytes(payload[:2], "big") == 1009


def test_a_peer_that_never_answers_pings_is_dropped(start_server):
    """With --ping-interval 1 --ping-timeout 1 a dead peer goes in seconds (production: 15 + 10)."""
    options = unit_options()
    options[options.index("--ping-interval") + 1] = "1"
    options[options.index("--ping-timeout") + 1] = "1"
    server = start_server(options)
    try:
        with raw_spectator(server) as sock:
            opcodes = []
            started = time.monotonic()
            with pytest.raises(OSError):  # EOF or reset: the server dropped us
                while True:
                    opcodes.append(read_frame(sock)[0])
            dropped_after = time.monotonic() - started
    finally:
        server.stop()
    assert opcodes[0] == 0x1 and 0x9 in opcodes, opcodes  # the snapshot, then unanswered pings
    assert dropped_after < TIMEOUT
    print(f"dead peer dropped after {dropped_after:.1f} s (ping interval 1 s, timeout 1 s)")
