"""The spectator page's live look and its views, in real Chromium against real Daphne processes:
arrows, deltas and the highlight; dark mode and reduced motion; search and follow; the big
screen, the streaming overlay and the embed; and the fall-back to Server-Sent Events when
WebSockets are blocked."""

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

from harness.servers import DaphneProcess, free_port, server_env
from tests import test_e2e_browser as e2e

pytestmark = pytest.mark.e2e

# The module-scoped browser and the per-test copy of the seeded database (the demo board).
browser = e2e.browser
template_database = e2e.template_database
database = e2e.database
TIMEOUT_MS = e2e.TIMEOUT_MS

# When each row was last given the highlight, on the page's clock (before the page's script).
RECORD_HIGHLIGHTS_JS = """
window.highlightedAt = {};
new MutationObserver((records) => {
    for (const record of records) {
        const row = record.target;
        if (row.classList?.contains("changed") && !record.oldValue?.includes("changed")) {
            window.highlightedAt[row.querySelector("[data-field=name]").textContent] = performance.now();
        }
    }
}).observe(document, { subtree: true, attributeFilter: ["class"], attributeOldValue: true });
window.movedRows = [];
const animate = Element.prototype.animate;
Element.prototype.animate = function (...args) {
    window.movedRows.push(this.querySelector("[data-field=name]")?.textContent);
    return animate.apply(this, args);
};
"""
ROW_JS = """(name) => {
    const row = [...document.querySelectorAll(".standings tbody.ranking tr")]
        .find((row) => row.querySelector("[data-field=name]").textContent === name);
    const text = (field) => row.querySelector(`[data-field=${field}]`)?.textContent ?? "";
    const data = (field, key) => row.querySelector(`[data-field=${field}]`)?.dataset[key] ?? "";
    return {rank: text("rank"), move: text("move"), direction: data("move", "move"),
            delta: text("delta"), sign: data("delta", "sign"), podium: row.dataset.podium ?? "",
            changed: row.classList.contains("changed")};
}"""
# Waits (on the page's clock) until `ms` after the row's highlight began, then reads it.
HIGHLIGHT_AFTER_JS = """async ([name, ms]) => {
    const row = [...document.querySelectorAll(".standings tbody.ranking tr")]
        .find((row) => row.querySelector("[data-field=name]").textContent === name);
    const wait = window.highlightedAt[name] + ms - performance.now();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));
    const style = getComputedStyle(row);
    return {changed: row.classList.contains("changed"), background: style.backgroundColor,
            animation: style.animationName, after: performance.now() - window.highlightedAt[name]};
}"""
LIGHT_FLASH, DARK_FLASH = "rgb(255, 230, 128)", "rgb(69, 52, 0)"


@pytest.fixture
def server(database, start_daphne) -> DaphneProcess:
    return start_daphne(server_env(database_url=database.url))


@pytest.fixture
def open_page(browser) -> Iterator:
    """Returns open_page(url, **context options) -> a page whose board is live; closed afterwards."""
    contexts, errors = [], []

    def open_page(url: str, *, live: bool = True, prepare=None, **options) -> Page:
        options.setdefault("viewport", {"width": 1000, "height": 700})
        context = browser.new_context(**options)
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        for script in (e2e.RECORD_JS, RECORD_HIGHLIGHTS_JS):
            page.add_init_script(script)
        if prepare is not None:
            prepare(page)
        page.goto(url)
        if live:
            expect(page.locator("[data-connection-state]")).to_have_attribute("data-connection-state", "live")
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert errors == [], "the page's script failed"


def shows(page: Page, expected: list[list[str]]) -> None:
    page.wait_for_function(
        f"(expected) => JSON.stringify(({e2e.STANDINGS_JS})()) === JSON.stringify(expected)", arg=expected
    )


def set_score(server: DaphneProcess, name: str, score: int) -> None:
    e2e.orm(
        server.env, f"p = Player.objects.get(board__slug='demo', name={name!r}); p.score = {score}; p.save()"
    )


# --- the live look --------------------------------------------------------------------


def test_a_change_shows_arrows_the_delta_and_a_highlight_that_lasts_over_2s(server, database, open_page):
    page = open_page(f"{server.http_url}/boards/demo/")
    assert page.evaluate(ROW_JS, "Ada")["podium"] == "1"
    set_score(server, "Radia", 50)  # last (8th) to first: everyone else moves down one place
    shows(page, database.standings())

    radia, ada, barbara = (page.evaluate(ROW_JS, name) for name in ("Radia", "Ada", "Barbara"))
    assert radia | {"changed": None} == {
        "rank": "1", "move": "7", "direction": "up", "delta": "+41", "sign": "up", "podium": "1",
        "changed": None,
    }  # fmt: skip
    assert (ada["rank"], ada["move"], ada["direction"], ada["delta"], ada["podium"]) == (
        "2",
        "1",
        "down",
        "",
        "2",
    )
    assert (barbara["rank"], barbara["direction"], barbara["podium"]) == ("7", "down", "")
    assert [page.evaluate(ROW_JS, name)["podium"] for name in ("Grace", "Linus")] == ["3", ""]
    pills = page.evaluate(
        "() => [...document.querySelectorAll('tbody.ranking [data-field=rank]')].slice(0, 4)"
        ".map((rank) => getComputedStyle(rank).backgroundColor)"
    )
    assert len(set(pills[:3])) == 3 and pills[3] == "rgba(0, 0, 0, 0)", f"gold, silver, bronze, none: {pills}"
    # Visible across a room: the changed row is still highlighted, solid, 2 s later; gone by 3.5 s.
    held = page.evaluate(HIGHLIGHT_AFTER_JS, ["Radia", 2000])
    assert held["changed"] and held["background"] == LIGHT_FLASH, held
    assert not page.evaluate(HIGHLIGHT_AFTER_JS, ["Radia", 3500])["changed"]
    assert "Radia" in page.evaluate("window.movedRows"), "rows slide to their new place"
    # "Updated HH:MM:SS": the page's local time of the change.
    updated = page.locator("[data-field=updated]").text_content()
    now = page.evaluate("new Date().toTimeString().slice(0, 8)")
    assert re.fullmatch(r"\d\d:\d\d:\d\d", updated) and abs(seconds(now) - seconds(updated)) <= 5


def seconds(clock: str) -> int:
    hours, minutes, secs = map(int, clock.split(":"))
    return hours * 3600 + minutes * 60 + secs


BADGE_COLOURS_JS = """() => ["live", "stale", "reconnecting", "offline"].map((state) => {
    const badge = document.querySelector("[data-connection-state]").cloneNode(true);
    badge.dataset.connectionState = state;
    document.body.append(badge);
    const colour = getComputedStyle(badge).backgroundColor;
    badge.remove();
    return colour;
})"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_each_connection_state_has_its_own_colour_beside_the_board(server, open_page, scheme):
    page = open_page(f"{server.http_url}/boards/demo/", color_scheme=scheme)
    colours = page.evaluate(BADGE_COLOURS_JS)
    assert len(set(colours)) == 4, colours
    title, badge = (page.locator(selector).bounding_box() for selector in ("h1", "[data-connection-state]"))
    assert badge["y"] < title["y"] + title["height"] + 40, "the state sits with the board's name"
    assert page.locator("[data-connection-state]").get_attribute("data-transport") == "websocket"


def test_dark_mode_follows_the_system_setting(server, database, open_page):
    page = open_page(f"{server.http_url}/boards/demo/", color_scheme="dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(15, 17, 21)"
    assert page.evaluate("getComputedStyle(document.querySelector('h1')).color") == "rgb(232, 235, 240)"
    set_score(server, "Ken", 36)
    shows(page, database.standings())
    held = page.evaluate(HIGHLIGHT_AFTER_JS, ["Ken", 500])
    assert held["background"] == DARK_FLASH, held


def test_reduced_motion_keeps_a_static_highlight_and_nothing_slides(server, database, open_page):
    page = open_page(f"{server.http_url}/boards/demo/", reduced_motion="reduce")
    set_score(server, "Radia", 50)
    shows(page, database.standings())
    early, late = (page.evaluate(HIGHLIGHT_AFTER_JS, ["Radia", ms]) for ms in (100, 2500))
    assert early["background"] == late["background"] == LIGHT_FLASH, (early, late)
    assert early["animation"] == "highlight-static"
    assert page.evaluate("window.movedRows") == [], "no row may slide"
    assert page.evaluate(ROW_JS, "Radia")["direction"] == "up", "the arrows stay"


# --- long boards: search, follow, announcements -----------------------------------------


def test_search_filters_and_follow_pins_players_to_the_top_across_reloads(server, open_page):
    page = open_page(f"{server.http_url}/boards/demo/")
    search = page.get_by_label("Find a player")
    search.fill("RAD")
    expect(page.locator("tbody.ranking tr:visible [data-field=name]")).to_have_text(["Radia"])
    expect(page.locator("[data-field=found]")).to_have_text("1 of 8 shown")
    search.fill("")
    expect(page.locator("tbody.ranking tr:visible")).to_have_count(8)

    # Keyboard only: from the search box, Tab reaches the first row's star.
    search.focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == "Follow Ada"
    page.keyboard.press("Space")
    page.get_by_role("button", name="Follow Ken").first.click()
    pinned = page.locator("tbody.pinned tr [data-field=name]")
    expect(pinned).to_have_text(["Ada", "Ken"])
    expect(page.get_by_role("button", name="Follow Ken").first).to_have_attribute("aria-pressed", "true")

    page.reload()
    expect(page.locator("[data-connection-state]")).to_have_attribute("data-connection-state", "live")
    expect(pinned).to_have_text(["Ada", "Ken"])
    page.locator("tbody.pinned").get_by_role("button", name="Follow Ada").click()
    expect(pinned).to_have_text(["Ken"])
    assert page.evaluate("localStorage.getItem('scoreboard:followed:demo')") == f"[{ken_id(page)}]"


def ken_id(page: Page) -> int:
    return int(page.locator("tbody.ranking tr", has_text="Ken").get_attribute("data-player-id"))


def test_the_boards_header_and_the_column_titles_stay_on_screen_when_scrolling(server, open_page):
    add_players(server, "long", 40, name="Long league")
    page = open_page(f"{server.http_url}/boards/long/", viewport={"width": 390, "height": 700})
    page.mouse.wheel(0, 2000)
    page.wait_for_function("() => scrollY > 1500")
    bar = page.locator(".board-bar").bounding_box()
    header = page.locator(".standings thead th").first.bounding_box()
    assert bar["y"] == 0 and abs(header["y"] - bar["height"]) <= 1, (bar, header)
    expect(page.locator(".board-bar [data-connection-state]")).to_be_in_viewport()


def test_moves_of_followed_and_leading_players_are_announced_politely(server, database, open_page):
    page = open_page(f"{server.http_url}/boards/demo/")
    region = page.locator("[aria-live=polite][data-field=announcements]")
    page.get_by_role("button", name="Follow Ken").click()
    set_score(server, "Ken", 30)  # 7th -> 5th: followed
    expect(region).to_have_text("Ken up to 5th (was 7th).")
    set_score(server, "Radia", 99)  # 8th -> 1st: the top three and the followed Ken move down
    shows(page, database.standings())
    # Leaders first, at most three named; Guido (6th -> 7th, not followed) is not told at all.
    told = (
        "Radia up to 1st (was 8th). Ada down to 2nd (was 1st). Grace down to 3rd (was 2nd). and 3 more moves."
    )
    expect(region).to_have_text(told, timeout=8000)


# --- the big screen -------------------------------------------------------------------

NAME_FONT_JS = "parseFloat(getComputedStyle(document.querySelector('[data-field=name]')).fontSize)"


def test_the_tv_view_fills_the_screen_without_chrome_or_cursor(server, open_page):
    sizes = {}
    for width, height in ((1920, 1080), (3840, 2160)):
        page = open_page(
            f"{server.http_url}/boards/demo/?view=tv", viewport={"width": width, "height": height}
        )
        sizes[width] = page.evaluate(NAME_FONT_JS)
        assert page.locator(".site-header, .tools, .follow, input").count() == 0
        assert page.evaluate("getComputedStyle(document.body).cursor") == "none"
        table = page.locator(".standings").bounding_box()
        assert table["width"] >= 0.9 * width
    assert sizes[3840] >= 1.5 * sizes[1920], sizes
    assert sizes[1920] >= 48, "readable from 5 m"


def add_players(server: DaphneProcess, slug: str, count: int, *, name: str = "Demo 2") -> None:
    e2e.orm(
        server.env,
        f"b, _ = Board.objects.get_or_create(slug={slug!r}, defaults={{'name': {name!r}}})\n"
        f"[Player.objects.create(board=b, name=f'Player {{i:02d}}', score=i) for i in range({count})]",
    )


def test_the_tv_view_scrolls_a_long_board_a_page_at_a_time(server, open_page):
    add_players(server, "long", 15, name="Long league")
    page = open_page(
        f"{server.http_url}/boards/long/?view=tv",
        viewport={"width": 1280, "height": 720},
        reduced_motion="reduce",
        prepare=lambda page: page.clock.install(),
    )
    bottom = page.evaluate("document.documentElement.scrollHeight - innerHeight")
    assert bottom > 300, "the board is longer than the screen"
    positions = [page.evaluate("scrollY")]
    for _ in range(3):
        page.clock.run_for(8_500)  # a page every 8 s
        positions.append(page.evaluate("scrollY"))
    # Down a screen (here the rest of the board), back to the top after a whole pass, again.
    assert positions == [0, bottom, 0, bottom]


def test_the_tv_view_rotates_between_boards(server, open_page):
    add_players(server, "second", 3)
    page = open_page(f"{server.http_url}/boards/demo/?view=tv&boards=demo,second&every=5")
    expect(page).to_have_url(
        f"{server.http_url}/boards/second/?view=tv&boards=demo,second&every=5", timeout=9000
    )
    expect(page.locator("h1")).to_have_text("Demo 2")
    expect(page).to_have_url(re.compile(r"/boards/demo/\?view=tv"), timeout=9000)


# --- the streaming overlay ------------------------------------------------------------


def test_the_overlay_is_transparent_and_shows_the_top_n(server, database, open_page, tmp_path):
    page = open_page(f"{server.http_url}/boards/demo/?view=overlay&top=3", color_scheme="dark")
    backgrounds = page.evaluate(
        "[document.documentElement, document.body].map((e) => getComputedStyle(e).backgroundColor)"
    )
    assert backgrounds == ["rgba(0, 0, 0, 0)", "rgba(0, 0, 0, 0)"]
    shows(page, database.standings()[:3])
    expect(page.locator("[data-connection-state]")).to_be_hidden()
    set_score(server, "Radia", 40)  # from 8th into the top three
    shows(page, database.standings()[:3])
    # Transparent for OBS: the pixels beside the table have no colour at all.
    from PIL import Image

    path = tmp_path / "overlay.png"
    page.screenshot(path=str(path), omit_background=True)
    image = Image.open(path)
    assert image.mode == "RGBA" and image.getpixel((image.width - 5, image.height - 5))[3] == 0
    assert image.getpixel((60, 70))[3] > 200, "the rows are opaque enough to read"


# --- the embed ------------------------------------------------------------------------


@contextmanager
def embedding_site(board_url: str) -> Iterator[list[str]]:
    """Two other sites (origins on other ports) whose page frames the embed and the board."""
    html = (f'<iframe src="{board_url}embed/"></iframe><iframe src="{board_url}"></iframe>').encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args):
            pass

    sites = [ThreadingHTTPServer(("127.0.0.1", free_port()), Page) for _ in range(2)]
    for site in sites:
        threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        yield [f"http://127.0.0.1:{site.server_port}" for site in sites]
    finally:
        for site in sites:
            site.shutdown()
            site.server_close()


def test_the_embed_is_framed_live_by_an_allowed_origin_only(database, start_daphne, open_page):
    port = free_port()
    with embedding_site(f"http://127.0.0.1:{port}/boards/demo/") as (allowed, other):
        server = start_daphne(server_env(database_url=database.url, LIVE_EMBED_ORIGINS=allowed), port=port)
        page = open_page(f"{allowed}/", live=False)
        embed = page.frame_locator("iframe").first
        expect(embed.locator("[data-connection-state]")).to_have_attribute("data-connection-state", "live")
        expect(embed.locator(".standings tbody.ranking tr")).to_have_count(8)
        assert [frame.url for frame in page.frames[1:]] == [
            f"{server.http_url}/boards/demo/embed/",
            "chrome-error://chromewebdata/",  # the board's own page refuses to be framed
        ]
        headers = page.request.get(f"{server.http_url}/boards/demo/embed/").headers
        assert "x-frame-options" not in headers
        assert f"frame-ancestors {allowed}" in headers["content-security-policy"]

        elsewhere = open_page(f"{other}/", live=False)
        elsewhere.wait_for_load_state("load")
        assert [frame.url for frame in elsewhere.frames[1:]] == ["chrome-error://chromewebdata/"] * 2


# --- no WebSockets: Server-Sent Events -------------------------------------------------


def test_without_websockets_the_page_reads_server_sent_events_and_returns_to_a_websocket(
    server, database, open_page
):
    websockets = {"allowed": False, "refused": 0, "frames": []}
    streams = {"requests": [], "ended": 0}

    def route(socket):
        if not websockets["allowed"]:
            websockets["refused"] += 1
            socket.close()  # closed before it opened, as a proxy that blocks WebSockets does
            return
        server_side = socket.connect_to_server()

        def relay(message):
            websockets["frames"].append(json.loads(message)["type"])
            socket.send(message)

        server_side.on_message(relay)

    def block_websockets(page):
        # Playwright's WebSocket routing stands in for the page's WebSocket class, so it
        # counts attempts and frames here instead of the page's own recorder.
        page.route_web_socket(re.compile(r"/ws/$"), route)  # the tab's one connection
        page.on("request", lambda request: "/events/" in request.url and streams["requests"].append(request))
        page.on("requestfailed", lambda request: "/events/" in request.url and streams.update(ended=1))

    version = database.version()
    page = open_page(f"{server.http_url}/boards/demo/", live=False, prepare=block_websockets)
    badge = page.locator("[data-connection-state]")
    expect(badge).to_have_attribute("data-connection-state", "live")
    expect(badge).to_have_attribute("data-transport", "sse")
    assert websockets["refused"] == 2 and len(streams["requests"]) == 1
    last_event_id = streams["requests"][0].headers.get("last-event-id")
    assert last_event_id == str(version), "the stream resumes from the version the page holds"
    # No snapshot came: the page's score charts (history.js) start from its own standings.
    page.get_by_text("Scores over time").click()
    expect(page.locator(".score-history li[data-player-id]")).to_have_count(8)
    set_score(server, "Radia", 50)
    shows(page, database.standings())
    assert page.evaluate(ROW_JS, "Radia")["direction"] == "up"

    # WebSockets are still tried in the background; once one opens, the page goes back to it.
    wait_until(page, lambda: websockets["refused"] >= 3, seconds=15)
    websockets["allowed"] = True
    expect(badge).to_have_attribute("data-transport", "websocket", timeout=40_000)
    expect(badge).to_have_attribute("data-connection-state", "live")
    wait_until(page, lambda: streams["ended"] == 1, seconds=5)
    set_score(server, "Ken", 60)
    shows(page, database.standings())
    assert websockets["frames"] == ["snapshot", "update"], "the update came by WebSocket"
    assert len(streams["requests"]) == 1, "one stream, closed when the WebSocket took over"


def wait_until(page: Page, condition, *, seconds: float) -> None:
    """Poll a condition on this side, letting Playwright deliver its events meanwhile."""
    for _ in range(int(seconds * 10)):
        if condition():
            return
        page.wait_for_timeout(100)
    pytest.fail("the condition was not met in time")
