"""Server-Sent Events against WebSockets: memory per spectator and fan-out latency at N = 1,000.

    python -m bench.sse          about 2 minutes on 2 cores; not part of `make bench`

For each transport in turn, twice (WebSocket, SSE, WebSocket, SSE), a fresh Daphne (as in
bench/run.py: a listen backlog of 4,096; Redis PubSub) and 4 client processes
(bench/spectators.py: `websockets` connections, or raw HTTP/1.1 streams for SSE) holding N
spectators of the demo board. Measured as in bench/run.py: server RSS per connection after
the N connections are open, and commit-to-receipt latency of 20 ORM changes 0.3 s apart for
every spectator. Writes bench/results/<name>.json and, unless --no-docs, the SSE block of
docs/BENCHMARKS.md.
"""

import argparse
import time
from contextlib import ExitStack
from pathlib import Path

from bench.lab import (
    Servers,
    collect,
    delivery,
    demo_site,
    open_spectators,
    run_scenario,
    scenario_results,
    start_clients,
    start_writer,
    summary,
    table,
    write_block,
)
from harness.servers import RedisServer

BLOCK_START, BLOCK_END = "<!-- bench:sse:start -->", "<!-- bench:sse:end -->"
CHANGES, INTERVAL = 20, 0.3


def run_transport(transport: str, n: int, tmp: Path, redis: RedisServer) -> dict:
    with ExitStack() as stack:
        servers = Servers(stack, tmp, "pubsub", 1, redis)
        if transport == "sse":
            servers.urls = [s.http_url + "/events/boards/demo/" for s in servers.servers]
        writer = start_writer(stack, servers, tmp)
        clients = start_clients(stack, tmp)
        baseline = servers.rss()
        setup = open_spectators(clients, servers.urls, n)
        time.sleep(1)  # let the last snapshots leave the server's buffers
        rss = servers.rss()
        cpu0, wall0 = servers.cpu(), time.monotonic()
        commits = writer.ask({"count": CHANGES, "interval": INTERVAL})["commits"]
        result = collect(clients, commits, timeout=30 + n / 500)
        cpu, wall = servers.cpu() - cpu0, time.monotonic() - wall0
    row = {
        "transport": transport,
        "n": n,
        "connected": setup["opened"],
        "connect_failures": setup["failed"],
        "setup_per_s": setup["opened"] / setup["seconds"],
        "rss_mb": rss / 2**20,
        "rss_per_conn_kb": (rss - baseline) / n / 1024,
        "server_cpu_pct": 100 * cpu / wall,
        **summary(result["latencies"]),
        **delivery(result),
    }
    print(
        f"{transport:>9} N={n}: p50 {row['p50_ms']:.1f} p95 {row['p95_ms']:.1f} p99 {row['p99_ms']:.1f} "
        f"max {row['max_ms']:.1f} ms; delivered {row['delivered']}/{row['expected']}; "
        f"RSS {row['rss_mb']:.0f} MB ({row['rss_per_conn_kb']:.1f} KB/conn); "
        f"setup {row['setup_per_s']:.0f}/s; CPU {row['server_cpu_pct']:.0f}%",
        flush=True,
    )
    return row


def run(*, n: int, rounds: int) -> dict:
    results = scenario_results(changes=CHANGES, interval_s=INTERVAL)
    with ExitStack() as stack:
        tmp, redis, _ = demo_site(stack, "bench-sse-")
        for _ in range(rounds):
            for transport in ("websocket", "sse"):
                results["rows"].append(run_transport(transport, n, tmp, redis))
    return results


def block(results: dict) -> str:
    lines = [
        f"Run: {results['started']}, {results['machine']['cpus']} CPUs, Python "
        f"{results['machine']['python']}, load average at start {results['loadavg_start']}. A fresh Daphne "
        f"per row, Redis PubSub, the demo board, {results['changes']} changes {results['interval_s']} s "
        "apart, 4 client processes; rows in the order run.",
        "",
    ]
    body = [
        [
            "Server-Sent Events" if row["transport"] == "sse" else "WebSocket",
            f"{row['n']:,}",
            *(f"{row[key]:.1f}" for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
            f"{row['delivered']:,}/{row['expected']:,}",
            f"{row['rss_per_conn_kb']:.1f} KB",
            f"{row['setup_per_s']:.0f}/s",
            f"{row['server_cpu_pct']:.0f} %",
        ]
        for row in results["rows"]
    ]
    columns = "transport:l|N:r|p50 ms:r|p95 ms:r|p99 ms:r|max ms:r|delivered:r|RSS per spectator:r|set-up:r"
    return "\n".join([*lines, table(columns + "|server CPU:r", body)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="spectators per run (default 1,000)")
    parser.add_argument("--rounds", type=int, default=2, help="WebSocket then SSE, this many times")
    parser.add_argument("--name", default="sse", help="results file name (default: sse)")
    run_scenario(
        parser,
        lambda args: run(n=args.n, rounds=args.rounds),
        lambda results: write_block(BLOCK_START, BLOCK_END, block(results)),
    )


if __name__ == "__main__":
    main()
