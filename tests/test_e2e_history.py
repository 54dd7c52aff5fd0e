"""End to end, in real Chromium against a real Daphne: the spectator page's score charts follow
the live updates, the timeline lists every change, and the admin's Changes, Undo and import
pages run under the Content-Security-Policy without a single violation."""

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.test_e2e_browser import (  # noqa: F401 - fixtures
    STAFF_PASSWORD,
    STAFF_USER,
    TIMEOUT_MS,
    browser,
    database,
    expect_saved,
    orm,
    save_score_in_change_form,
    server,
    spectate,
    template_database,
)

pytestmark = pytest.mark.e2e

CHART_ROW = ".score-history li[data-player-id]"


def watch_csp(page: Page) -> list[str]:
    """Every Content-Security-Policy violation the page reports (Chromium logs each one)."""
    violations: list[str] = []
    page.on("console", lambda m: "Content Security Policy" in m.text and violations.append(m.text))
    return violations


@pytest.fixture
def admin(browser, server) -> Iterator[tuple[Page, list[str]]]:  # noqa: F811
    """A staff member's page in the admin, and the CSP violations it reports."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    violations = watch_csp(page)
    page.goto(f"{server.http_url}/admin/login/?next=/admin/")
    page.fill("#id_username", STAFF_USER)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{server.http_url}/admin/")
    yield page, violations
    context.close()


def chart(spectator, name: str):
    return spectator.page.locator(CHART_ROW).filter(has_text=name)


def test_each_player_has_a_score_chart_that_follows_live_updates(server, database, spectate, admin):  # noqa: F811
    orm(server.env, "p = Player.objects.get(name='Ken'); p.score = 20; p.save(); p.score = 25; p.save()")
    spectator = spectate(f"{server.http_url}/boards/demo/")
    violations = watch_csp(spectator.page)
    spectator.page.reload()  # watched from its first byte
    spectator.page.get_by_text("Scores over time").click()

    rows = spectator.page.locator(CHART_ROW)
    expect(rows).to_have_count(8)
    ken = chart(spectator, "Ken")
    expect(ken.locator("svg")).to_have_attribute("data-points", "3")  # added, then two changes
    expect(ken.locator("polyline")).to_have_attribute("points", re.compile(r"^[\d., ]+$"))
    expect(ken.locator("time")).to_have_attribute("datetime", re.compile(r"^20\d\d-.*Z$"))
    first_time = ken.locator("time").get_attribute("datetime")
    assert first_time is not None

    page, _ = admin
    save_score_in_change_form(page, server.http_url, "Ken", 40)
    expect_saved(page, "was changed successfully")

    expect(ken.locator("svg")).to_have_attribute("data-points", "4")
    assert ken.locator("time").get_attribute("datetime") > first_time
    expect(rows.first).to_contain_text("Ada")  # in rank order, as the table
    expect(rows.nth(1)).to_contain_text("Ken")
    assert violations == []


def test_the_timeline_lists_the_changes_newest_first(server, database, spectate):  # noqa: F811
    orm(server.env, "p = Player.objects.get(name='Ken'); p.score = 20; p.save()")
    spectator = spectate(f"{server.http_url}/boards/demo/")
    spectator.page.get_by_role("link", name="Every change").click()
    changes = spectator.page.locator(".changes > li")
    expect(changes).to_have_count(2)
    expect(changes.first).to_contain_text("Ken 14 → 20")
    expect(changes.nth(1)).to_contain_text("board created")


def test_undo_in_the_changes_list_reaches_the_spectator(server, database, spectate, admin):  # noqa: F811
    spectator = spectate(f"{server.http_url}/boards/demo/")
    spectator.shows(database.standings())
    before = database.standings()
    page, violations = admin
    save_score_in_change_form(page, server.http_url, "Radia", 50)
    spectator.shows(database.standings(changing={"Radia": 50}))

    page.goto(f"{server.http_url}/admin/live/change/")
    page.locator("#result_list tbody tr").first.locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", "undo")
    page.click("button[name=index]")

    expect(page.locator(".messagelist .success")).to_contain_text("Version 2 of “Demo league” undone")
    spectator.shows(before)
    expect(page.locator("#result_list tbody tr").first).to_contain_text("undo of version 2; Radia 50 → 9")
    assert violations == []


def test_import_and_export_run_without_csp_violations(server, database, spectate, admin, tmp_path):  # noqa: F811
    spectator = spectate(f"{server.http_url}/boards/demo/")
    page, violations = admin
    page.goto(f"{server.http_url}/admin/live/player/")
    page.get_by_role("link", name="Export").click()
    page.select_option("#id_format", label="csv")
    with page.expect_download() as download:
        page.click("input[type=submit]")
    exported = download.value.path().read_text(encoding="utf-8-sig")
    assert exported.splitlines()[0] == "id,board,name,score"

    upload = tmp_path / "players.csv"
    ken = database.player_id("Ken")
    upload.write_text(f"id,board,name,score\n{ken},demo,Ken,70\n,demo,Hedy,3\n")
    page.goto(f"{server.http_url}/admin/live/player/")
    page.get_by_role("link", name="Import").click()
    page.set_input_files("#id_import_file", str(upload))
    expect(page.locator("#id_format")).to_have_value("0")  # import-export's script guessed csv
    page.click("input[type=submit]")
    expect(page.locator("table.import-preview")).to_contain_text("Hedy")
    version = database.version()
    page.click("input[name=confirm]")

    expect(page.locator(".messagelist .success")).to_contain_text("1 new, 1 updated")
    spectator.shows(database.standings())
    assert database.version() == version + 1
    updates = [u for u in spectator.updates() if u["version"] > version]
    assert [u["version"] for u in updates] == [version + 1], "one frame for the import"
    assert violations == []
