"""Pages and the JSON snapshot endpoint."""

import pytest

from live.models import Player
from live.scores.selectors import board_snapshot

pytestmark = pytest.mark.django_db


def test_the_index_lists_boards(client, board):
    response = client.get("/")
    assert response.status_code == 200
    assert b'href="/boards/finals/"' in response.content


def test_the_board_page_renders_the_standings_without_javascript(client, players):
    response = client.get("/boards/finals/")
    html = response.content.decode()
    assert response.status_code == 200
    rows = [html.index(f'data-player-id="{p.pk}"') for p in players]
    assert rows == sorted(rows), "rows are in rank order"
    assert '<td data-field="rank">2</td>\n        <td data-field="name">Cy</td>' in html
    players[0].board.refresh_from_db()
    assert f'data-version="{players[0].board.version}"' in html
    assert 'data-ws-path="/ws/boards/finals/"' in html
    assert "<script>" not in html, "no inline script"


def test_the_board_page_escapes_names(client, board):
    Player.objects.create(board=board, name='<img src=x onerror="alert(1)">')
    html = client.get("/boards/finals/").content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def test_the_api_returns_the_websocket_snapshot(client, players):
    response = client.get("/api/boards/finals/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == board_snapshot(board_id=players[0].board_id)


@pytest.mark.parametrize("url", ["/boards/nope/", "/api/boards/nope/"])
def test_an_unknown_slug_is_404(client, db, url):
    assert client.get(url).status_code == 404


def test_the_api_404_is_json(client, db):
    assert client.get("/api/boards/nope/").json()["code"] == "board_not_found"
