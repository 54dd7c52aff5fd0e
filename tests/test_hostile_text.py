"""Names and titles with markup, RTL text, emoji and 10 KB: stored as given, shown as text."""

import html

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client

from live.models import Board, Player
from tests.conftest import receive, spectate

HOSTILE_NAMES = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</td></tr></table><h1>injected</h1>",
    "{{ 7|add:7 }} {% now 'Y' %}",  # template syntax in data is never evaluated
    "javascript:alert(1)",
    "\u202eevil\u202c مرحبا עברית",  # right-to-left override, Arabic, Hebrew
    "👩🏽‍💻 🏳️‍🌈 Zoë",  # emoji with joiners and modifiers, a combining accent
    "zero\u200bwidth\u0000nul",
]
TEN_KB = "A" * 10_240


@pytest.fixture
def hostile_board(db) -> Board:
    board = Board.objects.create(name="<b onmouseover=alert(1)>Finals</b> 🏆", slug="hostile")
    for score, name in enumerate(HOSTILE_NAMES):
        Player.objects.create(board=board, name=name, score=score)
    return board


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", password="pw-for-tests-only"))
    return client


def assert_inert(page: str, texts: list[str]) -> None:
    """Every text appears escaped, none as markup."""
    for text in texts:
        assert (
            html.escape(text, quote=True).replace("&#x27;", "&#x27;") in page or html.escape(text) in page
        ), text
    assert "<script>alert" not in page and "<img src=x" not in page and "<h1>injected" not in page
    assert "<b onmouseover" not in page
    assert "14 2026" not in page  # the template syntax stayed text


def test_the_page_shows_hostile_names_as_text(hostile_board):
    page = Client().get("/boards/hostile/").content.decode()
    assert_inert(page, [*HOSTILE_NAMES, hostile_board.name])


def test_the_board_list_shows_a_hostile_title_as_text(hostile_board):
    assert_inert(Client().get("/").content.decode(), [hostile_board.name])


@pytest.mark.parametrize("url", ["/admin/live/player/", "/admin/live/board/", "board change form"])
def test_the_admin_shows_hostile_names_as_text(hostile_board, staff, url):
    if url == "board change form":
        url = f"/admin/live/board/{hostile_board.pk}/change/"
    page = staff.get(url).content.decode()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b onmouseover" not in page


def test_the_json_api_returns_names_exactly(hostile_board):
    response = Client().get("/api/boards/hostile/")
    assert response["Content-Type"] == "application/json"
    snapshot = response.json()
    assert snapshot["board"]["name"] == hostile_board.name
    assert sorted(p["name"] for p in snapshot["players"]) == sorted(HOSTILE_NAMES)


@pytest.mark.django_db(transaction=True)
async def test_the_websocket_carries_names_exactly(hostile_board):
    async with spectate("hostile") as ws:
        snapshot = await receive(ws)
    assert snapshot["board"]["name"] == hostile_board.name
    assert sorted(p["name"] for p in snapshot["players"]) == sorted(HOSTILE_NAMES)


@pytest.mark.parametrize(
    "make",
    [
        lambda board: Board(name=TEN_KB, slug="long"),
        lambda board: Board(name="Long slug", slug="s" * 101),
        lambda board: Player(board=board, name=TEN_KB),
        lambda board: Player(board=board, name="😀" * 101),
    ],
    ids=["board name", "slug", "player name", "101 emoji"],
)
def test_the_model_rejects_over_long_text(board, make):
    with pytest.raises(ValidationError):
        make(board).full_clean()


def test_max_length_counts_characters_not_bytes(board):
    Player(board=board, name="😀" * 100).full_clean()  # 400 bytes in UTF-8


def test_the_admin_refuses_a_10_kb_board_name_with_a_form_error(staff):
    response = staff.post(
        "/admin/live/board/add/",
        {
            "name": TEN_KB,
            "slug": "long",
            "is_public": "on",
            "players-TOTAL_FORMS": "1",
            "players-INITIAL_FORMS": "0",
            "players-MIN_NUM_FORMS": "0",
            "players-MAX_NUM_FORMS": "1000",
            "players-0-name": TEN_KB,
            "players-0-score": "1",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("Ensure this value has at most 100 characters") == 2
    assert not Board.objects.exists() and not Player.objects.exists()


def test_the_admin_refuses_a_10_kb_player_name_with_a_form_error(staff, board):
    response = staff.post("/admin/live/player/add/", {"board": board.pk, "name": TEN_KB, "score": "1"})
    assert response.status_code == 200
    assert "Ensure this value has at most 100 characters" in response.content.decode()
    assert not Player.objects.exists()
