"""Take the README's screenshot: the demo board in Chromium, just after a few live changes.

    python -m harness.screenshot [docs/img/scoreboard.png]

Starts its own redis-server and Daphne on a throwaway database, opens the spectator page,
changes scores from another process and captures the page as an update lands.
"""

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from harness.browser import launch_chromium
from harness.servers import ROOT, DaphneProcess, RedisServer, manage, server_env, sqlite_database

DEFAULT_OUTPUT = ROOT / "docs" / "img" / "scoreboard.png"
VIEWPORT = {"width": 1000, "height": 700}
# Changes committed one by one while the page is open; the last one is caught mid-flash.
LIVE_CHANGES = [("Ken", 35), ("Radia", 24), ("Margaret", 44)]
FLASH_AT_MS = 250
# Every animation jumps to its end, except the flash of the last changed row.
FREEZE_JS = """({name, at}) => document.getAnimations().forEach((animation) => {
    const row = animation.effect.target;
    if (animation.animationName === "flash" && row.querySelector("[data-field=name]").textContent === name) {
        animation.pause();
        animation.currentTime = at;
    } else {
        animation.finish();
    }
})"""
SET_SCORE = (
    "from live.models import Player; p = Player.objects.get(board__slug='demo', name={name!r}); "
    "p.score = {score}; p.save()"
)


def take(output: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="scoreboard-screenshot-") as tmp:
        tmp_path = Path(tmp)
        redis = RedisServer(tmp_path).start()
        server = None
        try:
            env = server_env(database_url=sqlite_database(tmp_path), redis_url=redis.url)
            manage("seed_demo", env=env)
            server = DaphneProcess(env=env, tmp_path=tmp_path).start()
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = browser.new_page(viewport=VIEWPORT, color_scheme="light", device_scale_factor=1)
                page.set_default_timeout(10_000)
                page.goto(f"{server.http_url}/boards/demo/")
                expect(page.locator("[data-connection-state]")).to_have_attribute(
                    "data-connection-state", "live"
                )
                for name, score in LIVE_CHANGES:
                    version = int(page.locator(".board").get_attribute("data-version"))
                    manage("shell", "-v", "0", "-c", SET_SCORE.format(name=name, score=score), env=env)
                    expect(page.locator(".board")).to_have_attribute("data-version", str(version + 1))
                # The page flashes a changed row in the animation frame after the update.
                expect(page.locator("tr.changed", has_text=LIVE_CHANGES[-1][0])).to_have_count(1)
                # Freeze the moment: the re-ordering done, the changed row still highlighted.
                page.evaluate(FREEZE_JS, {"name": LIVE_CHANGES[-1][0], "at": FLASH_AT_MS})
                output.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(output))
                browser.close()
        finally:
            if server is not None:
                server.stop()
            redis.stop()
    print(f"Saved {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")


if __name__ == "__main__":
    take(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else DEFAULT_OUTPUT)
