"""Run the fan-out benchmark: real Daphne processes, Redis, writer and spectator processes.

    python -m bench.run            N = 100, 1,000, 5,000, 10,000 (about 10 minutes on 2 cores)
    python -m bench.run --quick    N <= 1,000 and a shorter burst (about 3 minutes)

Writes bench/results/<name>.json; a full run also rewrites the table block of
docs/BENCHMARKS.md and docs/img/bench-latency.png (python -m bench.report NAME redoes that).
Everything listens on 127.0.0.1 only and is stopped at the end.
"""

import argparse
import os
import platform
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.lab import (
    ADMIN_PASSWORD,
    CLIENT_PROCESSES,
    CONFIGS,
    RESULTS,
    WIDE_BOARD,
    raise_open_file_limit,
    run_config,
    save,
)
from bench.report import write_docs
from bench.scenarios import burst, slow_spectator, two_writers
from harness.servers import RedisServer, manage, server_env, sqlite_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N <= 1,000 and a 10 s burst")
    parser.add_argument("--only", help="comma-separated layer:processes to run, e.g. pubsub:1,reference:1")
    parser.add_argument("--ns", help="comma-separated N values (overrides the default list)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: fanout,burst,writers,slow")
    parser.add_argument("--keep", action="store_true", help="keep the logs and database (path printed)")
    parser.add_argument("--name", help="results file name (default: full or quick)")
    parser.add_argument(
        "--no-docs", action="store_true", help="do not rewrite docs/BENCHMARKS.md and the plot"
    )
    args = parser.parse_args()
    # A SIGTERM (e.g. from `timeout`) unwinds the ExitStacks, so no server outlives the run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    raise_open_file_limit()
    ns = (
        [int(n) for n in args.ns.split(",")]
        if args.ns
        else ([100, 1000] if args.quick else [100, 1000, 5000, 10000])
    )
    configs = CONFIGS
    if args.only:
        wanted = {tuple(part.split(":")) for part in args.only.split(",")}
        configs = [(layer, p) for layer, p in CONFIGS if (layer, str(p)) in wanted]
    skip = set(filter(None, args.skip.split(",")))
    started = time.monotonic()
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "client_processes": CLIENT_PROCESSES,
        "loadavg_start": "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg()),
        "fanout": [],
    }
    with ExitStack() as stack:
        if args.keep:
            tmp = Path(tempfile.mkdtemp(prefix="bench-"))
            print(f"logs and database in {tmp}")
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        redis = RedisServer(tmp).start()
        stack.callback(redis.stop)
        database_url = sqlite_database(tmp)
        env = server_env(database_url=database_url, DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD)
        manage("seed_demo", env=env)
        manage("ensure_admin", env=env)
        manage("shell", "-c", WIDE_BOARD, env=env)
        name = args.name or ("quick" if args.quick else "full")
        if "fanout" not in skip:
            for layer, processes in configs:
                results["fanout"].extend(run_config(layer, processes, ns, tmp, redis))
                save(results, f"{name}.partial")
        if "burst" not in skip:
            seconds = 10 if args.quick else 30
            results["burst"] = [
                burst(tmp, redis, layer=layer, seconds=seconds) for layer in ("reference", "pubsub")
            ]
        if "writers" not in skip:
            results["two_writers"] = [two_writers(tmp, redis, n=1000)]
        if "slow" not in skip:
            limits = (None,) if args.quick else (0, None)
            results["slow"] = [slow_spectator(tmp, redis, seconds=15, limit=limit) for limit in limits]
    results["seconds"] = time.monotonic() - started
    save(results, name)
    (RESULTS / f"{name}.partial.json").unlink(missing_ok=True)
    print(f"wrote {RESULTS / f'{name}.json'} in {results['seconds']:.0f} s")
    if not (args.no_docs or args.quick or args.only or args.ns or skip):
        write_docs(results)


if __name__ == "__main__":
    main()
