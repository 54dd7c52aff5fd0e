"""Pages and the JSON snapshot endpoint."""

import re

import pytest
from django.utils.text import slugify

from live.models import Board, Player
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


def board_names_in_list(client) -> list[str]:
    html = client.get("/").content.decode()
    return re.findall(r'<a class="board-link" href="[^"]+">([^<]+)</a>', html)


def test_the_index_sorts_numbers_in_names_as_numbers(client, db):
    for name in ["Plain 100", "Plain 60", "plain 7", "Plain 60b", "Alpha"]:
        Board.objects.create(name=name, slug=slugify(name))
    assert board_names_in_list(client) == ["Alpha", "plain 7", "Plain 60", "Plain 60b", "Plain 100"]


def test_the_index_shows_each_boards_leader_and_player_count(client, players):
    Board.objects.create(name="Empty", slug="empty")
    html = client.get("/").content.decode()
    finals, empty = html.split('href="/boards/finals/"')[1], html.split('href="/boards/empty/"')[1]
    assert re.search(
        r'data-field="player-count">4 players<.*?Leader: <strong>Ada</strong> \(30\)', finals, re.S
    )
    empty_meta = empty.split("</li>")[0]
    assert 'data-field="player-count">0 players<' in empty_meta and "Leader" not in empty_meta


def test_the_index_costs_one_query_however_many_boards(client, django_assert_num_queries, db):
    for index in range(30):
        board = Board.objects.create(name=f"Board {index}", slug=f"board-{index}")
        Player.objects.create(board=board, name="Solo", score=index)
    with django_assert_num_queries(1):
        html = client.get("/").content.decode()
    assert html.count('class="board-link"') == 30
    assert "Leader: <strong>Solo</strong> (29)" in html
