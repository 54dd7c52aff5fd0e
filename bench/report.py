"""Turn a results JSON into the table block of docs/BENCHMARKS.md and the latency plot."""

import json
import math
import sys
from pathlib import Path

from bench.lab import PLOT, RESULTS, TABLE_END, TABLE_START, table, write_block

LABELS = {
    "reference": "reference (websockets)",
    "socketio": "Socket.IO 4 (Node)",
    "inmemory": "in-memory",
    "pubsub": "redis PubSub",
    "pubsub-asgi": "redis PubSub, ASGI send (before)",
    "core": "redis core",
}
REFERENCES = ("reference", "socketio")


def ms(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def gaps(row: dict) -> int:
    """Updates that skipped a version; frames at or below the current version are stale, not gaps."""
    return row["order_errors"] - row.get("duplicates", 0)


def fanout_table(rows: list[dict]) -> str:
    by = {(r["layer"], r["processes"], r["n"]): r for r in rows}
    body = []
    for r in sorted(rows, key=lambda r: (r["n"], list(LABELS).index(r["layer"]), r["processes"])):
        ours = r["layer"] not in REFERENCES
        storm = r.get("storm")
        body.append(
            [
                f"{r['n']:,}",
                LABELS[r["layer"]],
                r["processes"] if ours else "-",
                ms(r["p50_ms"]),
                ms(r["p99_ms"]),
                ms(r["max_ms"]),
                ratio(r, by.get(("reference", 1, r["n"])), ours),
                ratio(r, by.get(("socketio", 1, r["n"])), ours),
                ratio(r, by.get((r["layer"], 1, r["n"])), r["processes"] > 1),
                f"{100 * r['delivered'] / r['expected']:.2f}%" if r["expected"] else "-",
                gaps(r),
                r.get("resyncs", 0),
                f"{r['rss_per_conn_kb']:.1f}",
                f"{r['setup_per_s']:.0f}",
                number(r.get("server_cpu_us_per_frame")),
                number(r.get("server_us_per_frame")),
                number(storm["seconds"]) if storm else "-",
            ]
        )
    return table(
        "N:r|server:l|procs:r|p50 ms:r|p99 ms:r|max ms:r|p99 / reference:r|p99 / Socket.IO:r|p99 / 1 proc:r"
        "|delivered:r|gaps:r|resyncs:r|RSS/conn KB:r|connects /s:r|server CPU µs/frame:r"
        "|fan-out µs/frame:r|storm s:r",
        body,
    )


def ratio(row: dict, other: dict | None, wanted: bool) -> str:
    return f"{row['p99_ms'] / other['p99_ms']:.2f}x" if wanted and other and other["p99_ms"] else "-"


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def writers_table(rows: list[dict]) -> str:
    body = [
        [
            r["writers"],
            r["changes"],
            f"{r['n']:,}",
            ms(r["p50_ms"]),
            ms(r["p99_ms"]),
            f"{r['delivered']:,}/{r['expected']:,}",
            gaps(r),
            r["resyncs"],
            f"{r['relay_catch_ups']:.0f}",
            f"{r['relay_resyncs']:.0f}",
        ]
        for r in rows
    ]
    return table(
        "writers:r|changes:r|N:r|p50 ms:r|p99 ms:r|delivered:r|gaps seen by clients:r|client resyncs:r"
        "|relay catch-ups:r|relay resyncs:r",
        body,
    )


def targets(results: dict) -> str:
    """Issue 10's targets, each met or not, from this run (one Daphne process, PubSub)."""
    by = {(r["layer"], r["processes"], r["n"]): r for r in results.get("fanout", [])}
    lines = []

    def check(label: str, met: bool | None, numbers: str) -> None:
        verdict = "n/a (not measured)" if met is None else "**met**" if met else "**not met**"
        lines.append(f"- {label}: {verdict} ({numbers})")

    for n, factor in ((1000, 1.5), (5000, 2.0), (10000, 2.5)):
        ours, ref, sio = (by.get((layer, 1, n)) for layer in ("pubsub", "reference", "socketio"))
        if not (ours and ref):
            continue
        met = ours["p99_ms"] <= factor * ref["p99_ms"] and ours["delivered"] == ours["expected"]
        numbers = f"p99 {ms(ours['p99_ms'])} ms vs reference {ms(ref['p99_ms'])} ms"
        if n == 1000 and sio:
            met = met and ours["p99_ms"] <= sio["p99_ms"]
            numbers += f" and Socket.IO {ms(sio['p99_ms'])} ms"
        numbers += f"; delivered {ours['delivered']:,}/{ours['expected']:,}"
        label = f"{n:,} spectators: p99 ≤ {factor}× reference" + (" and ≤ Socket.IO" if n == 1000 else "")
        check(label, met, numbers)
    ours = [r for r in results.get("fanout", []) if r["layer"] == "pubsub" and r["processes"] == 1]
    if ours:
        top = max(ours, key=lambda r: r["n"])
        rate = top["setup_per_s"]
        check("connects ≥ 1,000/s", rate >= 1000, f"{rate:.0f}/s at N = {top['n']:,}")
        check(
            "RSS ≤ 30 KB per idle connection",
            top["rss_per_conn_kb"] <= 30,
            f"{top['rss_per_conn_kb']:.1f} KB at N = {top['n']:,}",
        )
        storm = top.get("storm")
        if storm:
            check(
                f"{storm['n']:,} dropped spectators all resynced ≤ 15 s",
                storm["seconds"] <= 15 and storm["reopened"] == storm["n"],
                f"{storm['seconds']:.1f} s, {storm['reopened']:,} reconnected",
            )
    for r in results.get("two_writers", []):
        check(
            "two writers: no resync caused by reordering",
            r["resyncs"] == 0 and gaps(r) == 0,
            f"{r['resyncs']} client resyncs, {gaps(r)} gaps, {r['relay_catch_ups']:.0f} relay catch-ups",
        )
    return "\n".join(lines)


def burst_table(rows: list[dict]) -> str:
    body = [
        [
            LABELS[r["layer"]],
            f"{r['n']:,}",
            f"{r['rate_asked']} ({r['rate_achieved']:.0f})",
            r["seconds"],
            ms(r["p50_ms"]),
            ms(r["p95_ms"]),
            ms(r["p99_ms"]),
            ms(r["max_ms"]),
            f"{r['delivered']:,}/{r['expected']:,}",
            gaps(r),
            f"{r['max_rss_mb']:.0f}",
            f"{r['server_cpu_pct']:.0f}",
        ]
        for r in rows
    ]
    return table(
        "server:l|N:r|changes/s (achieved):r|seconds:r|p50 ms:r|p95 ms:r|p99 ms:r|max ms:r|delivered:r"
        "|gaps:r|max RSS MB:r|server CPU %:r",
        body,
    )


def slow_table(rows: list[dict]) -> str:
    body = []
    for r in rows:
        cap = "off (0)" if r["send_buffer_limit"] == 0 else "1 MiB (default)"
        stalled = r["stalled"]
        if stalled["socket_error"] == "ConnectionResetError" or stalled["close_code"]:
            fate = f"closed by the server (close {stalled['close_code'] or 'frame lost, TCP reset'})"
        else:
            megabytes = stalled["bytes"] / 2**20
            fate = f"kept open; {stalled['frames_received']} frames ({megabytes:.1f} MB) buffered for it"
        body.append(
            [
                cap,
                f"{ms(r['p50_ms'])} / {ms(r['p99_ms'])} / {ms(r['max_ms'])}",
                f"{r['delivered']:,}/{r['expected']:,}",
                f"{r['rss_start_mb']:.0f} → {r['rss_max_mb']:.0f} → {r['rss_end_mb']:.0f}",
                fate,
                f"snapshot at v{r['resync_version']} (latest v{r['latest_version']})",
            ]
        )
    return table(
        "send-buffer cap:l|others p50 / p99 / max ms:l|others delivered:r|server RSS start → max → end MB:l"
        "|stalled spectator:l|resynced on reconnect:l",
        body,
    )


def block(results: dict) -> str:
    parts = [
        f"Run: {results['started']}, {results['seconds']:.0f} s, {results['machine']['cpus']} CPUs, Python "
        f"{results['machine']['python']}, {results['client_processes']} spectator processes, load average "
        f"at start {results.get('loadavg_start', 'n/a')}. Latency is commit → receipt over every spectator "
        "and change.",
    ]
    if results.get("fanout"):
        parts += ["", "### Fan-out", "", fanout_table(results["fanout"])]
    if results.get("fanout"):
        parts += ["", "### Targets", "", targets(results)]
    if results.get("two_writers"):
        parts += ["", "### Two writers committing at once", "", writers_table(results["two_writers"])]
    if results.get("burst"):
        parts += ["", "### Burst", "", burst_table(results["burst"])]
    if results.get("slow"):
        parts += ["", "### Stalled spectator", "", slow_table(results["slow"])]
    return "\n".join(parts)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    series = sorted(
        {(r["layer"], r["processes"]) for r in rows}, key=lambda k: (list(LABELS).index(k[0]), k[1])
    )
    for axis, key in zip(axes, ("p50_ms", "p99_ms"), strict=True):
        for layer, processes in series:
            points = sorted(
                (r["n"], r[key]) for r in rows if (r["layer"], r["processes"]) == (layer, processes)
            )
            label = LABELS[layer] + ("" if layer in REFERENCES else f" x{processes}")
            style = {"reference": "k--", "socketio": "k:"}.get(layer, "-")
            axis.plot([n for n, _ in points], [v for _, v in points], style, marker="o", label=label)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("spectators (N)")
        axis.set_title(f"{key[:3]} latency, commit → receipt")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def write_docs(results: dict) -> None:
    write_block(TABLE_START, TABLE_END, block(results))
    if results.get("fanout"):
        plot(results["fanout"], PLOT)
        print(f"updated {PLOT}")


if __name__ == "__main__":
    write_docs(json.loads((RESULTS / f"{sys.argv[1] if len(sys.argv) > 1 else 'full'}.json").read_text()))
