"""Production settings: `check --deploy` is clean, CSP on every page, JSON logs on request."""

import json
import re
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.test import Client

from harness.production import production_env
from harness.servers import ROOT
from live.models import Board, Player


def check_deploy(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_passes_with_the_documented_production_environment(tmp_path):
    result = check_deploy(production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_without_https_settings(tmp_path):
    env = production_env(tmp_path)
    env["DJANGO_HTTPS"] = "0"
    result = check_deploy(env)
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_json_logs_are_one_object_per_line(tmp_path):
    env = production_env(tmp_path)
    code = (
        "import logging\n"
        "log = logging.getLogger('live.test')\n"
        "log.warning('saved \"%s\"', 'Zoë')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('boom')\n"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(r["level"], r["logger"], r["message"]) for r in records] == [
        ("WARNING", "live.test", 'saved "Zoë"'),
        ("ERROR", "live.test", "boom"),
    ]
    assert "ZeroDivisionError" in records[1]["exception"] and "time" in records[0]


CSP = re.compile(r"script-src 'self'(;|$)")


@pytest.fixture
def staff_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", password="pw-for-tests-only"))
    return client


def admin_and_site_urls(board: Board, player: Player) -> list[str]:
    return [
        "/",
        f"/boards/{board.slug}/",
        f"/boards/{board.slug}/?view=tv",
        f"/boards/{board.slug}/?view=overlay&top=3",
        "/accounts/login/",
        "/admin/",
        "/admin/live/board/",
        f"/admin/live/board/{board.pk}/change/",
        "/admin/live/board/add/",
        "/admin/live/player/",
        f"/admin/live/player/{player.pk}/change/",
        "/admin/auth/user/",
    ]


def test_every_page_and_admin_page_has_a_csp_without_inline_script(staff_client, players, board):
    pages = [(staff_client, url) for url in admin_and_site_urls(board, players[0])]
    for client, url in [*pages, (Client(), "/admin/login/")]:
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert CSP.search(policy) and "unsafe-inline" not in policy and "unsafe-eval" not in policy, url
        assert "frame-ancestors 'none'" in policy


# What a policy without 'unsafe-inline' blocks: the admin must not depend on any of it.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
STYLE_ATTRIBUTE = re.compile(r"<[^>]+\sstyle\s*=", re.I)


def test_pages_and_the_admin_work_under_the_csp(staff_client, players, board):
    """Browser-less: no inline script, event-handler attribute, style attribute or javascript: URL."""
    for url in admin_and_site_urls(board, players[0]):
        html = staff_client.get(url).content.decode()
        assert not INLINE_SCRIPT.search(html), (url, INLINE_SCRIPT.search(html))
        assert not EVENT_HANDLER.search(html), (url, EVENT_HANDLER.search(html))
        assert not STYLE_ATTRIBUTE.search(html), (url, STYLE_ATTRIBUTE.search(html))
        assert "javascript:" not in html, url
