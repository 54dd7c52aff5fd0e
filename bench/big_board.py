"""Big board: 1,000 players with 100-code-point names (tests/big_board.py), on one Daphne.

    python -m bench.big_board       about 2 minutes on 2 cores; never part of `make bench`

Daphne runs with the options of deploy/systemd/daphne@.service (4 KiB inbound limits) and
the Redis PubSub layer; the writer is bench/writer.py (ORM saves in its own process).
Measures:
- the snapshot's size in bytes;
- connect time, handshake started -> snapshot received, over sequential connects: with nobody
  else watching (each connect joins the board and reads it from the database) and while one
  spectator holds the board open (the relay's cached snapshot is sent);
- in headless Chromium, the page's time to apply a one-player update, taken in the page with
  performance.now(): frame received (a listener that runs before the page's own) -> DOM
  updated (the page's message handler returned: a MutationObserver on the board's
  data-version) -> laid out (a forced layout right after, the style and layout work the
  browser must do before it can paint the change). Two kinds of update: a player gains one
  point (passes about 20 tied players) and the last player jumps to the top (all 1,000 rows
  move down one place).
Writes bench/results/<name>.json and, unless --no-docs, the big-board block of
docs/BENCHMARKS.md.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from websockets.sync.client import connect

from bench.lab import LineProcess, percentile, run_scenario, write_block
from harness.big_board import BIG_BOARD_PLAYERS, BIG_BOARD_SLUG, NAME_CODE_POINTS, create_big_board
from harness.servers import (
    DaphneProcess,
    RedisServer,
    origin_of,
    server_env,
    sqlite_database,
    unit_options,
)

BLOCK_START, BLOCK_END = "<!-- bench:big-board:start -->", "<!-- bench:big-board:end -->"
FRAME_BUDGET_MS = 1000 / 60  # one animation frame at 60 Hz

# In the page, before its own script: for every update frame, when it was received, when the
# page's handler had updated the DOM, and when a forced layout of that DOM had finished.
TIMING_JS = """
window.updateTimings = [];
let pending = null;
window.WebSocket = class extends window.WebSocket {
    constructor(...args) {
        super(...args);
        this.addEventListener("message", (event) => {
            pending = { update: event.data.startsWith('{"type":"update"'), received: performance.now() };
        });
    }
};
document.addEventListener("DOMContentLoaded", () => {
    new MutationObserver(() => {
        if (pending === null) return;
        const applied = performance.now();
        void document.body.offsetHeight;
        const laidOut = performance.now();
        if (pending.update) window.updateTimings.push([pending.received, applied, laidOut]);
        pending = null;
    }).observe(document.querySelector(".board"), { attributeFilter: ["data-version"] });
});
"""


def stats(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p95": percentile(ordered, 95),
        "max": ordered[-1],
    }


def connect_times(url: str, count: int) -> tuple[list[float], int]:
    """Milliseconds from opening the TCP connection to having the whole snapshot, one at a time."""
    times, size = [], 0
    for _ in range(count):
        started = time.perf_counter()
        with connect(url, origin=origin_of(url), open_timeout=30, max_size=None) as ws:
            text = ws.recv(timeout=30)
            times.append((time.perf_counter() - started) * 1000)
        size = len(text.encode())
        assert json.loads(text)["type"] == "snapshot"
    return times, size


def page_apply(page_url: str, env: dict, tmp: Path, *, mode: str, updates: int, interval: float) -> dict:
    """Timings of `updates` one-player updates applied by the spectator page in Chromium."""
    from playwright.sync_api import sync_playwright

    from harness.browser import launch_chromium

    with sync_playwright() as playwright, ExitStack() as stack:
        browser = launch_chromium(playwright)
        stack.callback(browser.close)
        page = browser.new_context(viewport={"width": 1000, "height": 700}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.add_init_script(TIMING_JS)
        page.goto(page_url)
        page.wait_for_function(
            "() => document.querySelector('[data-connection-state]').dataset.connectionState === 'live'",
            timeout=60_000,
        )
        writer = LineProcess(
            [sys.executable, "-m", "bench.writer", mode, BIG_BOARD_SLUG], env, tmp / f"writer-{mode}.log"
        )
        stack.callback(writer.stop)
        writer.ask({"count": updates, "interval": interval})
        page.wait_for_function(f"() => window.updateTimings.length >= {updates}", timeout=300_000)
        timings = page.evaluate("window.updateTimings")
    apply = [applied - received for received, applied, _ in timings]
    laid_out = [done - received for received, _, done in timings]
    row = {
        "mode": mode,
        "updates": len(timings),
        "interval_s": interval,
        "apply_ms": stats(apply),
        "apply_and_layout_ms": stats(laid_out),
        "within_frame": sum(t <= FRAME_BUDGET_MS for t in laid_out),
        "page_errors": errors,
    }
    print(
        f"page, {mode}: received -> DOM updated p50 {row['apply_ms']['p50']:.1f} "
        f"p95 {row['apply_ms']['p95']:.1f} ms; -> laid out p50 {row['apply_and_layout_ms']['p50']:.1f} "
        f"p95 {row['apply_and_layout_ms']['p95']:.1f} ms; {row['within_frame']}/{len(timings)} within "
        f"{FRAME_BUDGET_MS:.1f} ms",
        flush=True,
    )
    return row


def run(*, connects: int, updates: int, interval: float) -> dict:
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_start": "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg()),
        "players": BIG_BOARD_PLAYERS,
        "name_code_points": NAME_CODE_POINTS,
        "daphne_options": unit_options(),
    }
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-big-")))
        redis = RedisServer(tmp).start()
        stack.callback(redis.stop)
        env = server_env(
            database_url=sqlite_database(tmp), redis_url=redis.url, layer="pubsub", LIVE_LOG_LEVEL="WARNING"
        )
        create_big_board(env)
        daphne = DaphneProcess(env=env, tmp_path=tmp, options=tuple(unit_options())).start()
        stack.callback(daphne.stop)
        url = f"{daphne.ws_url}/ws/boards/{BIG_BOARD_SLUG}/"
        connect_times(url, 2)  # warm-up: lazy imports, the first database connection

        cold, size = connect_times(url, connects)
        with connect(url, origin=origin_of(url), max_size=None) as holder:
            holder.recv(timeout=30)
            warm, _ = connect_times(url, connects)
        results["snapshot_bytes"] = size
        results["connect_ms"] = {"alone": stats(cold), "board_watched": stats(warm)}
        print(
            f"snapshot {size:,} bytes; connect -> snapshot, alone p50 {stats(cold)['p50']:.1f} "
            f"p95 {stats(cold)['p95']:.1f} ms; board watched p50 {stats(warm)['p50']:.1f} "
            f"p95 {stats(warm)['p95']:.1f} ms",
            flush=True,
        )
        page_url = f"{daphne.http_url}/boards/{BIG_BOARD_SLUG}/"
        results["page"] = [
            page_apply(page_url, env, tmp, mode=mode, updates=updates, interval=interval)
            for mode in ("orm", "orm-to-top")
        ]
    return results


def ms(value: float) -> str:
    return f"{value:.1f}"


def block(results: dict) -> str:
    connects = results["connect_ms"]
    lines = [
        f"Run: {results['started']}, {results['machine']['cpus']} CPUs, Python "
        f"{results['machine']['python']}, load average at start {results['loadavg_start']}. "
        f"{results['players']:,} players, names of {results['name_code_points']} code points; "
        f"Daphne `{' '.join(results['daphne_options'])}`, Redis PubSub.",
        "",
        f"Snapshot: **{results['snapshot_bytes']:,} bytes**.",
        "",
        "| connect → snapshot received | connects | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, key in (
        ("nobody else watching (database read)", "alone"),
        ("board watched (cached)", "board_watched"),
    ):
        row = connects[key]
        lines.append(f"| {label} | {row['n']} | {ms(row['p50'])} | {ms(row['p95'])} | {ms(row['max'])} |")
    lines += [
        "",
        "| page, one-player update | updates | received → DOM updated p50 / p95 / max ms "
        "| received → laid out p50 / p95 / max ms | within 16.7 ms |",
        "|---|---:|---|---|---:|",
    ]
    labels = {
        "orm": "+1 point (passes ~20 tied players)",
        "orm-to-top": "last player to the top (1,000 rows move)",
    }
    for row in results["page"]:
        a, b = row["apply_ms"], row["apply_and_layout_ms"]
        lines.append(
            f"| {labels[row['mode']]} | {row['updates']} | {ms(a['p50'])} / {ms(a['p95'])} / {ms(a['max'])} "
            f"| {ms(b['p50'])} / {ms(b['p95'])} / {ms(b['max'])} | {row['within_frame']}/{row['updates']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=50, help="connects per kind (default 50)")
    parser.add_argument("--updates", type=int, default=50, help="updates per kind (default 50)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between updates")
    parser.add_argument("--name", default="big-board", help="results file name (default: big-board)")
    run_scenario(
        parser,
        lambda args: run(connects=args.connects, updates=args.updates, interval=args.interval),
        lambda results: write_block(BLOCK_START, BLOCK_END, block(results)),
    )


if __name__ == "__main__":
    main()
