"""Take the README's screenshots: the demo board on a phone, a laptop and a 4K TV, in Chromium,
just after a few live changes.

    python -m harness.screenshot [docs/img]

Starts its own redis-server and Daphne on a throwaway database, opens each view, changes
scores from another process and captures the page while the last change is highlighted.
Writes scoreboard-phone.png (dark mode), scoreboard-laptop.png and scoreboard-tv.png (the
3840 x 2160 big-screen view, saved at half size to stay small).
"""

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from harness.browser import launch_chromium
from harness.servers import ROOT, DaphneProcess, RedisServer, manage, server_env, sqlite_database

DEFAULT_OUTPUT = ROOT / "docs" / "img"


@dataclass(frozen=True)
class Shot:
    name: str
    path: str
    viewport: dict
    scale: float = 1
    color_scheme: str = "light"
    follow: tuple[str, ...] = ()
    changes: tuple[tuple[str, int], ...] = field(default=(("Ken", 35), ("Radia", 24), ("Margaret", 44)))


SHOTS = [
    Shot(
        "phone", "/boards/demo/", {"width": 390, "height": 844}, scale=2, color_scheme="dark", follow=("Ken",)
    ),
    Shot("laptop", "/boards/demo/", {"width": 1280, "height": 800}, follow=("Grace",)),
    Shot("tv", "/boards/demo/?view=tv", {"width": 3840, "height": 2160}, scale=0.5),
]
# Every animation jumps to its end, except the last changed row's highlight, held where it is
# still solid; the other rows lose theirs when their animation ends (a frame later).
FREEZE_JS = """async (name) => {
    for (const animation of document.getAnimations()) {
        const row = animation.effect.target;
        const last = row.querySelector?.("[data-field=name]")?.textContent === name;
        if (animation.animationName?.startsWith("highlight") && last) {
            animation.pause();
            animation.currentTime = 1000;
        } else {
            animation.finish();
        }
    }
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
}"""
SET_SCORE = (
    "from live.models import Player; p = Player.objects.get(board__slug='demo', name={name!r}); "
    "p.score = {score}; p.save()"
)
RESET = (
    "from live.models import Player\n"
    "from live.management.commands.seed_demo import DEMO_PLAYERS\n"
    "for name, score in DEMO_PLAYERS:\n"
    "    p = Player.objects.get(board__slug='demo', name=name); p.score = score; p.save()"
)


def capture(page: Page, shot: Shot, env: dict, output: Path) -> None:
    expect(page.locator("[data-connection-state]")).to_have_attribute("data-connection-state", "live")
    for name in shot.follow:
        page.get_by_role("button", name=f"Follow {name}").first.click()
    for name, score in shot.changes:
        version = int(page.locator(".board").get_attribute("data-version"))
        manage("shell", "-v", "0", "-c", SET_SCORE.format(name=name, score=score), env=env)
        expect(page.locator(".board")).to_have_attribute("data-version", str(version + 1))
    # The page highlights a changed row in the animation frame after the update.
    last = shot.changes[-1][0]
    expect(page.locator("tbody.ranking tr.changed", has_text=last)).to_have_count(1)
    page.mouse.move(0, 0)  # no hover left where a star was clicked
    page.evaluate(FREEZE_JS, last)
    page.screenshot(path=str(output / f"scoreboard-{shot.name}.png"))


def take(output: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="scoreboard-screenshot-") as tmp:
        tmp_path = Path(tmp)
        redis = RedisServer(tmp_path).start()
        server = None
        try:
            env = server_env(database_url=sqlite_database(tmp_path), redis_url=redis.url)
            manage("seed_demo", env=env)
            server = DaphneProcess(env=env, tmp_path=tmp_path).start()
            output.mkdir(parents=True, exist_ok=True)
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                for shot in SHOTS:
                    manage("shell", "-v", "0", "-c", RESET, env=env)
                    context = browser.new_context(
                        viewport=shot.viewport, device_scale_factor=shot.scale, color_scheme=shot.color_scheme
                    )
                    page = context.new_page()
                    page.set_default_timeout(10_000)
                    page.goto(f"{server.http_url}{shot.path}")
                    capture(page, shot, env, output)
                    context.close()
                    print(f"Saved {output / f'scoreboard-{shot.name}.png'}")
                browser.close()
        finally:
            if server is not None:
                server.stop()
            redis.stop()


if __name__ == "__main__":
    take(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else DEFAULT_OUTPUT)
