"""A board of 1,000 players with 100-code-point names, end to end, through a real Daphne.

Daphne runs with exactly the options of `make run` (the Makefile's DAPHNE_OPTIONS) and of
deploy/systemd/daphne@.service, read from those files, so their 4 KiB limit on what
spectators send applies while snapshots of about 250 KB go out. Scores are changed through
the ORM in a separate process, as a script would; Redis (PubSub) carries the change to Daphne.
"""

import json
import sqlite3
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from websockets.sync.client import connect

from harness.big_board import (
    BIG_BOARD_PLAYERS,
    BIG_BOARD_SLUG,
    NAME_CODE_POINTS,
    create_big_board,
    set_score,
    standings,
)
from harness.browser import CHROMIUM, launch_chromium
from harness.servers import DaphneProcess, makefile_options, server_env, sqlite_database, unit_options
from live.delivery.protocol import MAX_CLIENT_MESSAGE_BYTES

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

TIMEOUT = 15  # seconds for any single wait: a 1,000-row page on a shared 2-core machine
DAPHNE_OPTIONS = {"make run": makefile_options, "deploy": unit_options}


def next_frame(ws) -> dict:
    """The next frame that is not a `watching` count (a spectator of the previous test may
    still be leaving: the count changes)."""
    while (frame := json.loads(ws.recv(timeout=TIMEOUT)))["type"] == "watching":
        pass
    return frame


@dataclass
class BigBoard:
    """The big board in a shared SQLite file, served by one Daphne."""

    server: DaphneProcess
    env: dict
    database: Path
    options: list[str]

    @property
    def page_url(self) -> str:
        return f"{self.server.http_url}/boards/{BIG_BOARD_SLUG}/"

    def spectator(self, server: DaphneProcess | None = None):
        return connect(
            f"{(server or self.server).ws_url}/ws/boards/{BIG_BOARD_SLUG}/",
            origin=(server or self.server).http_url,
            open_timeout=TIMEOUT,
            max_size=None,
        )

    def players(self) -> list[tuple[str, int]]:
        with closing(sqlite3.connect(self.database)) as db:
            return db.execute(
                "SELECT p.name, p.score FROM live_player p JOIN live_board b ON b.id = p.board_id"
                " WHERE b.slug = ?",
                (BIG_BOARD_SLUG,),
            ).fetchall()

    def standings(self) -> list[list[str]]:
        return standings(self.players())

    def move_last_to_top(self) -> tuple[str, int]:
        """Give the last-ranked player the top score + 1, through the ORM; (name, new score)."""
        table = self.standings()
        name, score = table[-1][1], int(table[0][2]) + 1
        set_score(self.env, name, score)
        return name, score


@pytest.fixture(scope="module", params=DAPHNE_OPTIONS)
def big_board(request, tmp_path_factory, redis_url) -> Iterator[BigBoard]:
    tmp_path = tmp_path_factory.mktemp("big-board")
    env = server_env(database_url=sqlite_database(tmp_path), redis_url=redis_url, layer="pubsub")
    create_big_board(env)
    options = DAPHNE_OPTIONS[request.param]()
    assert options[options.index("--websocket-max-message-size") + 1] == str(MAX_CLIENT_MESSAGE_BYTES)
    server = DaphneProcess(env=env, tmp_path=tmp_path, options=tuple(options)).start()
    yield BigBoard(server=server, env=env, database=tmp_path / "db.sqlite3", options=options)
    server.stop()
    print(server.output())  # shown when a test fails


def rows(message: dict) -> list[list[str]]:
    return [[str(p["rank"]), p["name"], str(p["score"])] for p in message["players"]]


def test_the_snapshot_of_a_big_board_arrives_whole(big_board):
    with big_board.spectator() as ws:
        text = ws.recv(timeout=TIMEOUT)
    snapshot = json.loads(text)
    assert len(text.encode()) > 50 * MAX_CLIENT_MESSAGE_BYTES
    assert snapshot["type"] == "snapshot"
    assert len(snapshot["players"]) == BIG_BOARD_PLAYERS
    assert {len(p["name"]) for p in snapshot["players"]} == {NAME_CODE_POINTS}
    assert rows(snapshot) == big_board.standings()  # every name byte for byte, in rank order


def test_an_update_to_one_player_reaches_the_spectator_and_the_api(big_board):
    with big_board.spectator() as ws:
        version = json.loads(ws.recv(timeout=TIMEOUT))["version"]
        name, score = big_board.move_last_to_top()
        update = next_frame(ws)
    assert update["type"] == "update"
    assert update["version"] == version + 1
    assert rows(update) == [["1", name, str(score)]]
    assert update["removed"] == []

    api_url = f"{big_board.server.http_url}/api/boards/{BIG_BOARD_SLUG}/"
    with urllib.request.urlopen(api_url, timeout=TIMEOUT) as response:
        snapshot = json.loads(response.read())
    assert snapshot["version"] == version + 1
    assert rows(snapshot) == big_board.standings()
    assert rows(snapshot)[0] == ["1", name, str(score)]


def test_a_snapshot_larger_than_the_send_buffer_limit_still_arrives(big_board, tmp_path):
    """LIVE_SEND_BUFFER_LIMIT caps a backlog, not one message: a 100 KB cap lets a 244 KB
    snapshot through, and the spectator stays connected for the next update."""
    env = {**big_board.env, "LIVE_SEND_BUFFER_LIMIT": "100000"}
    server = DaphneProcess(env=env, tmp_path=tmp_path, options=tuple(big_board.options)).start()
    try:
        with big_board.spectator(server) as ws:
            text = ws.recv(timeout=TIMEOUT)
            assert len(text.encode()) > 2 * 100_000
            name, score = big_board.move_last_to_top()
            update = next_frame(ws)
    finally:
        server.stop()
    assert update["version"] == json.loads(text)["version"] + 1
    assert rows(update) == [["1", name, str(score)]]


# --- in Chromium ----------------------------------------------------------------------

# Records which rows the page animates into their new place (its FLIP moves).
RECORD_MOVES_JS = """
window.movedRows = [];
const animate = Element.prototype.animate;
Element.prototype.animate = function (...args) {
    window.movedRows.push(this.querySelector("[data-field=name]").textContent);
    return animate.apply(this, args);
};
"""
STANDINGS_JS = """() => Array.from(
    document.querySelectorAll(".standings tbody.ranking tr"),
    (row) => ["rank", "name", "score"].map((field) => row.querySelector(`[data-field=${field}]`).textContent),
)"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


def shows(page, expected: list[list[str]]) -> None:
    """Wait until the page's table is exactly `expected`."""
    try:
        page.wait_for_function(
            f"(expected) => JSON.stringify(({STANDINGS_JS})()) === JSON.stringify(expected)",
            arg=expected,
            polling=100,
            timeout=TIMEOUT * 1000,
        )
    except PlaywrightTimeoutError:
        table = page.evaluate(STANDINGS_JS)
        wrong = next((i for i, (a, b) in enumerate(zip(table, expected, strict=False)) if a != b), None)
        pytest.fail(f"the page shows {len(table)} rows, first difference at row {wrong}")


def test_the_page_of_a_big_board_goes_live_and_shows_an_update(big_board, browser):
    expected = big_board.standings()
    # Server-rendered, readable without JavaScript.
    static = browser.new_context(java_script_enabled=False)
    try:
        page = static.new_page()
        page.goto(big_board.page_url)
        assert page.evaluate(STANDINGS_JS) == expected
    finally:
        static.close()

    context = browser.new_context(viewport={"width": 1000, "height": 700})
    context.set_default_timeout(TIMEOUT * 1000)
    errors = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.add_init_script(RECORD_MOVES_JS)
        page.goto(big_board.page_url)
        expect(page.locator("[data-connection-state]")).to_have_attribute(
            "data-connection-state", "live", timeout=TIMEOUT * 1000
        )
        shows(page, expected)

        name, score = big_board.move_last_to_top()
        changed = big_board.standings()
        assert changed[0] == ["1", name, str(score)]
        shows(page, changed)
        expect(page.locator("tr.changed")).to_have_count(1, timeout=TIMEOUT * 1000)
        assert page.locator("tr.changed [data-field=name]").text_content() == name
        # It flew in from the bottom and the rows on screen moved down; the other ~990 rows
        # moved off screen, where an animation would show nothing.
        moved = page.evaluate("window.movedRows")
        assert name in moved
        assert 5 < len(moved) < 100, len(moved)
    finally:
        context.close()
    assert errors == []
