"""Faults injected into real processes: spectators always converge to the database.

Every test runs real Daphne processes, a real redis-server and real `websockets` clients;
staff save through the admin over HTTP with a session cookie and a CSRF token.
"""

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

import pytest

from harness.servers import ROOT, DaphneProcess
from harness.spectator import CONVERGE_WITHIN, converge
from harness.staff import Staff

pytestmark = [pytest.mark.redis, pytest.mark.faults]

OUTAGE = 3.0  # seconds that Redis stays down while staff keep saving


def log_lines(daphne: DaphneProcess, pattern: str) -> int:
    return sum(1 for line in daphne.output().splitlines() if re.search(pattern, line))


# --- Redis stopped, restarted empty ------------------------------------------------------------


@pytest.mark.parametrize("layer", ["pubsub", "core"])
async def test_redis_stopped_while_staff_save_then_spectators_converge(deployment, layer):
    """Saves succeed during the outage, logged once each; spectators go stale, then converge."""
    live = deployment(layer=layer)
    a, b, staff = await live.two_daphnes_and_staff()
    players = live.db.players(live.board_id)
    async with live.watching(4, a, b) as crowd:
        await asyncio.to_thread(live.redis.stop)
        stopped = time.monotonic()
        for spectator in crowd:
            await spectator.wait_until(lambda s: "stale" in s.frames, 5, "told it is stale")
        stale_in = time.monotonic() - stopped
        outage_saves = []
        # Staff keep saving, one player after the other, for an outage of at least 3 s.
        while len(outage_saves) < 3 or time.monotonic() - stopped < OUTAGE:
            player, score = players[len(outage_saves) % len(players)], 100 + len(outage_saves)
            started = time.monotonic()
            assert await asyncio.to_thread(staff.set_score, player, score) == 302
            outage_saves.append(time.monotonic() - started)
            assert live.db.standings(live.board_id)[1][player["id"]] == score

        await asyncio.to_thread(live.restart_redis)
        outage = time.monotonic() - stopped
        converged_in = await converge(crowd, live.db, live.board_id)
        await asyncio.to_thread(staff.set_score, players[0], 7)
        await converge(crowd, live.db, live.board_id)

    assert log_lines(a, r"channel layer unavailable: .* not sent") == len(outage_saves)
    assert log_lines(a, r"^Traceback") == 0 and log_lines(b, r"^Traceback") == 0, a.output()[-3000:]
    assert all(s.connections == 1 for s in crowd), "a spectator had to reconnect"
    print(
        f"\n{layer}: all spectators stale {stale_in:.2f}s after Redis stopped; saves during the "
        f"{outage:.1f}s outage took {min(outage_saves):.2f}-{max(outage_saves):.2f}s "
        f"({len(outage_saves)} saves, as many log lines); "
        f"converged {converged_in:.2f}s after Redis restarted"
    )


@pytest.mark.parametrize("layer", ["pubsub", "core"])
async def test_redis_restarted_empty_then_saves_reach_every_spectator(deployment, layer):
    """A restarted Redis has forgotten every group: relays re-add theirs and resync."""
    live = deployment(layer=layer)
    a, b, staff = await live.two_daphnes_and_staff(staff_on=1)
    players = live.db.players(live.board_id)
    async with live.watching(4, a, b) as crowd:
        await asyncio.to_thread(live.redis.stop)
        await asyncio.to_thread(live.restart_redis)
        restarted = time.monotonic()
        for player, score in zip(players, (201, 202, 203), strict=False):
            assert await asyncio.to_thread(staff.set_score, player, score) == 302
        await converge(
            crowd, live.db, live.board_id, timeout=CONVERGE_WITHIN - (time.monotonic() - restarted)
        )
        converged_in = time.monotonic() - restarted

    assert all(s.connections == 1 for s in crowd), "a spectator had to reconnect"
    print(f"\n{layer}: converged {converged_in:.2f}s after an empty Redis restarted")


@pytest.mark.parametrize("layer", ["pubsub", "core"])
async def test_daphne_killed_spectators_reconnect_to_another_process_and_resync(deployment, layer):
    """SIGKILL sends no close frame: spectators see 1006, reconnect elsewhere and converge.

    With the core layer the dead process stays a group member until the group expiry:
    messages queued for it are never read and expire, harming nobody.
    """
    live = deployment(layer=layer)
    a, b, staff = await live.two_daphnes_and_staff(staff_on=1)
    players = live.db.players(live.board_id)
    async with live.watching(4, a, b) as crowd:
        on_a = [s for s in crowd if s.urls[0].startswith(a.ws_url)]

        a.kill()
        killed = time.monotonic()
        for player, score in zip(players, (301, 302), strict=False):
            assert await asyncio.to_thread(staff.set_score, player, score) == 302
        await converge(crowd, live.db, live.board_id)
        converged_in = time.monotonic() - killed

    assert all(s.close_codes[:1] == [1006] and s.connections == 2 for s in on_a)
    print(f"\n{layer}: converged {converged_in:.2f}s after a Daphne process was killed")


# --- server shutdown ------------------------------------------------------------------------------


async def test_sigterm_closes_spectators_with_1001_and_they_reconnect_to_another_process(deployment):
    """A stopping Daphne says "going away"; its spectators move to the other process."""
    live = deployment(layer="pubsub")
    a, b, staff = await live.two_daphnes_and_staff(staff_on=1)
    players = live.db.players(live.board_id)
    async with live.watching(4, a, b) as crowd:
        on_a = [s for s in crowd if s.urls[0].startswith(a.ws_url)]

        started = time.monotonic()
        exit_code = await asyncio.to_thread(a.stop, signal.SIGTERM)
        stopped_in = time.monotonic() - started
        assert await asyncio.to_thread(staff.set_score, players[0], 401) == 302
        await converge(crowd, live.db, live.board_id)
        converged_in = time.monotonic() - started

    assert exit_code == 0
    assert [s.close_codes[:1] for s in on_a] == [[1001]] * len(on_a)
    assert all(s.connections == 2 and s.urls[1].startswith(b.ws_url) for s in on_a)
    print(f"\nSIGTERM: Daphne exited in {stopped_in:.2f}s; spectators converged in {converged_in:.2f}s")


# --- concurrent writers -------------------------------------------------------------------------

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres_database():
    """The URL of a throwaway PostgreSQL database; skipped without a server (failed in CI)."""
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        reason = f"no PostgreSQL server at {POSTGRES_URL} (set TEST_POSTGRES_URL): {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the PostgreSQL tests")
        pytest.skip(reason)
    name = f"scoreboard_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urllib.parse.urlsplit(POSTGRES_URL)._replace(path=f"/{name}").geturl()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


ACTIONS_PER_STAFF = 15
SIMULATED_CHANGES = 30


def add_points_repeatedly(staff: Staff, plan: list[tuple[str, list[int]]]) -> None:
    for action, player_ids in plan:
        assert staff.add_points(player_ids, action) == 302


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_two_staff_and_simulate_at_once_lose_no_point_and_no_version(deployment, database, request):
    """Every change-set gets exactly one version, every point counts, spectators match."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    database_url = request.getfixturevalue("postgres_database") if database == "postgresql" else None
    live = deployment(layer="pubsub", database_url=database_url)
    a, b = await live.start_two_daphnes()
    staff1, staff2 = await asyncio.gather(
        live.staff(a, "staff1"),
        live.staff(b, "staff2"),
    )
    players = live.db.players(live.board_id)
    ids = [p["id"] for p in players]
    start_version, start_scores = live.db.standings(live.board_id)
    # staff1 adds 1 to everyone; staff2 adds 5 to the first half, takes 1 from the second.
    plan1 = [("award_1", ids)] * ACTIONS_PER_STAFF
    plan2 = [("award_5", ids[:4]) if i % 2 else ("award_minus_1", ids[4:]) for i in range(ACTIONS_PER_STAFF)]
    awarded = {pk: 0 for pk in ids}
    for plan in (plan1, plan2):
        for action, player_ids in plan:
            for pk in player_ids:
                awarded[pk] += {"award_1": 1, "award_5": 5, "award_minus_1": -1}[action]

    layer = RedisPubSubChannelLayer(hosts=[live.redis.url])
    channel = await layer.new_channel()
    await layer.group_add(f"board-{live.board_id}", channel)
    async with live.watching(4, a, b) as crowd:
        simulate = await asyncio.create_subprocess_exec(
            sys.executable, "manage.py", "simulate", "--board", "demo", "--interval", "0.02", "-v", "2",
            "--count", str(SIMULATED_CHANGES), "--seed", "1", cwd=ROOT, env=live.env,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        lines = [
            (await asyncio.wait_for(simulate.stdout.readline(), 30)).decode().strip()
        ]  # simulate is writing
        started = time.monotonic()
        _, rest = await asyncio.gather(
            asyncio.gather(
                asyncio.to_thread(add_points_repeatedly, staff1, plan1),
                asyncio.to_thread(add_points_repeatedly, staff2, plan2),
            ),
            asyncio.wait_for(simulate.communicate(), 60),
        )
        assert simulate.returncode == 0
        lines += rest[0].decode().splitlines()
        writing_took = time.monotonic() - started
        change_sets = 2 * ACTIONS_PER_STAFF + SIMULATED_CHANGES
        versions = []
        try:
            while len(versions) < change_sets:
                message = await asyncio.wait_for(layer.receive(channel), timeout=10)
                versions.append(message["version"])
        finally:
            await layer.flush()
        converged_in = await converge(crowd, live.db, live.board_id)

    assert sorted(versions) == list(range(start_version + 1, start_version + 1 + change_sets))
    end_version, end_scores = live.db.standings(live.board_id)
    assert end_version == start_version + change_sets
    by_name = {p["name"]: p["id"] for p in players}
    simulated = {pk: 0 for pk in ids}
    for line in lines:
        if match := re.fullmatch(r"(.+): (-?\d+) -> (-?\d+)", line):
            simulated[by_name[match[1]]] += int(match[3]) - int(match[2])
    assert sum(1 for line in lines if " -> " in line) == SIMULATED_CHANGES
    assert end_scores == {pk: start_scores[pk] + awarded[pk] + simulated[pk] for pk in ids}
    print(
        f"\n{database}: {change_sets} concurrent change-sets in {writing_took:.2f}s, versions "
        f"{start_version + 1}..{end_version} once each; spectators equal {converged_in:.2f}s later"
    )


STALE_EDITS = 6  # rounds of staff 2: a rename, a Players list save, a board inline save
STALE_FOR = 0.1  # seconds between loading a page and saving it: staff 1 gives points meanwhile


def edit_stale_pages(staff: Staff, given: list[dict], others: list[dict], board_id: int) -> dict:
    """Staff 2's rounds, each page saved a moment after it was loaded; returns what they set."""
    expected: dict[int, dict] = {}
    for i in range(STALE_EDITS):
        renamed, listed, inlined = (
            given[i % len(given)],
            others[i % len(others)],
            others[-1 - i % len(others)],
        )
        path = f"/admin/live/player/{renamed['id']}/change/"
        page = staff.open(path, "player_form")
        time.sleep(STALE_FOR)
        staff.save(path, page.set("name", f"{renamed['name']} #{i}"))
        expected.setdefault(renamed["id"], {})["name"] = f"{renamed['name']} #{i}"

        page = staff.open("/admin/live/player/", "changelist-form")
        time.sleep(STALE_FOR)
        staff.save("/admin/live/player/", page.set(f"{page.row(listed['id'])}-score", 100 + i))
        expected.setdefault(listed["id"], {})["score"] = 100 + i

        path = f"/admin/live/board/{board_id}/change/"
        page = staff.open(path, "board_form")
        time.sleep(STALE_FOR)
        staff.save(path, page.set(f"{page.row(inlined['id'], 'players')}-score", 200 + i))
        expected.setdefault(inlined["id"], {})["score"] = 200 + i
    return expected


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_stale_pages_saved_while_points_are_given_lose_no_point_and_no_edit(
    deployment, database, request
):
    """Staff 1 gives points until staff 2 is done saving pages loaded before those points.

    Staff 2 renames given players in their change form, and sets other players' scores in
    the Players list and the board's inline; each page holds stale scores of the given
    players. Every point stays, every edit lands, and the records say who did what, how.
    """
    database_url = request.getfixturevalue("postgres_database") if database == "postgresql" else None
    live = deployment(layer="pubsub", database_url=database_url)
    a, b = await live.start_two_daphnes()
    staff1, staff2 = await asyncio.gather(
        live.staff(a),
        live.staff(b, "staff2"),
    )
    players = sorted(live.db.players(live.board_id), key=lambda p: p["id"])
    given, others = players[:4], players[4:]
    start_version, start_scores = live.db.standings(live.board_id)
    done = threading.Event()

    def give_points_until_done() -> int:
        actions = 0
        while not done.is_set() or actions < 5:
            staff1.add_points([p["id"] for p in given], "award_1")
            actions += 1
        return actions

    async def edit_then_stop() -> dict:
        try:
            return await asyncio.to_thread(edit_stale_pages, staff2, given, others, live.board_id)
        finally:
            done.set()

    started = time.monotonic()
    actions, expected = await asyncio.gather(asyncio.to_thread(give_points_until_done), edit_then_stop())
    took = time.monotonic() - started

    given_ids = {p["id"] for p in given}
    scores = {pk: start_scores[pk] + (actions if pk in given_ids else 0) for pk in start_scores}
    scores |= {pk: edit["score"] for pk, edit in expected.items() if "score" in edit}
    names = {pk: edit["name"] for pk, edit in expected.items() if "name" in edit}
    rows = {p["id"]: p for p in live.db.players(live.board_id)}
    assert {pk: row["score"] for pk, row in rows.items()} == scores
    assert {pk: rows[pk]["name"] for pk in names} == names
    end_version, _ = live.db.standings(live.board_id)
    assert end_version == start_version + actions + 3 * STALE_EDITS
    attributed = live.db.query(
        "select u.username, c.source, count(*) from live_change c left join auth_user u on u.id = c.user_id"
        " where c.board_id = %s and c.version > %s group by u.username, c.source",
        live.board_id,
        start_version,
    )
    # The records add up too: each player's recorded changes sum to its score's change.
    recorded = live.db.query(
        "select pc.player_id, sum(pc.score_after - pc.score_before) from live_playerchange pc"
        " join live_change c on c.id = pc.change_id where c.board_id = %s and c.version > %s"
        " group by pc.player_id",
        live.board_id,
        start_version,
    )
    assert {pk: int(total) for pk, total in recorded} == {pk: scores[pk] - start_scores[pk] for pk in scores}
    assert sorted(attributed) == [
        ("staff1", "action", actions),
        ("staff2", "form", STALE_EDITS),
        ("staff2", "inline", STALE_EDITS),
        ("staff2", "list", STALE_EDITS),
    ]
    print(
        f"\n{database}: {actions} point actions and {3 * STALE_EDITS} saves of pages "
        f"{STALE_FOR:.1f}s stale in {took:.2f}s; no point and no edit lost"
    )


# --- long-lived connections --------------------------------------------------------------------

GROUP_EXPIRY = 2  # seconds; production keeps channels-redis' 86400


@pytest.mark.parametrize("refresh", [1, 3600], ids=["refreshed", "never-refreshed"])
async def test_spectators_outlive_the_group_expiry_and_the_websocket_timeout(deployment, refresh):
    """After several group expiries a spectator still gets updates; never silently dropped.

    Refreshed (LIVE_GROUP_REFRESH < LIVE_GROUP_EXPIRY), memberships never lapse and updates
    flow directly. Never refreshed, the relay's heartbeat notices the lapse and resyncs.
    Daphne B closes sockets after --websocket_timeout 3 (code 1000): those reconnect.
    """
    live = deployment(layer="core", LIVE_GROUP_EXPIRY=str(GROUP_EXPIRY), LIVE_GROUP_REFRESH=str(refresh))
    a, b = await asyncio.gather(
        asyncio.to_thread(live.start_daphne), asyncio.to_thread(live.start_daphne, "--websocket_timeout", "3")
    )
    staff = await live.staff(a)
    players = live.db.players(live.board_id)
    async with live.watching(4, a, b) as crowd:
        await asyncio.sleep(3 * GROUP_EXPIRY)  # the fault is age itself: let memberships expire
        for score in (501, 502):
            assert await asyncio.to_thread(staff.set_score, players[0], score) == 302
            converged_in = await converge(crowd, live.db, live.board_id)

    on_a = [s for s in crowd if s.urls[0].startswith(a.ws_url)]
    on_b = [s for s in crowd if s.urls[0].startswith(b.ws_url)]
    assert all(s.close_codes and s.close_codes[0] == 1000 for s in on_b), "--websocket_timeout had no effect"
    assert all(s.connections == 1 for s in on_a)
    lapses = log_lines(a, "relay lost the channel layer")
    if refresh < GROUP_EXPIRY:
        assert lapses == 0 and all("stale" not in s.frames for s in on_a)
    else:
        assert lapses >= 1, "the heartbeat did not notice the lapsed membership"
    print(f"\nrefresh={refresh}s: {lapses} lapses noticed; converged {converged_in:.2f}s after the save")
