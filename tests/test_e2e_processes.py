"""End to end without a browser: many spectator WebSockets while another process edits."""

import asyncio
import json
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest
from websockets.asyncio.client import ClientConnection, connect

from harness.servers import ROOT, manage, server_env, sqlite_database

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

SPECTATORS = 200
EDITS = 100
TIMEOUT = 30  # seconds for connecting everyone, for the edits, and for the last update to arrive


class Spectator:
    """A WebSocket client that follows the protocol's rule (docs/PROTOCOL.md, "Keeping in sync")."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.version: int | None = None
        self.snapshot_version: int | None = None  # of the first snapshot
        self.players: dict[int, tuple[str, int]] = {}
        self.awaiting_snapshot = True
        self.versions_seen: list[int] = []
        self.resyncs = 0
        self.synced = asyncio.Event()  # set on the first snapshot
        self.first_update = asyncio.Event()
        self.target: int | None = None
        self.reached = asyncio.Event()  # set once at `target`

    async def follow(self) -> None:
        async for text in self.ws:
            await self.handle(json.loads(text))
            if self.target is not None and self.version >= self.target:
                self.reached.set()

    async def handle(self, message: dict) -> None:
        if message["type"] == "snapshot":
            self.players = {p["id"]: (p["name"], p["score"]) for p in message["players"]}
            self.version = message["version"]
            self.awaiting_snapshot = False
            if self.snapshot_version is None:
                self.snapshot_version = self.version
            self.synced.set()
        elif message["type"] == "update":
            self.versions_seen.append(message["version"])
            self.first_update.set()
            if self.awaiting_snapshot or message["version"] <= self.version:
                return
            if message["version"] != self.version + 1:
                self.resyncs += 1
                self.awaiting_snapshot = True
                await self.ws.send(json.dumps({"type": "resync"}))
                return
            self.players.update({p["id"]: (p["name"], p["score"]) for p in message["players"]})
            for player_id in message["removed"]:
                self.players.pop(player_id, None)
            self.version = message["version"]

    def expect(self, version: int) -> None:
        self.target = version
        if self.version is not None and self.version >= version:
            self.reached.set()


@pytest.mark.parametrize("layer", ["pubsub", "core"])
async def test_200_spectators_end_equal_to_the_database_after_100_edits(
    layer, tmp_path, redis_url, start_daphne
):
    """Half of the spectators join before the edits, half while they happen."""
    database_url = sqlite_database(tmp_path)
    env = server_env(database_url=database_url, redis_url=redis_url, layer=layer)
    manage("seed_demo", env=env)
    # Two server processes, half of the spectators on each: updates cross Redis to both.
    servers = [start_daphne(env), start_daphne(env)]
    db_path = tmp_path / "db.sqlite3"
    start_version = board_version(db_path)

    spectators: list[Spectator] = []
    followers: list[asyncio.Task] = []
    connecting = asyncio.Semaphore(40)  # stay within Daphne's listen backlog (50)

    async def join(number: int) -> None:
        server = servers[number % len(servers)]
        async with connecting:
            url = f"{server.ws_url}/ws/boards/demo/"
            # From 10 loopback addresses: one address may hold 50 connections per process.
            address = (f"127.0.0.{10 + number % 10}", 0)
            ws = await connect(
                url, origin=server.http_url, open_timeout=TIMEOUT, close_timeout=5, local_addr=address
            )
            spectator = Spectator(ws)
            spectators.append(spectator)
            followers.append(asyncio.create_task(spectator.follow()))
            await spectator.synced.wait()

    async def join_many(numbers: range) -> None:
        await asyncio.wait_for(asyncio.gather(*(join(n) for n in numbers)), TIMEOUT)

    writer = None
    try:
        await join_many(range(SPECTATORS // 2))
        assert {s.snapshot_version for s in spectators} == {start_version}

        writer = await asyncio.create_subprocess_exec(
            sys.executable, "manage.py", "simulate", "--board", "demo", "--interval", "0.01",
            "--count", str(EDITS), "--seed", "3", cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.wait_for(spectators[0].first_update.wait(), TIMEOUT)
        await join_many(range(SPECTATORS // 2, SPECTATORS))
        assert await asyncio.wait_for(writer.wait(), TIMEOUT) == 0

        final_version = board_version(db_path)
        for spectator in spectators:
            spectator.expect(final_version)
        try:
            await asyncio.wait_for(asyncio.gather(*(s.reached.wait() for s in spectators)), TIMEOUT)
        except TimeoutError:
            behind = sorted(s.version for s in spectators if s.version < final_version)
            pytest.fail(f"{len(behind)} spectators stopped short of version {final_version}: {behind[:10]}")
    finally:
        if writer is not None and writer.returncode is None:
            writer.kill()
            await writer.wait()
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        await asyncio.gather(*(s.ws.close() for s in spectators), return_exceptions=True)

    assert final_version == start_version + EDITS, "each edit is one change-set"
    joined_during_edits = [s for s in spectators[SPECTATORS // 2 :] if start_version < s.snapshot_version]
    assert joined_during_edits, "no spectator joined while the edits were happening"
    standings = {
        player_id: (name, score)
        for player_id, name, score in query(
            db_path,
            "SELECT p.id, p.name, p.score FROM live_player p JOIN live_board b ON b.id = p.board_id"
            " WHERE b.slug = 'demo'",
        )
    }
    for spectator in spectators:
        assert spectator.players == standings
        assert spectator.resyncs == 0, "nothing may be lost on the way"
        # Every version after its snapshot, once each, in order.
        assert spectator.versions_seen == list(range(spectator.snapshot_version + 1, final_version + 1))


def board_version(path) -> int:
    return query(path, "SELECT version FROM live_board WHERE slug = 'demo'")[0][0]


def query(path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()
