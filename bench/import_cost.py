"""What a 1,000-row players import costs through the admin's confirm step, on one real Daphne.

    python -m bench.import_cost [--rows 1000] [--runs 3]      about a minute on 2 cores

A staff member (real HTTP session, harness/staff.py) uploads a CSV on the import page (the
preview: import-export's dry run) and confirms it, while a spectator (a `websockets` client)
watches the board. Two kinds of import: ROWS new players, then the same players each with a
new score. For each: the preview's and the confirm's time (request sent -> response
received, the confirm's redirect included), confirm -> the spectator's update frame, how
many frames the spectator received for it and their size in bytes (UTF-8), and the board's
versions. Daphne runs with the options of deploy/systemd/daphne@.service, the in-memory
channel layer and a SQLite file. Prints the numbers; docs/BENCHMARKS.md quotes them.
"""

import argparse
import csv
import io
import json
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

from harness.admin_pages import AdminForm
from harness.servers import DaphneProcess, server_env, unit_options
from harness.staff import Staff, prepare_database

IMPORT = "/admin/live/player/import/"
CONFIRM = "/admin/live/player/process_import/"


class Spectator(threading.Thread):
    """Receives every frame of the demo board, with the time it arrived."""

    def __init__(self, daphne: DaphneProcess) -> None:
        super().__init__(daemon=True)
        self.daphne = daphne
        self.frames: list[tuple[float, str]] = []
        self.connected = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        url = f"{self.daphne.ws_url}/ws/boards/demo/"
        with connect(url, origin=self.daphne.http_url, max_size=None) as socket:
            self.connected.set()
            while not self.stopping.is_set():
                try:
                    text = socket.recv(timeout=0.2)
                except TimeoutError:
                    continue
                self.frames.append((time.perf_counter(), text))

    def start(self) -> None:
        super().start()
        if not self.connected.wait(10):
            raise TimeoutError("the spectator could not connect")

    def updates_after(self, started: float) -> list[tuple[float, str]]:
        return [(at, text) for at, text in self.frames if at >= started and '"type":"update"' in text]

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def players_csv(rows: list[tuple]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([("id", "board", "name", "score"), *rows])
    return out.getvalue().encode()


def version(daphne: DaphneProcess) -> int:
    with urllib.request.urlopen(f"{daphne.http_url}/api/boards/demo/", timeout=30) as response:
        return json.load(response)["version"]


def snapshot(daphne: DaphneProcess) -> list[dict]:
    with urllib.request.urlopen(f"{daphne.http_url}/api/boards/demo/", timeout=30) as response:
        return json.load(response)["players"]


def run_import(staff: Staff, daphne: DaphneProcess, spectator: Spectator, content: bytes) -> dict:
    """Preview, then confirm, one file; the costs of each step."""
    page = staff.open(IMPORT, None).set("format", "0")
    before = version(daphne)
    started = time.perf_counter()
    status, preview = staff.upload(
        IMPORT, page.submit(None), file_field="import_file", filename="players.csv", content=content
    )
    previewed = time.perf_counter()
    assert status == 200 and "Confirm import" in preview, preview[-3000:]
    assert version(daphne) == before, "the preview bumped the version"
    confirm = AdminForm(preview, None).submit("confirm", "Confirm import")
    sent = time.perf_counter()
    status, _ = staff.request(CONFIRM, confirm)
    answered = time.perf_counter()
    assert status == 302, f"the confirm answered {status}"
    time.sleep(2)  # any further frame would have arrived by now
    updates = spectator.updates_after(sent)
    return {
        "preview_s": previewed - started,
        "confirm_s": answered - sent,
        "confirm_to_frame_s": updates[0][0] - sent if updates else None,
        "frames": len(updates),
        "frame_bytes": [len(text.encode()) for _, text in updates],
        "players_in_frame": [len(json.loads(text)["players"]) for _, text in updates],
        "versions": version(daphne) - before,
    }


def measure(rows: int, runs: int) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {"new": [], "update": []}
    for run in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
            tmp_path = Path(tmp)
            url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
            prepare_database(url)
            daphne = DaphneProcess(
                env=server_env(database_url=url), tmp_path=tmp_path, options=unit_options()
            )
            daphne.start()
            try:
                staff = Staff(daphne.http_url, "staff1").log_in()
                spectator = Spectator(daphne)
                spectator.start()
                try:
                    new = players_csv([("", "demo", f"Imported {n:04}", n % 100) for n in range(rows)])
                    results["new"].append(run_import(staff, daphne, spectator, new))
                    imported = [p for p in snapshot(daphne) if p["name"].startswith("Imported ")]
                    changed = players_csv([(p["id"], "demo", p["name"], p["score"] + 1) for p in imported])
                    results["update"].append(run_import(staff, daphne, spectator, changed))
                finally:
                    spectator.stop()
            finally:
                daphne.stop()
        print(f"run {run + 1}/{runs} done")
    return results


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def report(rows: int, results: dict[str, list[dict]]) -> None:
    runs = len(results["new"])
    print(f"\n{rows:,}-row imports through the admin (one Daphne, SQLite, in-memory layer), median of {runs}")
    print(
        "| import | preview (dry run) | confirm (POST -> redirect) | confirm -> spectator's frame "
        "| frames | frame bytes | versions |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, label in [("new", f"{rows:,} new players"), ("update", f"{rows:,} changed scores")]:
        done = results[kind]
        frames = sorted({r["frames"] for r in done})
        sizes = sorted({size for r in done for size in r["frame_bytes"]})
        versions = sorted({r["versions"] for r in done})
        print(
            f"| {label} | {median(done, 'preview_s'):.2f} s | {median(done, 'confirm_s'):.2f} s "
            f"| {median(done, 'confirm_to_frame_s'):.2f} s | {', '.join(map(str, frames))} "
            f"| {', '.join(f'{s:,}' for s in sizes)} | {', '.join(map(str, versions))} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    report(args.rows, measure(args.rows, args.runs))


if __name__ == "__main__":
    main()
