"""No axe-core violation of impact serious or critical on any page, in real Chromium.

axe-core comes from the npm registry (tests/axe/package.json, locked by its package-lock.json);
`npm ci` installs it on first use. Playwright injects it into each page with a context that
bypasses the Content-Security-Policy, for the check only: the pages themselves never allow
inline or foreign script.
"""

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from harness.servers import ROOT, DaphneProcess, server_env
from tests import test_e2e_browser as e2e
from tests.test_e2e_views import set_score, shows

pytestmark = pytest.mark.e2e

browser = e2e.browser
template_database = e2e.template_database
database = e2e.database

AXE_DIR = ROOT / "tests" / "axe"
AXE = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
# The violations of impact serious or critical, each with the elements and what fails.
RUN_AXE_JS = """async (selector) => {
    const context = selector ? { include: [selector] } : document;
    const results = await axe.run(context, { resultTypes: ["violations"] });
    return results.violations
        .filter((violation) => ["serious", "critical"].includes(violation.impact))
        .map((violation) => ({
            rule: violation.id,
            impact: violation.impact,
            nodes: violation.nodes.map((node) => `${node.target.join(" ")}: ${node.failureSummary}`),
        }));
}"""


@pytest.fixture(scope="session")
def axe() -> Path:
    """axe.min.js, installed from tests/axe/package-lock.json with `npm ci` when missing."""
    if not AXE.exists():
        npm = shutil.which("npm")
        if npm is None:
            reason = "npm is missing (apt-get install npm): axe-core cannot be installed"
            if os.environ.get("CI"):
                pytest.fail(f"{reason}; CI must run the accessibility checks")
            pytest.skip(reason)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=AXE_DIR, check=True, timeout=300
        )
    return AXE


@pytest.fixture
def server(database, start_daphne) -> DaphneProcess:
    return start_daphne(server_env(database_url=database.url, LIVE_EMBED_ORIGINS="https://club.example"))


@pytest.fixture
def audit(browser, axe):
    """Returns audit(url, color_scheme=..., before=None) -> the page, checked by axe once loaded."""
    contexts = []

    def open_page(url: str, *, color_scheme: str = "light", viewport=None) -> Page:
        context = browser.new_context(
            bypass_csp=True, color_scheme=color_scheme, viewport=viewport or {"width": 1000, "height": 700}
        )
        contexts.append(context)
        context.set_default_timeout(e2e.TIMEOUT_MS)
        page = context.new_page()
        page.goto(url)
        badge = page.locator("[data-connection-state]")
        if badge.count():
            expect(badge).to_have_attribute("data-connection-state", "live")
        page.add_script_tag(path=str(axe))
        return page

    yield open_page
    for context in contexts:
        context.close()


def violations(page: Page, selector: str | None = None) -> list[dict]:
    return page.evaluate(RUN_AXE_JS, selector)


def history_url(server: DaphneProcess) -> str | None:
    """The board's history page, where this version of the project has one."""
    url = f"{server.http_url}/boards/demo/history/"
    try:
        with urllib.request.urlopen(url, timeout=10):
            return url
    except urllib.error.HTTPError:
        return None


PAGES = {
    "board list": ("/", "light"),
    "board, light": ("/boards/demo/", "light"),
    "board, dark": ("/boards/demo/", "dark"),
    "tv": ("/boards/demo/?view=tv", "light"),
    "tv, dark": ("/boards/demo/?view=tv", "dark"),
    "overlay": ("/boards/demo/?view=overlay&top=5", "dark"),
    "embed": ("/boards/demo/embed/", "light"),
    "embed, dark": ("/boards/demo/embed/", "dark"),
    "board, phone": ("/boards/demo/", "light"),
}


@pytest.mark.parametrize("name", PAGES)
def test_no_serious_or_critical_violation(server, audit, name):
    path, scheme = PAGES[name]
    viewport = {"width": 390, "height": 844} if "phone" in name else None
    page = audit(f"{server.http_url}{path}", color_scheme=scheme, viewport=viewport)
    assert violations(page) == []


def test_the_history_page_if_there_is_one(server, audit):
    url = history_url(server)
    if url is None:
        pytest.skip("no /boards/<slug>/history/ in this version")
    assert violations(audit(url)) == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_violation_while_a_change_is_highlighted(server, database, audit, scheme):
    """The highlight, the arrows and the deltas keep their contrast."""
    page = audit(f"{server.http_url}/boards/demo/", color_scheme=scheme)
    page.get_by_role("button", name="Follow Ken").click()  # a pinned row too
    set_score(server, "Radia", 50)
    shows(page, database.standings())
    expect(page.locator("tr.changed")).to_have_count(1)
    assert violations(page) == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("state", ["live", "stale", "reconnecting", "offline"])
def test_every_connection_state_is_readable(server, audit, state, scheme):
    page = audit(f"{server.http_url}/boards/demo/", color_scheme=scheme)
    page.evaluate(
        "(state) => { const badge = document.querySelector('[data-connection-state]');"
        " badge.dataset.connectionState = state; badge.textContent = state; }",
        state,
    )
    assert violations(page, ".status") == []
