"""deploy/ as shipped: nginx (TLS) in front of two Daphne processes on Unix sockets and Redis.

The nginx site and the Daphne command line are read from deploy/; only paths, ports, the
host name and the certificate are replaced by temporary ones. A spectator connected through
nginx receives a change that staff make in the admin, also through nginx.
"""

import asyncio
import http.cookiejar
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from harness.production import production_env
from harness.servers import ROOT, Process, RedisServer, free_port, manage
from tests.conftest import next_frame

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

NGINX_SITE = ROOT / "deploy" / "nginx" / "scoreboard.conf"
DAPHNE_UNIT = ROOT / "deploy" / "systemd" / "daphne@.service"
TIMEOUT = 10
ADMIN_PASSWORD = "deploy-test-password-8b1c"


def need(program: str) -> str:
    path = shutil.which(program, path=f"{os.environ.get('PATH', '')}:/usr/sbin")  # nginx is in sbin
    if path is None:
        reason = f"{program} is not installed (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def replace_exactly(text: str, old: str, new: str) -> str:
    assert old in text, f"deploy file changed: {old!r} not found; update tests/test_deploy.py"
    return text.replace(old, new)


def nginx_site(*, run_dir: Path, http_port: int, https_port: int, cert: Path, key: Path) -> str:
    site = NGINX_SITE.read_text()
    for old, new in [
        ("/run/scoreboard/", f"{run_dir}/"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("listen [::]:443 ssl;", ""),
        ("server_name scores.example.com;", "server_name localhost;"),
        ("/etc/letsencrypt/live/scores.example.com/fullchain.pem", str(cert)),
        ("/etc/letsencrypt/live/scores.example.com/privkey.pem", str(key)),
    ]:
        site = replace_exactly(site, old, new)
    directives = "\n".join(line for line in site.splitlines() if not line.lstrip().startswith("#"))
    system_paths = re.findall(r"(?:\s|unix:)(/(?:etc|run|var|srv|usr|home)/[^\s;]*)", directives)
    assert not system_paths, system_paths
    return site


def nginx_main_config(prefix: Path, site: Path) -> str:
    """A non-daemon nginx whose every file is under `prefix`, including the site."""
    temp_paths = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Workers of a root master default to "nobody", who cannot enter pytest's temp dirs.
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""{user}
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format upstream '$request_uri $status $upstream_addr';
    access_log {prefix}/access.log upstream;
{temp_paths}
    include {site};
}}
"""


def daphne_command(socket_path: Path) -> list[str]:
    """ExecStart of deploy/systemd/daphne@.service, with this socket and this Python."""
    line = next(line for line in DAPHNE_UNIT.read_text().splitlines() if line.startswith("ExecStart="))
    args = shlex.split(line.removeprefix("ExecStart="))
    assert args[0].endswith("/daphne")
    args[args.index("-u") + 1] = str(socket_path)
    return [sys.executable, "-m", "daphne", *args[1:]]


class UnixDaphne(Process):
    def __init__(self, *, socket_path: Path, env: dict, log: Path) -> None:
        super().__init__(daphne_command(socket_path), env=env, log=log, port=0)
        self.socket_path = socket_path

    def start(self) -> "UnixDaphne":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.connect(str(self.socket_path))
                    return self
            except OSError:
                time.sleep(0.05)  # a socket file has no event to await: poll, within the deadline
        raise TimeoutError(f"Daphne did not listen on {self.socket_path}:\n{self.output()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Redis, two Daphne processes and nginx, configured from deploy/; yields the HTTPS base URL."""
    nginx = need("nginx")
    openssl = need("openssl")
    tmp_path = tmp_path_factory.mktemp("deploy")
    run_dir = tmp_path / "run"
    prefix = tmp_path / "nginx"
    for directory in (run_dir, prefix):
        directory.mkdir()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    http_port, https_port = free_port(), free_port()
    base_url = f"https://localhost:{https_port}"

    processes: list[Process] = []
    try:
        redis = RedisServer(tmp_path).start()
        processes.append(redis)
        env = production_env(
            tmp_path,
            REDIS_URL=redis.url,
            DJANGO_ALLOWED_HOSTS="localhost",
            # Only needed off port 443: browsers send the port in Origin, nginx's $host drops it.
            DJANGO_CSRF_TRUSTED_ORIGINS=base_url,
            DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
        )
        for command in (
            ["migrate", "--noinput"],
            ["collectstatic", "--noinput"],
            ["seed_demo"],
            ["ensure_admin"],
        ):
            manage(*command, env=env)
        for number in (1, 2):
            processes.append(
                UnixDaphne(
                    socket_path=run_dir / f"daphne-{number}.sock",
                    env=env,
                    log=tmp_path / f"daphne-{number}.log",
                ).start()
            )
        site = prefix / "scoreboard.conf"
        site.write_text(
            nginx_site(run_dir=run_dir, http_port=http_port, https_port=https_port, cert=cert, key=key)
        )
        config = prefix / "nginx.conf"
        config.write_text(nginx_main_config(prefix, site))
        command = [nginx, "-p", f"{prefix}/", "-c", str(config), "-e", str(prefix / "error.log")]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        processes.append(Process(command, log=prefix / "stdout.log", port=https_port).start())
        yield {
            "base_url": base_url,
            "http_port": http_port,
            "cert": cert,
            "access_log": prefix / "access.log",
            "daphne_logs": [tmp_path / "daphne-1.log", tmp_path / "daphne-2.log"],
        }
    finally:
        for process in reversed(processes):
            process.stop()


class Browser:
    """Just enough of a browser for the admin: cookies, CSRF tokens, no redirect following."""

    def __init__(self, base_url: str, cert: Path) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=cert)),
            urllib.request.HTTPCookieProcessor(self.cookies),
            NoRedirect(),
        )

    def request(self, path: str, data: dict | None = None):
        url = self.base_url + path
        headers = {"Origin": self.base_url, "Referer": url} if data is not None else {}
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        try:
            return self.opener.open(urllib.request.Request(url, data=body, headers=headers), timeout=TIMEOUT)
        except urllib.error.HTTPError as response:
            return response

    def csrf_token(self, path: str) -> str:
        html = self.request(path).read().decode()
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


async def test_a_spectator_through_nginx_receives_a_change_made_in_the_admin_through_nginx(stack):
    base_url = stack["base_url"]
    tls = ssl.create_default_context(cafile=stack["cert"])
    ws_url = base_url.replace("https", "wss") + "/ws/boards/demo/"
    browser = Browser(base_url, stack["cert"])

    # least_conn puts the two spectators on different Daphnes: updates cross via Redis.
    async with (
        connect(ws_url, ssl=tls, origin=base_url, open_timeout=TIMEOUT) as first,
        connect(ws_url, ssl=tls, origin=base_url, open_timeout=TIMEOUT) as second,
    ):
        snapshots = [await next_frame(ws, TIMEOUT) for ws in (first, second)]
        standings = [{k: v for k, v in s.items() if k != "watching"} for s in snapshots]
        assert standings[0] == standings[1] and snapshots[0]["type"] == "snapshot"
        player = snapshots[0]["players"][-1]

        def staff_awards_five_points() -> None:
            login = browser.request(
                "/admin/login/?next=/admin/",
                {"username": "admin", "password": ADMIN_PASSWORD, "next": "/admin/",
                 "csrfmiddlewaretoken": browser.csrf_token("/admin/login/")},
            )  # fmt: skip
            assert login.status == 302 and login.headers["Location"] == "/admin/", login.read()[:500]
            action = browser.request(
                "/admin/live/player/",
                {"action": "award_5", "_selected_action": [player["id"]], "index": "0",
                 "csrfmiddlewaretoken": browser.csrf_token("/admin/live/player/")},
            )  # fmt: skip
            assert action.status == 302, action.read()[:500]

        await asyncio.to_thread(staff_awards_five_points)
        updates = [await next_frame(ws, TIMEOUT) for ws in (first, second)]

    for update in updates:
        assert update["type"] == "update" and update["version"] == snapshots[0]["version"] + 1
        assert [(p["id"], p["score"]) for p in update["players"]] == [(player["id"], player["score"] + 5)]
    assert sorted(websocket_upstreams(stack["access_log"])) == ["unix:daphne-1.sock", "unix:daphne-2.sock"]
    for log in stack["daphne_logs"]:
        assert "Traceback" not in log.read_text()


def websocket_upstreams(access_log: Path) -> list[str]:
    """The Daphne socket of each finished WebSocket request (logged once the socket closed)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        lines = [line.split() for line in access_log.read_text().splitlines() if line.startswith("/ws/")]
        if len(lines) >= 2 or time.monotonic() > deadline:
            return [f"unix:{Path(upstream.removeprefix('unix:')).name}" for _uri, _status, upstream in lines]
        time.sleep(0.05)  # nginx logs when it closes the connection; a file has no event to await


def test_production_responses_through_nginx(stack):
    """HTTPS redirect, HSTS, CSP, hashed compressed static files, secure cookies, /healthz."""
    browser = Browser(stack["base_url"], stack["cert"])
    plain = urllib.request.build_opener(NoRedirect())
    try:
        plain.open(f"http://localhost:{stack['http_port']}/boards/demo/", timeout=TIMEOUT)
        pytest.fail("plain HTTP was served")
    except urllib.error.HTTPError as redirect:
        assert (redirect.code, redirect.headers["Location"]) == (301, "https://localhost/boards/demo/")

    page = browser.request("/boards/demo/")
    assert page.status == 200
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    script = re.search(r'<script type="module" src="([^"]+)"', page.read().decode()).group(1)
    assert re.fullmatch(r"/static/live/scoreboard\.[0-9a-f]{12}\.js", script), script
    static = browser.opener.open(
        urllib.request.Request(stack["base_url"] + script, headers={"Accept-Encoding": "gzip"}),
        timeout=TIMEOUT,
    )
    assert static.headers["Content-Encoding"] == "gzip"
    assert "immutable" in static.headers["Cache-Control"]

    browser.csrf_token("/admin/login/")
    assert all(cookie.secure for cookie in browser.cookies), list(browser.cookies)

    health = browser.request("/healthz")
    assert (health.status, json.loads(health.read())) == (
        200,
        {"status": "ok", "database": "ok", "channel_layer": "ok"},
    )
