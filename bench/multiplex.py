"""One socket per spectator for three boards, against one socket per board: 5,000 spectators.

    python -m bench.multiplex        about 3 minutes on 2 cores; part of `make bench`

Each spectator watches three boards (demo, second, third). Either over ONE `/ws/` connection
with three subscriptions (5,000 connections), or over three per-board sockets (15,000
connections). For each shape, twice in turn, a fresh Daphne (as in bench/run.py: a listen
backlog of 4,096; Redis PubSub) and 4 client processes (bench/spectators.py). Measured: server
RSS per spectator and per connection once all are open, connections and subscriptions set up
per second, the `watching` frames each spectator received while the 5,000 joined (the issue
asks for at most one a second), then commit-to-receipt latency of 8 ORM changes to the demo
board 1.5 s apart for every spectator, and what Redis carried per change (PUBLISH commands,
from its own INFO commandstats). Writes bench/results/<name>.json and, unless --no-docs, the
multiplex block of docs/BENCHMARKS.md.
"""

import argparse
import time
from contextlib import ExitStack
from pathlib import Path

import redis as redis_client

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
from harness.servers import RedisServer, manage

BLOCK_START, BLOCK_END = "<!-- bench:multiplex:start -->", "<!-- bench:multiplex:end -->"
BOARDS = ("demo", "second", "third")
CHANGES, INTERVAL = 8, 1.5
MORE_BOARDS = (
    "from live.models import Board, Player\n"
    "for name in ('Second', 'Third'):\n"
    "    board = Board.objects.create(name=name, slug=name.lower())\n"
    "    Player.objects.bulk_create(Player(board=board, name=f'{name} {i}', score=i) for i in range(8))\n"
)


def publishes(url: str) -> int:
    """PUBLISH commands Redis has executed since it started."""
    stats = redis_client.Redis.from_url(url).info("commandstats")
    return stats.get("cmdstat_publish", {}).get("calls", 0)


def run_shape(shape: str, n: int, tmp: Path, redis: RedisServer) -> dict:
    with ExitStack() as stack:
        servers = Servers(stack, tmp, "pubsub", 1, redis)
        base = servers.servers[0].ws_url
        if shape == "multiplex":
            urls, connections = [f"mux+{base}/ws/?boards={','.join(BOARDS)}"], n
        else:  # one socket per board; only the demo board's are measured
            urls = [f"{base}/ws/boards/{BOARDS[0]}/", *(f"{base}/ws/boards/{b}/#passive" for b in BOARDS[1:])]
            connections = n * len(BOARDS)
        writer = start_writer(stack, servers, tmp)
        clients = start_clients(stack, tmp)
        baseline, sent0 = servers.rss(), servers.fanout()["watching_frames"]
        setup = open_spectators(clients, urls, connections)
        time.sleep(1.5)  # the last `watching` count of the join (at most one a second) arrives
        watching = [client.ask({"cmd": "watching"}) for client in clients]
        sent = servers.fanout()["watching_frames"] - sent0
        joining = setup["seconds"] + 1.5
        rss = servers.rss()
        cpu0, wall0, published0 = servers.cpu(), time.monotonic(), publishes(redis.url)
        commits = writer.ask({"count": CHANGES, "interval": INTERVAL})["commits"]
        result = collect(clients, commits, timeout=60 + n / 200)
        cpu, wall = servers.cpu() - cpu0, time.monotonic() - wall0
        published = publishes(redis.url) - published0
    row = {
        "shape": shape,
        "spectators": n,
        "connections": setup["opened"],
        "connect_failures": setup["failed"],
        "connections_per_s": setup["opened"] / setup["seconds"],
        "subscriptions_per_s": n * len(BOARDS) / setup["seconds"],
        "rss_mb": rss / 2**20,
        "rss_per_spectator_kb": (rss - baseline) / n / 1024,
        "rss_per_connection_kb": (rss - baseline) / max(1, setup["opened"]) / 1024,
        "watching_frames": sum(w["frames"] for w in watching),
        # The server's own count (/metrics) over the join: per subscription (spectator and
        # board) and second. Receipt times bunch up in busy clients; these do not.
        "watching_frames_sent": sent,
        "join_s": joining,
        "watching_per_board_per_s": sent / (n * len(BOARDS)) / joining,
        "watching_most_in_one_second": max(w["most_in_one_second"] for w in watching),
        "watching_most_of_one_board_in_one_second": max(
            w.get("most_of_one_board_in_one_second", w["most_in_one_second"]) for w in watching
        ),
        "server_cpu_pct": 100 * cpu / wall,
        # Heartbeats (one a second per process) are PUBLISHes too: counted, not subtracted.
        "redis_publishes_per_change": published / len(commits),
        "wall_s": wall,
        **summary(result["latencies"]),
        **delivery(result),
    }
    print(
        f"{shape:>9} {n} spectators, {row['connections']} connections: "
        f"{row['watching_per_board_per_s']:.2f} watching frames per spectator and board per second "
        f"(server's count); {row['connections_per_s']:.0f} connections/s, "
        f"{row['subscriptions_per_s']:.0f} subscriptions/s; "
        f"RSS {row['rss_per_spectator_kb']:.1f} KB/spectator "
        f"({row['rss_per_connection_kb']:.1f} KB/connection); "
        f"watching frames {row['watching_frames']} "
        f"(at most {row['watching_most_of_one_board_in_one_second']} "
        f"per board and {row['watching_most_in_one_second']} in all in 1 s); "
        f"p50 {row['p50_ms']:.0f} p99 {row['p99_ms']:.0f} ms; "
        f"delivered {row['delivered']}/{row['expected']}; "
        f"{row['redis_publishes_per_change']:.1f} PUBLISH/change",
        flush=True,
    )
    return row


def run(*, n: int, rounds: int) -> dict:
    results = scenario_results(changes=CHANGES, interval_s=INTERVAL)
    with ExitStack() as stack:
        tmp, redis, env = demo_site(stack, "bench-multiplex-")
        manage("shell", "-c", MORE_BOARDS, env=env)
        for _ in range(rounds):
            for shape in ("multiplex", "per-board"):
                results["rows"].append(run_shape(shape, n, tmp, redis))
    return results


def block(results: dict) -> str:
    lines = [
        f"Run: {results['started']}, {results['machine']['cpus']} CPUs, Python "
        f"{results['machine']['python']}, load average at start {results['loadavg_start']}. A fresh Daphne "
        f"per row, Redis PubSub; every spectator watches 3 boards; {results['changes']} changes to one of "
        f"them {results['interval_s']} s apart; 4 client processes; rows in the order run.",
        "",
    ]
    body = [
        [
            "one `/ws/` socket, 3 subscriptions" if row["shape"] == "multiplex" else "3 per-board sockets",
            f"{row['spectators']:,}",
            f"{row['connections']:,}",
            f"{row['rss_per_spectator_kb']:.1f} KB",
            f"{row['rss_per_connection_kb']:.1f} KB",
            f"{row['connections_per_s']:.0f}/s",
            f"{row['subscriptions_per_s']:.0f}/s",
            *(f"{row[key]:.0f}" for key in ("p50_ms", "p99_ms")),
            f"{row['delivered']:,}/{row['expected']:,}",
            f"{row['watching_per_board_per_s']:.2f}",
            f"{row['watching_most_of_one_board_in_one_second']} / {row['watching_most_in_one_second']}",
            f"{row['redis_publishes_per_change']:.1f}",
        ]
        for row in results["rows"]
    ]
    columns = (
        "shape:l|spectators:r|connections:r|RSS per spectator:r|RSS per connection:r|connections set up:r"
        "|subscriptions set up:r|p50 ms:r|p99 ms:r|delivered:r"
        "|`watching` frames per spectator and board per s:r"
        "|most received in 1 s, per board / in all:r"
        "|PUBLISH per change:r"
    )
    return "\n".join([*lines, table(columns, body)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="spectators per run (default 5,000)")
    parser.add_argument("--rounds", type=int, default=2, help="multiplex then per-board, this many times")
    parser.add_argument("--name", default="multiplex", help="results file name (default: multiplex)")
    run_scenario(
        parser,
        lambda args: run(n=args.n, rounds=args.rounds),
        lambda results: write_block(BLOCK_START, BLOCK_END, block(results)),
    )


if __name__ == "__main__":
    main()
