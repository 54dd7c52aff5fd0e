"""Real processes for tests and benchmarks: redis-server, Daphne and manage.py commands."""

import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "systemd" / "daphne@.service"


def unit_options() -> list[str]:
    """Daphne's options in deploy/systemd/daphne@.service, without the socket and the app."""
    exec_start = next(line for line in UNIT.read_text().splitlines() if line.startswith("ExecStart="))
    args = shlex.split(exec_start.removeprefix("ExecStart="))[1:-1]
    socket_flag = args.index("-u")
    return args[:socket_flag] + args[socket_flag + 2 :]


def makefile_options() -> list[str]:
    """Daphne's options in `make run` (the Makefile's DAPHNE_OPTIONS)."""
    line = next(
        line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("DAPHNE_OPTIONS")
    )
    return shlex.split(line.partition(":=")[2])


def origin_of(url: str) -> str:
    """The Origin a browser sends from a page of the server at `url` (ws:// or http://, any path)."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 15.0, process: subprocess.Popen | None = None) -> None:
    """Return once something accepts connections on the port; fail fast if `process` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # a port has no event to await: poll it, within the deadline
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def server_env(
    *, database_url: str, redis_url: str | None = None, layer: str = "pubsub", **extra: str
) -> dict:
    """Environment for a production-like server process (DEBUG off) of this project."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        DJANGO_SETTINGS_MODULE="scoreboard.settings",
        DJANGO_SECRET_KEY="test-only-secret-key-for-server-processes",
        DJANGO_DEBUG="0",
        DJANGO_ENV_FILE="",
        DJANGO_ALLOWED_HOSTS="localhost,127.0.0.1",
        DATABASE_URL=database_url,
        CHANNEL_LAYER=layer,
        PYTHONUNBUFFERED="1",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


def manage(
    *args: str, env: dict, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess:
    """Run `python manage.py ARGS` in its own process; raise with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


class Process:
    """A child process whose output goes to a log file, stopped for sure by stop()."""

    def __init__(
        self, args: list[str], *, env: dict | None = None, log: Path, port: int, nofile: int | None = None
    ) -> None:
        """`nofile`: the process's limit of open file descriptors (`ulimit -n`), lowered for it alone."""
        self.args, self.env, self.log_path, self.port, self.nofile = args, env, log, port, nofile
        self.process: subprocess.Popen | None = None

    def _limits(self) -> None:
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def start(self) -> "Process":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._limits,
            )
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        """Send `sig` and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(sig)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_output(self, text: str, *, count: int = 1, timeout: float = 30) -> None:
        """Wait until the log holds `text` `count` times (a log file cannot be awaited)."""
        deadline = time.monotonic() + timeout
        while self.output().count(text) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not logged {count} times within {timeout} s")
            time.sleep(0.05)


class RedisServer(Process):
    """A private redis-server on a free port that keeps nothing on disk."""

    def __init__(self, tmp_path: Path, port: int | None = None) -> None:
        port = port or free_port()
        args = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path),
        ]  # fmt: skip
        super().__init__(args, log=tmp_path / f"redis-{port}.log", port=port)
        self.url = f"redis://127.0.0.1:{port}/0"


class DaphneProcess(Process):
    """`daphne scoreboard.asgi:application` on a free port, configured by `env`."""

    def __init__(
        self,
        *,
        env: dict,
        tmp_path: Path,
        port: int | None = None,
        options: tuple = (),
        nofile: int | None = None,
    ) -> None:
        port = port or free_port()
        args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *options]
        log = tmp_path / f"daphne-{port}.log"
        super().__init__([*args, "scoreboard.asgi:application"], env=env, log=log, port=port, nofile=nofile)
        self.http_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"


def sqlite_database(tmp_path: Path, *, env: dict | None = None) -> str:
    """A migrated, file-backed SQLite database that several processes can share."""
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    manage("migrate", "--noinput", env=server_env(database_url=url, **(env or {})))
    return url
