"""`GET /healthz`: 200 when the database and the channel layer answer, 503 naming what failed."""

import json
import urllib.error
import urllib.request

import pytest
from django.test import AsyncClient

from harness.servers import DaphneProcess, free_port, server_env, sqlite_database
from scoreboard.settings import redis_channel_layer


@pytest.mark.django_db(transaction=True)
async def test_healthy_with_database_and_channel_layer():
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
async def test_healthy_with_redis(redis_layer):
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200, response.json()


@pytest.mark.django_db(transaction=True)
async def test_unavailable_when_redis_does_not_answer(settings):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(redis_url=dead_redis, kind="pubsub", group_expiry=60)
    }
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "channel_layer": "unavailable"}


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_server_process_without_its_database_answers_503(tmp_path):
    database_url = sqlite_database(tmp_path)
    env = server_env(database_url=database_url)
    server = DaphneProcess(env=env, tmp_path=tmp_path).start()
    try:
        assert get(f"{server.http_url}/healthz") == (
            200,
            {"status": "ok", "database": "ok", "channel_layer": "ok"},
        )
        # The database file disappears under the running server.
        (tmp_path / "db.sqlite3").rename(tmp_path / "moved.sqlite3")
        (tmp_path / "db.sqlite3").mkdir()
        status, body = get(f"{server.http_url}/healthz")
    finally:
        server.stop()
    assert (status, body) == (
        503,
        {"status": "unavailable", "database": "unavailable", "channel_layer": "ok"},
    )
