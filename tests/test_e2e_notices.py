"""`manage.py notify` in real Chromium: every open page of the user shows the notice, as text."""

import os
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from harness.browser import CHROMIUM, launch_chromium
from harness.deployment import Deployment
from harness.servers import manage
from harness.staff import Staff

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

TIMEOUT_MS = 10_000
NOTICE = 'Final at 18:00 <img src=x onerror="window.injected = 1"> in hall B'


@pytest.fixture
def site(tmp_path, prepared_sqlite, redis_url):
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(prepared_sqlite) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
    site = Deployment(tmp_path, layer="pubsub", database_url=f"sqlite:///{path}")
    try:
        site.start_daphne()
        site.start_daphne()
        yield site
    finally:
        site.stop()


def test_a_notice_shows_on_every_open_page_of_its_user_and_on_no_other(site):
    session = Staff(site.daphnes[0].http_url, "staff1").log_in().session
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        member = browser.new_context()
        member.add_cookies([{"name": "sessionid", "value": session, "url": site.daphnes[0].http_url}])
        stranger = browser.new_context()
        pages = [member.new_page(), member.new_page(), stranger.new_page()]
        for page, daphne in zip(pages, [*site.daphnes, site.daphnes[0]], strict=True):
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{daphne.http_url}/boards/demo/")
            expect(page.locator("[data-connection-state]")).to_have_attribute("data-connection-state", "live")

        manage("notify", "--user", "staff1", NOTICE, env=site.env)

        for page in pages[:2]:  # a tab on each server process
            region = page.locator(".member-notices")
            expect(region).to_have_attribute("role", "status")
            expect(region).to_have_attribute("aria-live", "polite")
            expect(region.locator(".member-notice p")).to_have_text(NOTICE)
            assert region.locator("img").count() == 0
            assert page.evaluate("window.injected") is None
        assert pages[2].locator(".member-notice").count() == 0

        pages[0].get_by_role("button", name="Dismiss").click()
        expect(pages[0].locator(".member-notice")).to_have_count(0)
        expect(pages[1].locator(".member-notice")).to_have_count(1)
        browser.close()
