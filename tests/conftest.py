"""Shared fixtures: boards and players, spectators, and a real redis-server."""

import asyncio
import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from io import StringIO
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.db import transaction

from harness.admin_session import AdminSession
from harness.deployment import Deployment
from harness.servers import DaphneProcess, RedisServer
from harness.staff import prepare_database
from live.models import Board, Player
from scoreboard.asgi import application
from scoreboard.settings import redis_channel_layer

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


# What a browser on the site's own page sends with a WebSocket handshake (Django's test host).
SPECTATOR_HEADERS = [(b"host", b"testserver"), (b"origin", b"http://testserver")]


@asynccontextmanager
async def spectate(slug: str, *, path: str | None = None):
    """A connected spectator WebSocket (through the full ASGI stack), always disconnected."""
    communicator = WebsocketCommunicator(
        application, path or f"/ws/boards/{slug}/", headers=SPECTATOR_HEADERS
    )
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected, "the WebSocket handshake was refused"
    try:
        yield communicator
    finally:
        await communicator.disconnect()


async def receive(communicator: WebsocketCommunicator) -> dict:
    return await communicator.receive_json_from(timeout=TIMEOUT)


async def next_frame(ws, timeout: float = TIMEOUT) -> dict:
    """The next frame of a `websockets` client that is not a `watching` count: counts come
    whenever spectators come and go, and a client skips frames it does not use (rule 6 of
    docs/PROTOCOL.md)."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame.get("type") != "watching":
            return frame


async def expect_close(communicator: WebsocketCommunicator, code: int) -> None:
    message = await communicator.receive_output(timeout=TIMEOUT)
    assert message == {"type": "websocket.close", "code": code}


@pytest.fixture
def lose_updates(monkeypatch):
    """The channel layer swallows every board update (as pubsub does while Redis is away)."""
    layer = get_channel_layer()
    group_send = layer.group_send

    async def swallow(group, message):
        if message["type"] != "board.update":
            await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", swallow)


@pytest.fixture
async def group_listener():
    """Returns listen(board) -> an async function that returns the board's next group message."""
    layer = get_channel_layer()

    async def listen(board: Board):
        channel = await layer.new_channel()
        await layer.group_add(board.group_name, channel)
        return lambda: asyncio.wait_for(layer.receive(channel), TIMEOUT)

    return listen


class FakeClock:
    """A clock that a test moves by hand (`clock.now += 1`)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def in_thread(func, *args, **kwargs):
    """Run ORM code from an async test, in a thread, as Channels does."""
    return database_sync_to_async(func)(*args, **kwargs)


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
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
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


@pytest.fixture
def start_daphne(tmp_path) -> Iterator:
    """Returns start(env, port=None) -> a running DaphneProcess; all are stopped afterwards."""
    started: list[DaphneProcess] = []

    def start(env: dict, port: int | None = None) -> DaphneProcess:
        server = DaphneProcess(env=env, tmp_path=tmp_path, port=port)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
    for log in sorted({server.log_path for server in started}):
        print(f"--- {log.name}\n{log.read_text(errors='replace')}")  # shown when a test fails


@pytest.fixture(scope="session")
def prepared_sqlite(tmp_path_factory) -> Path:
    """A prepared SQLite database, copied by each test (a migration costs seconds)."""
    path = tmp_path_factory.mktemp("template") / "db.sqlite3"
    prepare_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def deployment(tmp_path, prepared_sqlite):
    """Returns start(layer=..., database_url=None, **env) -> a Deployment, stopped after the test."""
    started = []

    def start(*, layer: str = "pubsub", database_url: str | None = None, **env: str) -> Deployment:
        if database_url is None:
            path = tmp_path / "db.sqlite3"
            with sqlite3.connect(prepared_sqlite) as source, sqlite3.connect(path) as copy:
                source.backup(copy)
            database_url = f"sqlite:///{path}"
        else:
            prepare_database(database_url)
        started.append(Deployment(tmp_path, layer=layer, database_url=database_url, **env))
        return started[-1]

    yield start
    for deployment in started:
        deployment.stop()


@pytest.fixture
def demo_board(db) -> Board:
    """The demo board of `manage.py seed_demo`, with its eight players."""
    call_command("seed_demo", stdout=StringIO())
    return Board.objects.get(slug="demo")


@pytest.fixture
def staff1(db) -> AdminSession:
    return AdminSession("staff1")


@pytest.fixture
def staff2(db) -> AdminSession:
    return AdminSession("staff2")
