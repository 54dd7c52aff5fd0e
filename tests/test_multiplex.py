"""One WebSocket for many boards (/ws/), against real Daphne processes and Redis (issue 11).

Staff edit in the admin of one process (real HTTP); spectators watch over /ws/ on another.
"""

import asyncio
import json
import sqlite3
import statistics
import time
from contextlib import asynccontextmanager, closing
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from harness.deployment import Deployment
from harness.servers import DaphneProcess, manage, server_env
from harness.spectator import Multiplexed
from harness.staff import Staff, prepare_database
from live.delivery.protocol import MAX_SUBSCRIPTIONS

pytestmark = pytest.mark.redis

TIMEOUT = 10
CAP_BOARDS = [f"b{n:02d}" for n in range(1, MAX_SUBSCRIPTIONS + 2)]  # one more than the cap
CREATE_BOARDS = f"""
from live.models import Board, Player
for slug, public in [("second", True), ("third", True), ("hidden", False)]:
    board = Board.objects.create(name=slug.title(), slug=slug, is_public=public)
    Player.objects.create(board=board, name="Ann", score=1)
    Player.objects.create(board=board, name="Bo", score=2)
for slug in {CAP_BOARDS!r}:
    Board.objects.create(name=slug, slug=slug)
"""


@pytest.fixture(scope="module")
def template_database(tmp_path_factory) -> Path:
    """The demo board, staff1 and staff2, `second` and `third`, a private `hidden`, and b01..b21."""
    path = tmp_path_factory.mktemp("multiplex") / "db.sqlite3"
    prepare_database(f"sqlite:///{path}")
    manage("shell", "-c", CREATE_BOARDS, env=server_env(database_url=f"sqlite:///{path}"))
    return path


@pytest.fixture
def site(tmp_path, template_database):
    """Redis and a copy of the database; start Daphne processes with `site.start_daphne()`."""
    path = tmp_path / "db.sqlite3"
    with closing(sqlite3.connect(template_database)) as source, closing(sqlite3.connect(path)) as copy:
        source.backup(copy)
    deployment = Deployment(tmp_path, layer="pubsub", database_url=f"sqlite:///{path}")
    yield deployment
    deployment.stop()
    for daphne in deployment.daphnes:
        print(f"--- {daphne.log_path.name}\n{daphne.output()[-3000:]}")  # shown when a test fails


class Socket:
    """A raw /ws/ (or per-board) connection: frames sent as given, answers read one by one."""

    def __init__(self, ws) -> None:
        self.ws = ws

    async def send(self, message) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def text(self) -> str:
        return await asyncio.wait_for(self.ws.recv(), TIMEOUT)

    async def frame(self) -> dict:
        return json.loads(await self.text())

    async def frame_of(self, slug: str, kind: str) -> dict:
        """The next frame of this slug and type; any other frame before it is skipped."""
        while True:
            frame = await self.frame()
            if frame.get("slug") == slug and frame["type"] == kind:
                return frame

    async def pong(self) -> None:
        """A ping answered: the connection is open and still reads."""
        await self.send({"type": "ping"})
        while (await self.frame())["type"] != "pong":
            pass


@asynccontextmanager
async def opened(server: DaphneProcess, path: str = "/ws/"):
    async with connect(f"{server.ws_url}{path}", origin=server.http_url, open_timeout=TIMEOUT) as ws:
        yield Socket(ws)


async def as_staff(site: Deployment, daphne: DaphneProcess) -> Staff:
    return await site.staff(daphne)


def player(site: Deployment, slug: str, name: str) -> dict:
    board_id, _ = site.db.board(slug)
    return next(p for p in site.db.players(board_id) if p["name"] == name)


async def converged(spectator: Multiplexed, site: Deployment, *slugs: str) -> None:
    """Wait until each board shows what the database committed."""
    for slug in slugs:
        version, scores = await asyncio.to_thread(site.db.standings, site.db.board(slug)[0])
        await spectator.wait_until(
            lambda s, slug=slug, version=version, scores=scores: (
                s.boards[slug].version == version and s.boards[slug].scores == scores
            ),
            TIMEOUT,
            f"showing {slug} at version {version}",
        )


async def change_board(staff: Staff, site: Deployment, board: str, **fields) -> None:
    """Save the board's admin form with these fields changed (False clears a checkbox)."""
    path = f"/admin/live/board/{site.db.board(board)[0]}/change/"
    form = await asyncio.to_thread(staff.open, path, "board_form")
    for name, value in fields.items():
        form.set(name, value)
    await asyncio.to_thread(staff.save, path, form)


# --- many boards, one connection --------------------------------------------------------


async def test_one_connection_follows_three_boards_edited_in_another_process(site):
    a, b = await site.start_two_daphnes()
    staff = await as_staff(site, a)
    spectator = Multiplexed([b.ws_url], ("demo", "second", "third")).start()
    try:
        await converged(spectator, site, "demo", "second", "third")
        for slug, name, score in [("demo", "Ken", 77), ("second", "Ann", 50), ("third", "Bo", 9)]:
            await asyncio.to_thread(staff.set_score, player(site, slug, name), score)
        await converged(spectator, site, "demo", "second", "third")
        assert spectator.connections == 1
        assert all(board.versions_seen for board in spectator.boards.values()), "live updates, not snapshots"

        spectator.unsubscribe("second")
        await spectator.wait_until(lambda s: s.ended.get("second") == "client", TIMEOUT, "unsubscribed")
        heard = len(spectator.frames)
        await asyncio.to_thread(staff.set_score, player(site, "second", "Bo"), 60)
        await asyncio.to_thread(staff.set_score, player(site, "demo", "Ken"), 78)
        await converged(spectator, site, "demo")  # after the edit of `second`, through the same relay
        assert ("second", "update") not in spectator.frames[heard:], "nothing after unsubscribed"

        snapshots = spectator.frames.count(("demo", "snapshot"))
        spectator.resync("demo")
        await spectator.wait_until(
            lambda s: s.frames.count(("demo", "snapshot")) == snapshots + 1, TIMEOUT, "resynced"
        )
        await converged(spectator, site, "demo", "third")
        assert spectator.errors == [] and spectator.close_codes == []
    finally:
        await spectator.stop()


async def test_every_board_frame_carries_its_slug_on_both_endpoints_and_one_update_serves_both(site):
    server = site.start_daphne()
    staff = await as_staff(site, server)
    async with opened(server, "/ws/boards/second/") as single, opened(server) as shared:
        await shared.send({"type": "subscribe", "board": "second"})
        snapshots = [await single.frame(), await shared.frame()]
        assert [(s["type"], s["slug"], s["board"]["slug"]) for s in snapshots] == [
            ("snapshot",) + ("second",) * 2
        ] * 2
        assert snapshots[0] == snapshots[1]

        await asyncio.to_thread(staff.set_score, player(site, "second", "Ann"), 30)
        texts = [await single.text(), await shared.text()]
        assert texts[0] == texts[1], "the same encoded update on both endpoints"
        assert json.loads(texts[0])["type"] == "update" and json.loads(texts[0])["slug"] == "second"


async def test_a_renamed_board_is_followed_under_its_new_slug(site):
    a, b = await site.start_two_daphnes()
    staff = await as_staff(site, a)
    async with opened(b) as ws:
        await ws.send({"type": "subscribe", "board": "third"})
        await ws.frame_of("third", "snapshot")
        await change_board(staff, site, "third", slug="third-cup")
        assert await ws.frame() == {"type": "renamed", "slug": "third", "to": "third-cup"}
        update = await ws.frame()
        assert (update["type"], update["slug"], update["board"]["slug"]) == (
            "update",
            "third-cup",
            "third-cup",
        )
        await ws.send({"type": "resync", "board": "third-cup"})
        assert (await ws.frame_of("third-cup", "snapshot"))["version"] == update["version"]
        await ws.send({"type": "unsubscribe", "board": "third-cup"})
        assert await ws.frame() == {"type": "unsubscribed", "slug": "third-cup", "reason": "client"}


# --- a subscription that fails or ends, and the connection that stays ------------------------


async def test_a_private_board_is_answered_on_ws_exactly_like_a_missing_one(site):
    """The same frame apart from the slug, after the same time within noise (interleaved)."""
    server = site.start_daphne()
    answers = {}
    async with opened(server) as ws:
        for slug in ("hidden", "nosuch"):
            await ws.send({"type": "subscribe", "board": slug})
            answers[slug] = await ws.text()
        await ws.pong()
    assert answers["hidden"] == answers["nosuch"].replace('"nosuch"', '"hidden"')
    assert json.loads(answers["hidden"]) == {"type": "unsubscribed", "slug": "hidden", "reason": "not_found"}

    times: dict[str, list[float]] = {"hidden": [], "nosuch": []}
    for _ in range(15):  # connections of 8 frames each: under the flood limit of 10 a second
        async with opened(server) as ws:
            for round_ in range(4):
                for slug in ("hidden", "nosuch") if round_ % 2 else ("nosuch", "hidden"):
                    started = time.perf_counter()
                    await ws.send({"type": "subscribe", "board": slug})
                    await ws.text()
                    times[slug].append(time.perf_counter() - started)
    private, missing = (statistics.median(times[slug][8:]) * 1000 for slug in ("hidden", "nosuch"))
    spread = statistics.quantiles(times["nosuch"][8:], n=4)
    noise = (spread[2] - spread[0]) * 1000
    print(
        f"\nmedian not_found answer: private {private:.2f} ms, missing {missing:.2f} ms (IQR {noise:.2f} ms)"
    )
    assert abs(private - missing) <= max(noise, 0.1 * missing)


async def test_a_board_made_private_ends_as_forbidden_and_the_other_boards_go_on(site):
    a, b = await site.start_two_daphnes()
    staff = await as_staff(site, a)
    spectator = Multiplexed([b.ws_url], ("demo", "second")).start()
    try:
        await converged(spectator, site, "demo", "second")
        await change_board(staff, site, "second", is_public=False)
        await spectator.wait_until(lambda s: s.ended.get("second") == "forbidden", TIMEOUT, "told forbidden")
        await asyncio.to_thread(staff.set_score, player(site, "demo", "Ada"), 1)
        await converged(spectator, site, "demo")
        spectator.subscribe("second")  # its next subscription: as if it did not exist
        await spectator.wait_until(lambda s: s.ended.get("second") == "not_found", TIMEOUT, "told not_found")
        assert spectator.connections == 1 and spectator.close_codes == []
    finally:
        await spectator.stop()


async def test_a_deleted_board_ends_as_removed_and_the_connection_stays(site):
    """Deleted by a script (the admin keeps boards that have change records)."""
    server = site.start_daphne()
    async with opened(server) as ws:
        for slug in ("third", "demo"):
            await ws.send({"type": "subscribe", "board": slug})
            await ws.frame_of(slug, "snapshot")
        script = "from live.models import Board; Board.objects.get(slug='third').delete()"
        await asyncio.to_thread(manage, "shell", "-c", script, env=site.env)
        assert await ws.frame() == {"type": "unsubscribed", "slug": "third", "reason": "removed"}
        await ws.pong()
        await ws.send({"type": "resync", "board": "demo"})
        assert (await ws.frame_of("demo", "snapshot"))["board"]["slug"] == "demo"


BAD_FRAMES = [
    ("{", "invalid_json"),
    ("[1]", "invalid_message"),
    ({"type": "watch", "board": "demo"}, "unknown_type"),
    ({"type": "subscribe"}, "invalid_board"),
    ({"type": "subscribe", "board": 7}, "invalid_board"),
    ({"type": "subscribe", "board": "no spaces"}, "invalid_board"),
    ({"type": "subscribe", "board": "x" * 101}, "invalid_board"),
    ({"type": "unsubscribe", "board": "demo"}, "not_subscribed"),
    ({"type": "resync", "board": "demo"}, "not_subscribed"),
]


async def test_bad_frames_are_answered_with_errors_and_the_connection_stays(site):
    server = site.start_daphne()
    async with opened(server) as ws:
        for message, code in BAD_FRAMES:
            await ws.send(message)
            error = await ws.frame()
            assert (error["type"], error["code"]) == ("error", code), message
            assert error.get("slug") == ("demo" if code == "not_subscribed" else None)
        await ws.send({"type": "subscribe", "board": "demo"})  # the 10th frame of this second
        assert (await ws.frame())["type"] == "snapshot"


async def test_the_cap_refuses_a_subscription_beyond_it_and_keeps_the_connection(site):
    server = site.start_daphne()
    spectator = Multiplexed([server.ws_url], tuple(CAP_BOARDS[:MAX_SUBSCRIPTIONS]), frames_per_second=9)
    spectator.start()
    try:
        await spectator.wait_until(
            lambda s: all(s.boards[slug].version is not None for slug in CAP_BOARDS[:MAX_SUBSCRIPTIONS]),
            TIMEOUT,
            f"given {MAX_SUBSCRIPTIONS} snapshots",
        )
        extra = CAP_BOARDS[MAX_SUBSCRIPTIONS]
        spectator.subscribe(extra)
        await spectator.wait_until(lambda s: s.errors, TIMEOUT, "refused")
        assert [(e["code"], e["slug"]) for e in spectator.errors] == [("too_many_subscriptions", extra)]
        # Subscribing twice is a resync: one more snapshot, still twenty subscriptions.
        spectator.subscribe(CAP_BOARDS[0])
        await spectator.wait_until(lambda s: s.boards[CAP_BOARDS[0]].version is not None, TIMEOUT, "resynced")
        spectator.unsubscribe(CAP_BOARDS[1])
        spectator.subscribe(extra)
        await spectator.wait_until(lambda s: s.boards[extra].version is not None, TIMEOUT, "subscribed")
        assert len(spectator.errors) == 1 and spectator.connections == 1 and spectator.close_codes == []
        assert spectator.ended == {CAP_BOARDS[1]: "client"}
    finally:
        await spectator.stop()
