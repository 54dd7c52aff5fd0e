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
    cy = re.search(rf'<tr data-player-id="{players[2].pk}"[^>]*>(.*?)</tr>', html, re.S).group(1)
    assert '<span data-field="rank">2</span>' in cy
    assert '<th scope="row" class="col-name"><span data-field="name">Cy</span></th>' in cy
    players[0].board.refresh_from_db()
    assert f'data-version="{players[0].board.version}"' in html
    assert 'data-events-path="/events/boards/finals/"' in html
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
        r'data-field="player-count">4 players<.*?Leader: <strong[^>]*>Ada</strong> \((<[^>]+>)?30<',
        finals,
        re.S,
    )
    empty_meta = empty.split("</li>")[0]
    assert 'data-field="player-count">0 players<' in empty_meta
    assert '<span data-field="leader" hidden>' in empty_meta, (
        "no leader shown (the page's script may set one)"
    )


def test_the_index_costs_one_query_however_many_boards(client, django_assert_num_queries, db):
    for index in range(30):
        board = Board.objects.create(name=f"Board {index}", slug=f"board-{index}")
        Player.objects.create(board=board, name="Solo", score=index)
    with django_assert_num_queries(1):
        html = client.get("/").content.decode()
    assert html.count('class="board-link"') == 30
    assert re.search(r"Leader: <strong[^>]*>Solo</strong> \((<[^>]+>)?29<", html)


# --- views of a board: tv, overlay, embed ----------------------------------------------


def rendered_rows(html: str) -> list[str]:
    return re.findall(r'<span data-field="name">([^<]+)</span>', html)


def test_the_tv_view_has_no_site_header_and_says_so_to_the_page(client, players):
    html = client.get("/boards/finals/?view=tv").content.decode()
    assert '<html lang="en" data-view="tv">' in html
    assert 'class="site-header"' not in html and 'type="search"' not in html
    assert rendered_rows(html) == ["Ada", "Bob", "Cy", "Dee"]


def test_an_unknown_view_is_the_page_itself(client, players):
    html = client.get("/boards/finals/?view=<script>").content.decode()
    assert '<html lang="en">' in html and 'class="site-header"' in html and 'type="search"' in html


@pytest.mark.parametrize(("query", "rows"), [("", 4), ("&top=2", 2), ("&top=0", 4), ("&top=x", 4)])
def test_the_overlay_shows_the_top_n(client, players, query, rows):
    html = client.get(f"/boards/finals/?view=overlay{query}").content.decode()
    assert '<html lang="en" data-view="overlay">' in html and 'class="site-header"' not in html
    assert rendered_rows(html) == ["Ada", "Bob", "Cy", "Dee"][:rows]
    assert f'data-top="{2 if rows == 2 else 10}"' in html


def test_a_tv_rotation_keeps_only_boards_the_viewer_may_watch(client, board):
    Board.objects.create(name="Semis", slug="semis")
    Board.objects.create(name="Secret", slug="secret", is_public=False)
    html = client.get(
        "/boards/finals/?view=tv&boards=semis,nope,secret,finals,semis,<x>&every=7"
    ).content.decode()
    assert 'data-rotation="semis,finals"' in html and 'data-every="7"' in html


@pytest.mark.parametrize(("every", "expected"), [("4", "20"), ("3601", "20"), ("soon", "20"), ("60", "60")])
def test_a_tv_rotation_period_stays_within_bounds(client, board, every, expected):
    html = client.get(f"/boards/finals/?view=tv&boards=finals&every={every}").content.decode()
    assert f'data-every="{expected}"' in html


def test_only_the_embed_may_be_framed_and_only_by_the_configured_origins(client, players, settings):
    settings.LIVE_EMBED_ORIGINS = ["https://club.example", "https://*.league.example"]
    embed = client.get("/boards/finals/embed/")
    assert embed.status_code == 200
    assert "X-Frame-Options" not in embed
    policy = embed["Content-Security-Policy"]
    assert "frame-ancestors https://club.example https://*.league.example" in policy
    assert "script-src 'self'" in policy and "'none';" not in policy.split("frame-ancestors")[1]
    assert '<html lang="en" data-view="embed">' in embed.content.decode()
    for url in ["/", "/boards/finals/", "/boards/finals/?view=tv", "/api/boards/finals/"]:
        response = client.get(url)
        assert response["X-Frame-Options"] == "DENY", url
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"], url


def test_without_embed_origins_nobody_may_frame_the_embed(client, players, settings):
    settings.LIVE_EMBED_ORIGINS = []
    assert "frame-ancestors 'none'" in client.get("/boards/finals/embed/")["Content-Security-Policy"]


def test_the_embed_of_a_private_board_follows_the_boards_rules(client, db):
    Board.objects.create(name="Secret", slug="secret", is_public=False)
    secret, missing = client.get("/boards/secret/embed/"), client.get("/boards/nope/embed/")
    assert secret.status_code == missing.status_code == 404, "no existence oracle"
