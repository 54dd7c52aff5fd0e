"""Prometheus metrics at /metrics: counted by the delivery side, readable only by the configured."""

import asyncio
import re
import urllib.request

import pytest
from django.test import Client

from harness.spectator import converge

pytestmark = pytest.mark.django_db


def test_metrics_answer_the_allowed_addresses(settings):
    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
    assert response.status_code == 200
    assert b"scoreboard_connections_open" in response.content


def test_metrics_are_a_404_to_anyone_else(settings):
    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 404


def test_metrics_answer_a_bearer_token_from_anywhere(settings):
    settings.LIVE_METRICS_TOKEN = "scrape-secret"
    client = Client(REMOTE_ADDR="203.0.113.9")
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


@pytest.mark.redis
@pytest.mark.faults
async def test_a_real_daphne_counts_connections_frames_and_fan_outs(deployment):
    live = deployment(layer="pubsub")
    daphne = live.start_daphne()
    staff = await live.staff(daphne)
    player = live.db.players(live.board_id)[0]
    async with live.watching(3, daphne) as crowd:
        await asyncio.to_thread(staff.set_score, player, 4242)
        await converge(crowd, live.db, live.board_id)
        samples = await asyncio.to_thread(scrape, daphne.http_url)
    assert samples["scoreboard_connections_open"] == 3
    assert samples[f'scoreboard_spectators{{board="{live.board_id}"}}'] == 3
    # Framed once and written straight to Daphne's sockets: no frame took the ASGI path.
    assert samples['scoreboard_frames_sent_total{kind="update",path="direct"}'] == 3
    assert samples.get('scoreboard_frames_sent_total{kind="update",path="asgi"}', 0) == 0
    assert samples['scoreboard_frames_sent_total{kind="snapshot",path="direct"}'] >= 3
    assert samples["scoreboard_fanout_seconds_count"] == 1
    assert samples["scoreboard_broker_up"] == 1
    assert re.search(r"scoreboard_connects_total", " ".join(samples))
