"""The benchmark's laboratory: server configurations, writer and client processes, results.

Shared by bench/run.py (the fan-out benchmark), bench/scenarios.py and bench/big_board.py.
"""

import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, closing
from pathlib import Path

from harness.servers import (
    ROOT,
    DaphneProcess,
    Process,
    RedisServer,
    free_port,
    manage,
    origin_of,
    server_env,
)

RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "BENCHMARKS.md"
PLOT = ROOT / "docs" / "img" / "bench-latency.png"
TABLE_START, TABLE_END = "<!-- bench:table:start -->", "<!-- bench:table:end -->"

CLIENT_PROCESSES = 4
CONNECT_CONCURRENCY = 32  # per client process: 128 handshakes in flight
ADMIN_PASSWORD = "bench-only-admin-password"
# (layer, Daphne processes): "reference" is the websockets-only server, "socketio" Socket.IO
# 4 on Node; "pubsub-asgi" is ours with LIVE_DIRECT_SEND=0 (the ASGI send path, as before).
# A board whose every update is large, so a stalled reader fills its buffers in seconds.
WIDE_BOARD = (
    "from live.models import Board, Player; b = Board.objects.create(name='Wide', slug='wide'); "
    "Player.objects.bulk_create(Player(board=b, name=f'p{i:03}', score=i) for i in range(500))"
)
CONFIGS = [
    ("reference", 1),
    ("socketio", 1),
    ("inmemory", 1),
    ("pubsub", 1),
    ("pubsub-asgi", 1),
    ("pubsub", 2),
    ("core", 1),
    ("core", 2),
]


def changes_for(n: int) -> tuple[int, float]:
    """(changes, seconds between them) at N spectators: spaced so one fan-out ends before the next."""
    if n <= 1000:
        return 20, 0.3
    return (8, 1.5) if n <= 5000 else (5, 3.0)


def raise_open_file_limit(needed: int = 65536) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, needed), max(hard, needed)))
    except (ValueError, OSError):  # not allowed to raise the hard limit: use what there is
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


class LineProcess:
    """A child process spoken to with one JSON line per command and per reply."""

    def __init__(self, args: list[str], env: dict, log: Path) -> None:
        self.log = open(log, "ab")  # noqa: SIM115 - open for the child's lifetime, closed by stop()
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log
        )

    def send(self, command: dict) -> None:
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        self.process.stdin.flush()

    def reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.process.args} exited with {self.process.wait()}; see {self.log.name}")
        return json.loads(line)

    def ask(self, command: dict) -> dict:
        self.send(command)
        return self.reply()

    def stop(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=20)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


class BenchDaphne(DaphneProcess):
    """Daphne with a listen backlog for thousands of handshakes (Twisted's default is 50)."""

    def __init__(self, *, env: dict, tmp_path: Path) -> None:
        super().__init__(env=env, tmp_path=tmp_path)
        i = self.args.index("-b")
        del self.args[i : i + 4]
        self.args[i:i] = ["-e", f"tcp:port={self.port}:interface=127.0.0.1:backlog=4096"]
        if os.environ.get("BENCH_UVLOOP") == "1":
            self.args[self.args.index("daphne")] = "bench.daphne_uvloop"


def node_with_socketio() -> str:
    """Node, with bench/socketio's packages installed from the npm registry on first use."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("the Socket.IO reference needs Node.js (Debian: apt-get install nodejs npm)")
    folder = ROOT / "bench" / "socketio"
    if not (folder / "node_modules" / "socket.io").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, check=True)
    return node


class Servers:
    """The server side of one configuration: its processes, their URLs and a writer."""

    def __init__(
        self,
        stack: ExitStack,
        tmp: Path,
        layer: str,
        processes: int,
        redis: RedisServer | None,
        extra_env: dict | None = None,
        board: str = "demo",
    ) -> None:
        self.servers: list[Process] = []
        self.daphnes: list[DaphneProcess] = []
        if layer.endswith("-asgi"):  # our server with the per-spectator ASGI send (before the seam)
            layer, extra_env = layer.removesuffix("-asgi"), {**(extra_env or {}), "LIVE_DIRECT_SEND": "0"}
        if layer == "socketio":
            port = free_port()
            server = Process(
                [node_with_socketio(), str(ROOT / "bench" / "socketio" / "server.js"), str(port)],
                log=tmp / f"socketio-{port}.log",
                port=port,
            )
            self.servers.append(server.start())
            stack.callback(server.stop)
            self.urls = [f"sio+ws://127.0.0.1:{port}/"]
            self.writer_args = ["reference", self.urls[0]]
            self.env = dict(os.environ)
        elif layer == "reference":
            port = free_port()
            server = Process(
                [sys.executable, "-m", "bench.reference_server", str(port)],
                log=tmp / f"reference-{port}.log",
                port=port,
            )
            self.servers.append(server.start())
            stack.callback(server.stop)
            self.urls = [f"ws://127.0.0.1:{port}/"]
            self.writer_args = ["reference", f"ws://127.0.0.1:{port}"]
            self.env = dict(os.environ)
        else:
            database_url = f"sqlite:///{tmp / 'db.sqlite3'}"
            redis_url = redis.url if layer != "inmemory" else None
            self.env = server_env(
                database_url=database_url,
                redis_url=redis_url,
                layer=layer if layer != "inmemory" else "pubsub",
                DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
                LIVE_LOG_LEVEL="WARNING",
                # Every benchmark client comes from 127.0.0.1: no per-address connection limit.
                LIVE_CONNECTIONS_PER_ADDRESS="0",
                **(extra_env or {}),
            )
            for _ in range(processes):
                daphne = BenchDaphne(env=self.env, tmp_path=tmp)
                self.servers.append(daphne.start())
                self.daphnes.append(daphne)
                stack.callback(daphne.stop)
            self.urls = [s.ws_url + f"/ws/boards/{board}/" for s in self.servers]
            if layer == "inmemory":
                self.writer_args = ["admin", self.servers[0].http_url, json.dumps(board_players(tmp, board))]
            else:
                self.writer_args = ["orm", board]
        import psutil  # a bench-only dependency: the rest of this module is shared with bench.big_board

        self.processes = [psutil.Process(s.process.pid) for s in self.servers]
        self.warm_up()

    def warm_up(self) -> None:
        """One spectator per process first, so lazy imports are not counted per connection."""
        from websockets.sync.client import connect

        for url in self.urls:
            if url.startswith("sio+"):
                continue  # Node has nothing to import lazily
            with connect(url, origin=origin_of(url), open_timeout=30) as websocket:
                websocket.recv(timeout=30)
        time.sleep(0.5)  # let the disconnect be processed before the baseline memory reading

    def fanout(self) -> dict:
        """The relays' own account (/metrics): fan-outs, frames and seconds spent, all processes."""
        totals = {
            "fanouts": 0.0,
            "fanout_seconds": 0.0,
            "update_frames": 0.0,
            "catch_ups": 0.0,
            "resyncs": 0.0,
            "watching_frames": 0.0,
        }
        for daphne in self.daphnes:
            with urllib.request.urlopen(daphne.http_url + "/metrics", timeout=10) as response:
                for line in response.read().decode().splitlines():
                    name, _, value = line.rpartition(" ")
                    if name == "scoreboard_fanout_seconds_count":
                        totals["fanouts"] += float(value)
                    elif name == "scoreboard_fanout_seconds_sum":
                        totals["fanout_seconds"] += float(value)
                    elif name.startswith('scoreboard_frames_sent_total{kind="update"'):
                        totals["update_frames"] += float(value)
                    elif name == "scoreboard_catch_ups_total":
                        totals["catch_ups"] += float(value)
                    elif name.startswith("scoreboard_resyncs_total"):
                        totals["resyncs"] += float(value)
                    elif name.startswith('scoreboard_frames_sent_total{kind="watching"'):
                        totals["watching_frames"] += float(value)
        return totals

    def rss(self) -> int:
        return sum(p.memory_info().rss for p in self.processes)

    def cpu(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.processes)


def board_players(tmp: Path, slug: str) -> list:
    """[id, board id, name, score] of a board's players, for the admin writer's forms."""
    with closing(sqlite3.connect(tmp / "db.sqlite3")) as db:
        query = (
            "select p.id, p.board_id, p.name, p.score from live_player p"
            " join live_board b on b.id = p.board_id where b.slug = ?"
        )
        return db.execute(query, (slug,)).fetchall()


def start_writer(stack: ExitStack, servers: Servers, tmp: Path, name: str = "writer") -> LineProcess:
    """A writer process, stopped when `stack` closes."""
    writer = LineProcess(
        [sys.executable, "-m", "bench.writer", *servers.writer_args], servers.env, tmp / f"{name}.log"
    )
    stack.callback(writer.stop)
    return writer


def start_clients(stack: ExitStack, tmp: Path, count: int = CLIENT_PROCESSES) -> list[LineProcess]:
    """The spectator client processes, ready and stopped when `stack` closes."""
    env = dict(os.environ)
    clients = []
    for i in range(count):
        clients.append(
            LineProcess([sys.executable, "-m", "bench.spectators"], env, tmp / f"spectators-{i}.log")
        )
        stack.callback(clients[-1].stop)
    for client in clients:
        client.ask({"cmd": "ready"})  # started and imported: not counted in the set-up rate
    return clients


def open_spectators(clients: list[LineProcess], urls: list[str], count: int) -> dict:
    start = time.monotonic()
    shares = [count // len(clients) + (i < count % len(clients)) for i in range(len(clients))]
    for client, share in zip(clients, shares, strict=True):
        client.send({"cmd": "open", "urls": urls, "count": share, "concurrency": CONNECT_CONCURRENCY})
    replies = [client.reply() for client in clients]
    seconds = time.monotonic() - start
    return {
        "opened": sum(r["opened"] for r in replies),
        "failed": sum(r["failed"] for r in replies),
        "seconds": seconds,
    }


def collect(clients: list[LineProcess], commits: list, timeout: float) -> dict:
    for client in clients:
        client.send({"cmd": "collect", "commits": commits, "timeout": timeout})
    replies = [client.reply() for client in clients]
    latencies = sorted(x for r in replies for x in r["latencies_ms"])
    return {
        "delivered": sum(r["delivered"] for r in replies),
        "expected": sum(r["expected"] for r in replies),
        "order_errors": sum(r["error_count"] for r in replies),
        "resyncs": sum(r["resyncs"] for r in replies),
        "stale_notices": sum(r["stale_notices"] for r in replies),
        "duplicates": sum(r["duplicates"] for r in replies),
        "order_error_examples": [e for r in replies for e in r["errors"]][:10],
        "open": sum(r["open"] for r in replies),
        "latencies": latencies,
        "slowest_per_change_ms": [
            max(r["slowest_per_change_ms"][i][1] for r in replies)
            for i in range(len(replies[0]["slowest_per_change_ms"]))
        ],
    }


def delivery(result: dict) -> dict:
    """The delivery counts of a collect() result, as reported in every row."""
    keys = ("delivered", "expected", "order_errors", "duplicates", "resyncs", "stale_notices")
    return {key: result[key] for key in keys}


def summary(latencies: list[float]) -> dict:
    return {
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": latencies[-1] if latencies else float("nan"),
    }


def run_config(
    layer: str, processes: int, ns: list[int], tmp: Path, redis: RedisServer | None, *, storm: bool = True
) -> list[dict]:
    rows = []
    with ExitStack() as stack:
        servers = Servers(stack, tmp, layer, processes, redis)
        writer = start_writer(stack, servers, tmp)
        clients = start_clients(stack, tmp)
        baseline = servers.rss()
        have = 0
        for n in ns:
            setup = open_spectators(clients, servers.urls, n - have)
            have = n
            rss = servers.rss()
            count, interval = changes_for(n)
            cpu0, wall0, relays0 = servers.cpu(), time.monotonic(), servers.fanout()
            written = writer.ask({"count": count, "interval": interval})
            commits = written["commits"]
            result = collect(clients, commits, timeout=30 + n / 500)
            cpu_seconds, wall = servers.cpu() - cpu0, time.monotonic() - wall0
            relays = {key: value - relays0[key] for key, value in servers.fanout().items()}
            print("  slowest receipt per change (ms):", result["slowest_per_change_ms"], flush=True)
            row = {
                "layer": layer,
                "processes": processes,
                "n": n,
                "changes": count,
                "interval_s": interval,
                **summary(result["latencies"]),
                **delivery(result),
                "order_error_examples": result["order_error_examples"],
                "slowest_per_change_ms": result["slowest_per_change_ms"],
                "admin_request_ms_p50": written.get("request_ms_p50"),
                "connected": setup["opened"],
                "connect_failures": setup["failed"],
                "setup_per_s": setup["opened"] / setup["seconds"] if setup["seconds"] else None,
                "rss_mb": rss / 2**20,
                "rss_per_conn_kb": (rss - baseline) / n / 1024,
                "server_cpu_s": cpu_seconds,
                "server_cpu_pct": 100 * cpu_seconds / wall,
                "server_cpu_us_per_frame": 1e6 * cpu_seconds / result["delivered"]
                if result["delivered"]
                else None,
                # The relays' own account: receipt -> last socket written, per fan-out and frame.
                "fanout_ms_mean": 1000 * relays["fanout_seconds"] / relays["fanouts"]
                if relays["fanouts"]
                else None,
                "server_us_per_frame": (
                    1e6 * relays["fanout_seconds"] / relays["update_frames"]
                    if relays["update_frames"]
                    else None
                ),
            }
            rows.append(row)
            print(format_row(row), flush=True)
        if storm:
            rows[-1]["storm"] = reconnect_storm(clients, n)
            print(f"  reconnect storm, {n} dropped at once: {rows[-1]['storm']}", flush=True)
    return rows


def reconnect_storm(clients: list[LineProcess], n: int) -> dict:
    """All N spectators dropped at once; seconds until every one holds a fresh snapshot."""
    for client in clients:
        client.send({"cmd": "storm", "concurrency": CONNECT_CONCURRENCY})
    replies = [client.reply() for client in clients]
    seconds = max(r["seconds"] for r in replies)
    reopened = sum(r["opened"] for r in replies)
    return {"n": n, "seconds": seconds, "reopened": reopened, "failed": sum(r["failed"] for r in replies)}


def format_row(row: dict) -> str:
    return (
        f"{row['layer']:>9} x{row['processes']} N={row['n']:>5}  p50 {row['p50_ms']:7.1f}  "
        f"p95 {row['p95_ms']:7.1f}  p99 {row['p99_ms']:7.1f}  max {row['max_ms']:7.1f} ms  "
        f"delivered {row['delivered']}/{row['expected']}  order errors {row['order_errors']} "
        f"(duplicates {row['duplicates']}, resyncs {row['resyncs']})  "
        f"RSS {row['rss_mb']:.0f} MB ({row['rss_per_conn_kb']:.1f} KB/conn)  "
        f"setup {row['setup_per_s'] or 0:.0f}/s  CPU {row['server_cpu_pct']:.0f}%"
        + (f"  fan-out {row['server_us_per_frame']:.1f} us/frame" if row.get("server_us_per_frame") else "")
    )


def save(results: dict, name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")


def write_block(start: str, end: str, text: str) -> None:
    """Replace what stands between the markers `start` and `end` in docs/BENCHMARKS.md."""
    doc = DOC.read_text()
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    DOC.write_text(f"{head}{start}\n{text}\n{end}{tail}")
    print(f"updated {DOC}")


def scenario_results(**fields) -> dict:
    """What every scenario's results start with: the machine, when, how loaded; then its rows."""
    return {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_start": "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg()),
        **fields,
        "rows": [],
    }


def demo_site(stack: ExitStack, prefix: str) -> tuple[Path, RedisServer, dict]:
    """A private Redis and a migrated SQLite database with the demo board, gone with `stack`."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
    redis = RedisServer(tmp).start()
    stack.callback(redis.stop)
    env = server_env(database_url=f"sqlite:///{tmp / 'db.sqlite3'}")
    manage("migrate", "--noinput", env=env)
    manage("seed_demo", env=env)
    return tmp, redis, env


def run_scenario(parser, run, write_docs) -> None:
    """The command line of a scenario: run(args) -> results, saved, then written into the docs."""
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/BENCHMARKS.md")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: no server outlives the run
    started = time.monotonic()
    results = run(args)
    results["seconds"] = time.monotonic() - started
    save(results, args.name)
    print(f"wrote {RESULTS / f'{args.name}.json'} in {results['seconds']:.0f} s")
    if not args.no_docs:
        write_docs(results)


def table(columns: str, rows: list[list]) -> str:
    """A Markdown table: `columns` is "name:align|..." with align l or r (numbers)."""
    names, aligns = zip(*(column.rsplit(":", 1) for column in columns.split("|")), strict=True)
    lines = [
        "| " + " | ".join(names) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in aligns) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
