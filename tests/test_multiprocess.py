"""Several writer processes: versions stay gap-free and updates match the database."""

import asyncio
import json
import sqlite3
import subprocess
import sys

import pytest
from channels_redis.pubsub import RedisPubSubChannelLayer

from harness.servers import ROOT, manage, server_env, sqlite_database

pytestmark = pytest.mark.redis

WRITES_PER_PROCESS = 40


async def test_two_concurrent_writers_number_every_change_set_once(tmp_path, redis_url):
    """Each update V carries the committed state as of V: replaying them gives the database."""
    database_url = sqlite_database(tmp_path)
    env = server_env(database_url=database_url, redis_url=redis_url, layer="pubsub")
    manage("seed_demo", env=env)
    db = sqlite3.connect(tmp_path / "db.sqlite3")
    board_id, start_version = db.execute("select id, version from live_board where slug='demo'").fetchone()

    layer = RedisPubSubChannelLayer(hosts=[redis_url])
    channel = await layer.new_channel()
    await layer.group_add(f"board-{board_id}", channel)
    snapshot = json.loads(manage("shell", "-v", "0", "-c", SNAPSHOT, env=env).stdout)
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "manage.py", "simulate", "--board", "demo", "--interval", "0",
            "--count", str(WRITES_PER_PROCESS), "--seed", str(seed), cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL,
        )
        for seed in (1, 2)
    ]  # fmt: skip
    updates = {}
    try:
        while len(updates) < 2 * WRITES_PER_PROCESS:
            message = await asyncio.wait_for(layer.receive(channel), timeout=30)
            update = json.loads(message["text"])
            assert update["version"] not in updates, "a version was sent twice"
            updates[update["version"]] = update
    finally:
        assert [await asyncio.wait_for(w.wait(), 60) for w in writers] == [0, 0]
        await layer.flush()

    assert snapshot["version"] == start_version
    assert sorted(updates) == list(range(start_version + 1, start_version + 1 + 2 * WRITES_PER_PROCESS))
    standings = {p["id"]: p["score"] for p in snapshot["players"]}
    for version in sorted(updates):
        standings.update({p["id"]: p["score"] for p in updates[version]["players"]})
    in_database = dict(db.execute("select id, score from live_player where board_id=?", (board_id,)))
    assert standings == in_database
    assert db.execute("select version from live_board where id=?", (board_id,)).fetchone()[0] == max(updates)


SNAPSHOT = (
    "import json; from live.models import Board; from live.scores.selectors import board_snapshot; "
    "print(json.dumps(board_snapshot(board_id=Board.objects.get(slug='demo').pk)))"
)
