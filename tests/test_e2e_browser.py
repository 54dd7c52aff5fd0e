"""End to end, as people use it: staff edit in the admin, spectators watch in real Chromium.

Every test starts its own Daphne processes on a copy of one migrated, seeded SQLite file,
so the server, the admin and the test share a database but never a Python process.
"""

import http.cookiejar
import json
import os
import re
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from harness.big_board import standings as ranked_rows
from harness.browser import CHROMIUM, launch_chromium
from harness.servers import DaphneProcess, free_port, manage, server_env, sqlite_database

pytestmark = pytest.mark.e2e

STAFF_USER = "staff"
STAFF_PASSWORD = "e2e-staff-password-only-for-tests"
TIMEOUT_MS = 10_000  # any single wait for the page or the admin
LIVE_WITHIN_MS = 1_000  # from the Save click to the spectator page showing it (page clocks)
RECONNECT_WITHIN_MS = 20_000  # the page's back-off is capped at 10 s per attempt

# Records in the page, before its own script sees them: when each WebSocket was created and
# to where, every frame it received and every state the badge showed.
RECORD_JS = """
window.socketsCreatedAt = [];
window.socketUrls = [];
window.framesReceived = [];
window.badgeStates = [];
window.WebSocket = class extends window.WebSocket {
    constructor(...args) {
        super(...args);
        window.socketsCreatedAt.push(performance.now());
        window.socketUrls.push(String(args[0]));
        this.addEventListener("message", (event) => window.framesReceived.push(JSON.parse(event.data)));
    }
};
new MutationObserver((records) => {
    for (const record of records) window.badgeStates.push(record.target.dataset.connectionState);
}).observe(document, { subtree: true, attributeFilter: ["data-connection-state"] });
"""
STANDINGS_JS = """() => Array.from(
    document.querySelectorAll(".standings tbody.ranking tr"),
    (row) => ["rank", "name", "score"].map((field) => row.querySelector(`[data-field=${field}]`).textContent),
)"""


# --- real processes -------------------------------------------------------------------


class Database:
    """A file-backed SQLite database shared by the servers, manage.py and the test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"

    def query(self, sql: str, *params) -> list[tuple]:
        with closing(sqlite3.connect(self.path)) as db:
            return db.execute(sql, params).fetchall()

    def version(self, slug: str = "demo") -> int:
        return self.query("SELECT version FROM live_board WHERE slug = ?", slug)[0][0]

    def player_id(self, name: str) -> int:
        return self.query("SELECT id FROM live_player WHERE name = ?", name)[0][0]

    def standings(self, slug: str = "demo", *, changing: dict[str, int] | None = None) -> list[list[str]]:
        """The board as the page must show it, [rank, name, score] rows (ranked here, not by live/),
        as it is or as it will be once the scores in `changing` are saved."""
        rows = [
            (name, (changing or {}).get(name, score))
            for name, score in self.query(
                "SELECT p.name, p.score FROM live_player p JOIN live_board b ON b.id = p.board_id"
                " WHERE b.slug = ?",
                slug,
            )
        ]
        return ranked_rows(rows)


@pytest.fixture(scope="module")
def template_database(tmp_path_factory) -> Database:
    """Migrated once per module, with the demo board and a staff user; tests get copies."""
    database = Database(tmp_path_factory.mktemp("template") / "db.sqlite3")
    sqlite_database(database.path.parent)
    env = server_env(database_url=database.url, DJANGO_SUPERUSER_PASSWORD=STAFF_PASSWORD)
    manage("seed_demo", env=env)
    manage("ensure_admin", "--username", STAFF_USER, env=env)
    return database


@pytest.fixture
def database(template_database, tmp_path) -> Database:
    copy = Database(tmp_path / "db.sqlite3")
    # The backup API copies a WAL-mode database consistently, unlike a file copy.
    with (
        closing(sqlite3.connect(template_database.path)) as source,
        closing(sqlite3.connect(copy.path)) as target,
    ):
        source.backup(target)
    return copy


@pytest.fixture
def server(database, start_daphne) -> DaphneProcess:
    """One Daphne on the test's database, with the in-memory channel layer."""
    return start_daphne(server_env(database_url=database.url))


def orm(env: dict, code: str) -> None:
    """Run ORM code in a separate process, as another writer (a script, a worker) would."""
    manage("shell", "-v", "0", "-c", "from live.models import Board, Player\n" + code, env=env)


# --- the browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@dataclass
class Spectator:
    """A spectator page that records its navigations (here) and WebSocket frames (in the page)."""

    page: Page
    navigations: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)

    @property
    def badge(self):
        return self.page.locator("[data-connection-state]")

    def updates(self) -> list[dict]:
        return [frame for frame in self.page.evaluate("window.framesReceived") if frame["type"] == "update"]

    def shows(self, expected: list[list[str]], *, timeout: float = TIMEOUT_MS) -> float:
        """Wait until the table is exactly `expected`; returns the page's clock (epoch ms) then."""
        try:
            # Polled on every animation frame; the first match returns the page's time.
            shown = self.page.wait_for_function(
                f"(expected) => JSON.stringify(({STANDINGS_JS})()) === JSON.stringify(expected)"
                " && Date.now()",
                arg=expected,
                timeout=timeout,
            )
        except PlaywrightTimeoutError:
            table = self.page.evaluate(STANDINGS_JS)
            pytest.fail(f"within {timeout:.0f} ms the page did not show\n{expected}\nbut\n{table}")
        return shown.json_value()

    def assert_never_reloaded(self) -> None:
        assert self.navigations == [self.page.url], "the spectator page navigated again"
        assert self.page.evaluate("window.openedOnce") == 1, "the page was reloaded"


@pytest.fixture
def spectate(browser) -> Iterator:
    """Returns spectate(url) -> a Spectator whose page is live; its context is closed afterwards."""
    contexts, spectators = [], []

    def spectate(url: str) -> Spectator:
        context = browser.new_context(viewport={"width": 1000, "height": 700}, color_scheme="light")
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        spectator = Spectator(page)
        spectators.append(spectator)
        page.on(
            "framenavigated",
            lambda frame: frame == page.main_frame and spectator.navigations.append(frame.url),
        )
        page.add_init_script(RECORD_JS)
        page.on("pageerror", lambda error: spectator.script_errors.append(str(error)))
        page.goto(url)
        expect(spectator.badge).to_have_attribute("data-connection-state", "live")
        # Survives anything but a reload or a navigation.
        page.evaluate("window.openedOnce = 1")
        return spectator

    yield spectate
    for context in contexts:
        context.close()
    assert [error for s in spectators for error in s.script_errors] == [], "the page's script failed"


@pytest.fixture
def staff(browser) -> Iterator:
    """Returns staff(base_url) -> a page logged into that server's admin as a staff user."""
    contexts = []

    def log_in(base_url: str) -> Page:
        context = browser.new_context()
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto(f"{base_url}/admin/login/?next=/admin/")
        page.fill("#id_username", STAFF_USER)
        page.fill("#id_password", STAFF_PASSWORD)
        page.click("input[type=submit]")
        expect(page).to_have_url(f"{base_url}/admin/")
        return page

    yield log_in
    for context in contexts:
        context.close()


def save_score_in_change_form(admin: Page, base_url: str, name: str, score: int) -> float:
    """Edit one player's score in its admin change form and click Save; returns the browser's
    clock (epoch ms, shared by all its pages) just before the click."""
    admin.goto(f"{base_url}/admin/live/player/?q={urllib.parse.quote(name)}")
    admin.get_by_role("link", name=name, exact=True).click()
    admin.fill("#id_score", str(score))
    clicked_at = admin.evaluate("Date.now()")
    admin.click("input[name=_save]")
    return clicked_at


def expect_saved(admin: Page, message: str) -> None:
    expect(admin.locator(".messagelist .success")).to_contain_text(message)


# --- the scenarios --------------------------------------------------------------------


def test_an_admin_edit_reorders_the_spectator_page_within_a_second(server, database, spectate, staff):
    spectator = spectate(f"{server.http_url}/boards/demo/")
    spectator.shows(database.standings())
    admin = staff(server.http_url)
    expected = database.standings(changing={"Radia": 50})
    assert [expected[0], database.standings()[-1]] == [["1", "Radia", "50"], ["8", "Radia", "9"]]

    clicked_at = save_score_in_change_form(admin, server.http_url, "Radia", 50)

    latency_ms = spectator.shows(expected) - clicked_at
    assert latency_ms <= LIVE_WITHIN_MS
    expect_saved(admin, "was changed successfully")
    assert database.standings() == expected
    spectator.assert_never_reloaded()


def test_a_list_editable_save_of_several_players_is_one_update(server, database, spectate, staff):
    spectator = spectate(f"{server.http_url}/boards/demo/")
    spectator.shows(database.standings())
    version = database.version()
    admin = staff(server.http_url)
    admin.goto(f"{server.http_url}/admin/live/player/")
    new_scores = {"Ada": 1, "Ken": 60, "Radia": 45, "Grace": 37}  # Grace unchanged
    for name, score in new_scores.items():
        row = admin.locator("#result_list tbody tr").filter(
            has=admin.get_by_role("link", name=name, exact=True)
        )
        row.locator("input[name^='form-'][name$='-score']").fill(str(score))

    admin.click("input[name=_save]")
    expect_saved(admin, "3 players were changed successfully")

    expected = database.standings()
    assert {row[1]: row[2] for row in expected}.items() >= {k: str(v) for k, v in new_scores.items()}.items()
    spectator.shows(expected)
    assert database.version() == version + 1, "one save must be one change-set"
    updates = spectator.updates()
    assert [update["version"] for update in updates] == [version + 1]
    assert sorted(p["name"] for p in updates[0]["players"]) == ["Ada", "Ken", "Radia"]
    spectator.assert_never_reloaded()


def test_a_stale_change_form_is_refused_in_the_browser_naming_who_saved_first(server, database, staff):
    """Two browsers open Ken's form; the second save is refused and says who saved, and what."""
    ken = database.player_id("Ken")
    first, second = staff(server.http_url), staff(server.http_url)
    for admin in (first, second):
        admin.goto(f"{server.http_url}/admin/live/player/{ken}/change/")
    first.fill("#id_score", "20")
    first.click("input[name=_save]")
    expect_saved(first, "was changed successfully")

    second.fill("#id_score", "25")
    second.click("input[name=_save]")

    expect(second.locator(".errorlist")).to_contain_text(f"{STAFF_USER} changed score to 20 at ")
    expect(second.locator("#id_score")).to_have_value("25")
    assert database.query("SELECT score FROM live_player WHERE id = ?", ken) == [(20,)]


HOSTILE_NAMES = ['<img src=x onerror="window.pwned=1">', 'Zoë 🏆 "quotes" &amp;']


def test_player_names_are_shown_as_text_never_as_markup(server, database, browser, spectate, staff):
    spectator = spectate(f"{server.http_url}/boards/demo/")
    admin = staff(server.http_url)
    for score, name in enumerate(HOSTILE_NAMES, start=30):
        admin.goto(f"{server.http_url}/admin/live/player/add/")
        admin.select_option("#id_board", label="Demo league")
        admin.fill("#id_name", name)
        admin.fill("#id_score", str(score))
        admin.click("input[name=_save]")
        expect_saved(admin, "was added successfully")

    expected = database.standings()
    assert {row[1] for row in expected} >= set(HOSTILE_NAMES)
    # Live: the names arrived as updates and were written by the page's script.
    spectator.shows(expected)
    # Fresh: the names are in the server-rendered HTML (checked with scripts off) and the snapshot.
    reloaded = spectate(f"{server.http_url}/boards/demo/")
    reloaded.shows(expected)
    static = browser.new_context(java_script_enabled=False)
    try:
        page = static.new_page()
        page.goto(f"{server.http_url}/boards/demo/")
        names = page.locator(".standings [data-field=name]").all_text_contents()
        assert set(HOSTILE_NAMES) <= set(names)
        assert page.locator("img").count() == 0
    finally:
        static.close()
    for page in (spectator.page, reloaded.page):
        assert page.evaluate("document.images.length") == 0
        assert page.evaluate("typeof window.pwned") == "undefined"


def test_the_page_recovers_by_itself_after_a_server_restart(server, database, spectate, start_daphne):
    spectator = spectate(f"{server.http_url}/boards/demo/")
    spectator.shows(database.standings())

    server.stop()
    expect(spectator.badge).to_have_attribute("data-connection-state", "reconnecting")
    orm(server.env, "p = Player.objects.get(name='Ken'); p.score = 99; p.save()")
    expected = database.standings()
    assert expected[0] == ["1", "Ken", "99"]
    start_daphne(server.env, port=server.port)

    expect(spectator.badge).to_have_attribute("data-connection-state", "live", timeout=RECONNECT_WITHIN_MS)
    spectator.shows(expected)
    spectator.assert_never_reloaded()


@pytest.mark.redis
@pytest.mark.parametrize("layer", ["pubsub", "core"])
def test_an_edit_in_the_admin_of_one_process_reaches_a_spectator_of_another(
    layer, redis_url, database, start_daphne, spectate, staff
):
    env = server_env(database_url=database.url, redis_url=redis_url, layer=layer)
    server_a, server_b = start_daphne(env), start_daphne(env)
    spectator = spectate(f"{server_b.http_url}/boards/demo/")
    spectator.shows(database.standings())
    admin = staff(server_a.http_url)

    expected = database.standings(changing={"Barbara": 40})
    assert expected[1] == ["2", "Barbara", "40"]

    clicked_at = save_score_in_change_form(admin, server_a.http_url, "Barbara", 40)

    latency_ms = spectator.shows(expected) - clicked_at
    assert latency_ms <= LIVE_WITHIN_MS
    expect_saved(admin, "was changed successfully")
    assert database.standings() == expected
    assert [update["version"] for update in spectator.updates()] == [database.version()]
    spectator.assert_never_reloaded()


def test_a_foreign_origin_gets_no_websocket(server):
    ws_path = f"{server.ws_url}/ws/boards/demo/"
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(ws_path, origin="http://evil.example", open_timeout=TIMEOUT_MS / 1000)
    assert refused.value.response.status_code == 403
    # The same request from the site's own origin is accepted: the refusal is about Origin.
    with ws_connect(ws_path, origin=server.http_url, open_timeout=TIMEOUT_MS / 1000) as ws:
        assert json.loads(ws.recv(timeout=TIMEOUT_MS / 1000))["type"] == "snapshot"


def test_a_foreign_page_in_the_browser_cannot_open_the_websocket(server, browser):
    """A script on another site (here 127.0.0.2, not an allowed host) is refused by Origin."""
    context = browser.new_context()
    try:
        context.route(
            "http://127.0.0.2/**",
            lambda route: route.fulfill(body="<p>elsewhere</p>", content_type="text/html"),
        )
        page = context.new_page()
        opened_from = {}
        for origin in ("http://127.0.0.2/", f"{server.http_url}/"):
            page.goto(origin)
            opened_from[origin] = page.evaluate(OPEN_SOCKET_JS, f"{server.ws_url}/ws/boards/demo/")
    finally:
        context.close()
    assert opened_from == {"http://127.0.0.2/": "closed", f"{server.http_url}/": "open"}


OPEN_SOCKET_JS = """(url) => new Promise((resolve) => {
    const socket = new WebSocket(url);
    socket.onopen = () => { socket.close(); resolve("open"); };
    socket.onclose = () => resolve("closed");
})"""


def test_the_admin_refuses_requests_without_a_session(server, database, browser):
    player_id = database.player_id("Ada")
    change_url = f"{server.http_url}/admin/live/player/{player_id}/change/"
    # A browser without a session is sent to the login page, and sees no data.
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(change_url)
        expect(page).to_have_url(
            f"{server.http_url}/admin/login/?next=/admin/live/player/{player_id}/change/"
        )
        expect(page.locator("#id_score")).to_have_count(0)
    finally:
        context.close()
    # A POST that passes the CSRF check but has no session is sent to the login page too.
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies), NoRedirect())
    opener.open(f"{server.http_url}/admin/login/", timeout=TIMEOUT_MS / 1000)
    csrf_token = next(cookie.value for cookie in cookies if cookie.name == "csrftoken")
    form = {"csrfmiddlewaretoken": csrf_token, "board": "1", "name": "Ada", "score": "1000", "_save": "Save"}
    request = urllib.request.Request(
        change_url, data=urllib.parse.urlencode(form).encode(), headers={"Origin": server.http_url}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(request, timeout=TIMEOUT_MS / 1000)
    assert refused.value.code == 302
    assert refused.value.headers["Location"].startswith("/admin/login/")
    assert database.query("SELECT score FROM live_player WHERE id = ?", player_id) == [(42,)]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_a_server_that_accepts_then_refuses_is_retried_with_growing_back_off(database, start_daphne, browser):
    """Redis is down: each socket is accepted, then closed with 1013; the page must back off."""
    unreachable_redis = f"redis://127.0.0.1:{free_port()}/0"
    server = start_daphne(server_env(database_url=database.url, redis_url=unreachable_redis))
    context = browser.new_context()
    try:
        page = context.new_page()
        page.add_init_script(RECORD_JS)
        page.goto(f"{server.http_url}/boards/demo/")
        # Retry delays are 50-100 % of a ceiling of 0.5 s, 1 s, 2 s, ...: the third is >= 1 s.
        page.wait_for_function("() => window.socketsCreatedAt.length >= 4", timeout=TIMEOUT_MS)
        created = page.evaluate("window.socketsCreatedAt")
        states = page.evaluate("window.badgeStates")
    finally:
        context.close()
    delays = [later - earlier for earlier, later in zip(created, created[1:], strict=False)]
    assert delays[2] >= 1000, f"retry delays (ms) did not grow: {delays}"
    assert "live" not in states, "a socket that never delivered a snapshot is not live"


# --- one WebSocket per tab (issue 11) ---------------------------------------------------------

LIST_ROW_JS = """(slug) => {
    const item = document.querySelector(`.board-list li[data-slug="${slug}"]`);
    const text = (field) => item.querySelector(`[data-field="${field}"]`);
    return {count: text("player-count").textContent, live: item.dataset.live,
            leader: text("leader").hidden ? null : text("leader").textContent.replace(/\\s+/g, " "),
            watching: text("watching").hidden ? null : text("watching").textContent};
}"""
CREATE_SECOND_BOARD = (
    "b = Board.objects.create(name='Second', slug='second')\n"
    "Player.objects.create(board=b, name='Ann', score=5); Player.objects.create(board=b, name='Bo', score=3)"
)


def list_row(page: Page, slug: str, expected: dict) -> None:
    """Wait until the list's row of `slug` shows `expected` (a subset of LIST_ROW_JS's keys)."""
    try:
        page.wait_for_function(
            f"([slug, want]) => Object.entries(want).every(([k, v]) => ({LIST_ROW_JS})(slug)[k] === v)",
            arg=[slug, expected],
            timeout=TIMEOUT_MS,
        )
    except PlaywrightTimeoutError:
        pytest.fail(f"the row of {slug} did not show {expected} but {page.evaluate(LIST_ROW_JS, slug)}")


def test_the_list_and_the_board_page_each_hold_one_websocket_and_update_live(server, database, spectate):
    orm(server.env, CREATE_SECOND_BOARD)
    listing, board = pages = [spectate(f"{server.http_url}{path}") for path in ("/", "/boards/demo/")]
    for row in ("demo", "second"):
        list_row(listing.page, row, {"live": "true"})
    # Who is watching, counted by the server: the list on both boards, the board page on demo.
    second = {"count": "2 players", "leader": "Leader: Ann (5)", "watching": "1 watching"}
    list_row(listing.page, "second", second)
    list_row(listing.page, "demo", {"watching": "2 watching"})
    expect(board.page.locator("[data-field=watching]")).to_have_text("2 watching")

    orm(server.env, "p = Player.objects.get(name='Bo'); p.score = 40; p.save()")
    orm(server.env, "p = Player.objects.get(name='Ken'); p.score = 99; p.save()")
    list_row(listing.page, "second", {"leader": "Leader: Bo (40)"})
    list_row(listing.page, "demo", {"leader": "Leader: Ken (99)", "count": "8 players"})
    board.shows(database.standings())

    for spectator in pages:
        assert spectator.page.evaluate("window.socketsCreatedAt.length") == 1, "one WebSocket per tab"
        assert spectator.page.evaluate("window.socketUrls") == [f"{server.ws_url}/ws/"]
        spectator.assert_never_reloaded()
    slugs = {(f["type"], f.get("slug")) for f in listing.page.evaluate("window.framesReceived")}
    assert {("snapshot", "demo"), ("snapshot", "second"), ("update", "demo"), ("update", "second")} <= slugs


def test_the_pages_show_watchers_and_hand_member_frames_to_listeners(server, browser):
    """Frames of other parts of issue 11 (who is watching, messages to one member), injected
    between the server and the page: the pages show a count when there is one, none otherwise."""
    sockets = []

    def route(socket):
        sockets.append(socket)
        server_side = socket.connect_to_server()

        def to_page(text):
            frame = json.loads(text)
            if frame["type"] == "snapshot":
                socket.send(json.dumps(frame | {"watching": 2}))
                socket.send(json.dumps({"type": "watching", "slug": frame["slug"], "count": 3}))
            else:
                socket.send(text)

        server_side.on_message(to_page)

    context = browser.new_context()
    try:
        context.set_default_timeout(TIMEOUT_MS)
        listing, board = context.new_page(), context.new_page()
        for page, path in ((listing, "/"), (board, "/boards/demo/")):
            page.route_web_socket(re.compile(r"/ws/$"), route)
            page.goto(f"{server.http_url}{path}")
        list_row(listing, "demo", {"watching": "3 watching", "live": "true"})
        expect(board.locator("[data-field=watching]")).to_have_text("3 watching")
        board.evaluate(
            "() => import(new URL('./connection.js', document.querySelector('script[type=module]').src))"
            ".then((connection) => connection.on('member', (frame) => { window.member = frame; }))"
        )
        notice = {"type": "member", "event": "notice", "payload": {"text": "Hello"}}
        sockets[-1].send(json.dumps(notice))
        board.wait_for_function("() => window.member !== undefined")
        assert board.evaluate("window.member") == notice
    finally:
        context.close()


RECORD_SENT_JS = """
window.framesSent = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
    window.framesSent.push(JSON.parse(data));
    return send.call(this, data);
};
"""
OPEN_SUBSCRIPTIONS_JS = """() => {
    let open = 0, most = 0;
    for (const frame of window.framesSent) {
        if (frame.type === "subscribe") most = Math.max(most, ++open);
        if (frame.type === "unsubscribe") open--;
    }
    return {open, most};
}"""


def test_a_list_longer_than_the_cap_follows_the_rows_on_screen(server, browser):
    """30 boards: live are the rows on screen, never more than 20 at once, and no frame refused."""
    orm(server.env, "for n in range(1, 31): Board.objects.create(name=f'Board {n:02d}', slug=f'b{n:02d}')")
    context = browser.new_context(viewport={"width": 1000, "height": 4000})
    try:
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        for script in (RECORD_JS, RECORD_SENT_JS):
            page.add_init_script(script)
        page.goto(f"{server.http_url}/")
        live = "() => [...document.querySelectorAll('.board-list li')].map((li) => li.dataset.live)"
        page.wait_for_function(f"() => ({live})().filter((state) => state === 'true').length === 20")
        assert page.evaluate(live) == ["true"] * 20 + ["false"] * 11, "the first 20 rows on screen"

        page.set_viewport_size({"width": 1000, "height": 600})
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_function(f"() => ({live})().slice(-3).every((state) => state === 'true')")
        subscriptions = page.evaluate(OPEN_SUBSCRIPTIONS_JS)
        assert subscriptions == {"open": 20, "most": 20}
        received = page.evaluate("window.framesReceived")
        refused = [f for f in received if f["type"] == "error" or f.get("reason", "client") != "client"]
        assert refused == [], "the server refused nothing"
        assert page.evaluate("window.socketsCreatedAt.length") == 1
    finally:
        context.close()
