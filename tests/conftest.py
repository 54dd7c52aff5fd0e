"""Shared fixtures: boards and players, spectators, and a real redis-server."""

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import transaction

from live.models import Board, Player
from scoreboard.asgi import application
from scoreboard.settings import redis_channel_layer

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 5  # seconds for any single awaited event


@pytest.fixture
def board(db) -> Board:
    return Board.objects.create(name="Finals", slug="finals")


@pytest.fixture
def players(board) -> list[Player]:
    """Four players, added in one transaction: the board is then at version 2."""
    with transaction.atomic():
        return [
            Player.objects.create(board=board, name=name, score=score)
            for name, score in [("Ada", 30), ("Bob", 20), ("Cy", 20), ("Dee", 10)]
        ]


@asynccontextmanager
async def spectate(slug: str, *, origin: bytes = b"http://localhost", path: str | None = None):
    """A connected spectator WebSocket (through the full ASGI stack), always disconnected."""
    communicator = WebsocketCommunicator(
        application, path or f"/ws/boards/{slug}/", headers=[(b"origin", origin)]
    )
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected, "the WebSocket handshake was refused"
    try:
        yield communicator
    finally:
        await communicator.disconnect()


async def receive(communicator: WebsocketCommunicator) -> dict:
    return await communicator.receive_json_from(timeout=TIMEOUT)


@pytest.fixture
async def group_listener():
    """Returns listen(board) -> an async function that returns the board's next group message."""
    layer = get_channel_layer()

    async def listen(board: Board):
        channel = await layer.new_channel()
        await layer.group_add(board.group_name, channel)
        return lambda: asyncio.wait_for(layer.receive(channel), TIMEOUT)

    return listen


def in_thread(func, *args, **kwargs):
    """Run ORM code from an async test, in a thread, as Channels does."""
    return database_sync_to_async(func)(*args, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 10.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # polling a port that has no event to await
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


class RedisServer:
    """A private redis-server on a free port, in a temporary directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """REDIS_URL if set, else a private redis-server; skipped without one (failed in CI)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    if shutil.which("redis-server") is None:
        reason = "redis-server is not on PATH and REDIS_URL is not set"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the Redis-backed tests")
        pytest.skip(reason)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(params=["pubsub", "core"])
def redis_layer(request, redis_url, settings) -> str:
    """Switch the channel layer to channels-redis (each kind in turn), isolated by prefix."""
    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(
            redis_url=redis_url, kind=request.param, group_expiry=60, prefix=f"t{uuid.uuid4().hex[:8]}"
        )
    }
    return request.param
