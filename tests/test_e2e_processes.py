"""End to end without a browser: many spectator WebSockets while another process edits."""

import asyncio
import subprocess
import sys

import pytest

from harness.database import Database
from harness.servers import ROOT, manage, server_env, sqlite_database
from harness.spectator import join, spectators

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

SPECTATORS = 200
EDITS = 100
TIMEOUT = 30  # seconds for connecting everyone, for the edits, and for the last update to arrive


@pytest.mark.parametrize("layer", ["pubsub", "core"])
async def test_200_spectators_end_equal_to_the_database_after_100_edits(
    layer, tmp_path, redis_url, start_daphne
):
    """Half of the spectators join before the edits, half while they happen."""
    database_url = sqlite_database(tmp_path)
    # All spectators come from 127.0.0.1: lift the per-address connection limit (50) here.
    env = server_env(
        database_url=database_url, redis_url=redis_url, layer=layer, LIVE_CONNECTIONS_PER_ADDRESS="0"
    )
    manage("seed_demo", env=env)
    db = Database(database_url)
    board_id, start_version = db.board()
    # Two server processes, half of the spectators on each: updates cross Redis to both.
    urls = [start_daphne(env).ws_url, start_daphne(env).ws_url]

    async with spectators(urls, SPECTATORS // 2) as crowd:
        for spectator in crowd:
            await spectator.wait_until(lambda s: s.version is not None, TIMEOUT, "connected")
        assert {s.first_snapshot for s in crowd} == {start_version}
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "manage.py", "simulate", "--board", "demo", "--interval", "0.01",
            "--count", str(EDITS), "--seed", "3", cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await crowd[0].wait_until(lambda s: s.versions_seen, TIMEOUT, "given a first update")
            await join(crowd, urls, SPECTATORS // 2)
            assert await asyncio.wait_for(writer.wait(), TIMEOUT) == 0
        finally:
            if writer.returncode is None:
                writer.kill()
                await writer.wait()
        final_version, scores = db.standings(board_id)
        for spectator in crowd:
            await spectator.wait_until(
                lambda s: s.version == final_version and s.scores == scores, TIMEOUT, f"at {final_version}"
            )

    assert final_version == start_version + EDITS, "each edit is one change-set"
    joined_during_edits = [s for s in crowd[SPECTATORS // 2 :] if start_version < s.first_snapshot]
    assert joined_during_edits, "no spectator joined while the edits were happening"
    names = {player["id"]: player["name"] for player in db.players(board_id)}
    for spectator in crowd:
        assert spectator.names == names
        assert "gap" not in spectator.frames, "nothing may be lost on the way"
        assert spectator.connections == 1
        # Every version after its snapshot, once each, in order.
        assert spectator.versions_seen == list(range(spectator.first_snapshot + 1, final_version + 1))
