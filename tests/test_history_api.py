"""The history API and the timeline page: change-sets in order, a page at a time, who for staff only."""

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction

from live.models import Board, Player

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/boards/finals/history/"


def set_score(player: Player, score: int) -> None:
    player.score = score
    player.save()


def test_change_sets_come_oldest_first_with_each_players_old_and_new_score(client, players):
    ada, bob = players[0], players[1]
    set_score(ada, 35)
    with transaction.atomic():
        set_score(bob, 25)
        ada.name = "Ada L."
        ada.save()
    body = client.get(API).json()
    assert body["board"] == "finals"
    assert [c["version"] for c in body["changes"]] == [1, 2, 3, 4]
    assert body["changes"][2]["players"] == [{"id": ada.pk, "name": "Ada", "from": 30, "to": 35}]
    last = body["changes"][3]
    assert last["source"] == "script" and last["removed"] == []
    assert last["players"] == [
        {"id": ada.pk, "name": "Ada L.", "from": 35, "to": 35},
        {"id": bob.pk, "name": "Bob", "from": 20, "to": 25},
    ]
    assert last["at"].endswith("+00:00") and "T" in last["at"]


def test_added_and_removed_players_have_null_scores_and_removed_ids(client, players):
    dee_id = players[3].pk
    with transaction.atomic():
        players[3].delete()
        radia = Player.objects.create(board=players[0].board, name="Radia", score=4)
    [change] = client.get(API, {"after": 2}).json()["changes"]
    assert change["players"] == [
        {"id": dee_id, "name": "Dee", "from": 10, "to": None},
        {"id": radia.pk, "name": "Radia", "from": None, "to": 4},
    ]
    assert change["removed"] == [dee_id]


def test_after_and_limit_page_through_the_change_sets(client, players):
    for score in range(40, 45):
        set_score(players[3], score)  # versions 3 to 7
    page = client.get(API, {"after": 3, "limit": 2}).json()["changes"]
    assert [c["version"] for c in page] == [4, 5]
    page = client.get(API, {"after": 5, "limit": 2}).json()["changes"]
    assert [c["version"] for c in page] == [6, 7]
    assert client.get(API, {"after": 7, "limit": 2}).json()["changes"] == []


def test_the_limit_is_100_unless_asked_and_at_most_1000(client, board):
    with transaction.atomic():
        Player.objects.bulk_create([Player(board=board, name=f"P{i}") for i in range(3)])
    player = Player.objects.filter(board=board).first()
    for score in range(120):
        set_score(player, score)  # versions 2 to 121
    assert len(client.get(API).json()["changes"]) == 100
    assert len(client.get(API, {"limit": 1000}).json()["changes"]) == 121
    assert len(client.get(API, {"limit": 7}).json()["changes"]) == 7


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"after": "x"}, "after must be an integer."),
        ({"after": "-1"}, "after must be at least 0."),
        ({"after": "1.5"}, "after must be an integer."),
        ({"limit": "0"}, "limit must be from 1 to 1000."),
        ({"limit": "1001"}, "limit must be from 1 to 1000."),
        ({"limit": ""}, "limit must be an integer."),
    ],
)
def test_bad_parameters_are_400_with_an_error_frame(client, players, query, message):
    response = client.get(API, query)
    assert response.status_code == 400
    assert response.json() == {"type": "error", "code": "invalid_query", "message": message}


def test_staff_see_who_made_each_change_set(admin_client, admin_user, players):
    from live.scores.changes import attributed

    with attributed(user=admin_user, source="form"):
        set_score(players[0], 50)
    changes = admin_client.get(API).json()["changes"]
    assert [(c["source"], c["by"]) for c in changes] == [
        ("script", None),
        ("script", None),
        ("form", "admin"),
    ]


def test_spectators_never_see_who(client, django_user_model, admin_user, players):
    from live.scores.changes import attributed

    with attributed(user=admin_user, source="form"):
        set_score(players[0], 50)
    assert all("by" not in c for c in client.get(API).json()["changes"])
    fan = django_user_model.objects.create_user("fan", password="x" * 12)
    fan.user_permissions.add(Permission.objects.get(codename="view_private_board"))
    client.force_login(fan)
    assert all("by" not in c for c in client.get(API).json()["changes"])


def test_a_private_boards_history_is_not_found_for_outsiders(client, django_user_model, players):
    """As for the board itself: an outsider cannot tell a private board from a missing one."""
    Board.objects.filter(slug="finals").update(is_public=False)
    response = client.get(API)
    assert response.status_code == 404
    assert response.json() == client.get("/api/boards/nope/history/").json()
    assert "Finals" not in response.content.decode()
    assert client.get("/boards/finals/history/").status_code == 404
    fan = django_user_model.objects.create_user("fan", password="x" * 12)
    fan.user_permissions.add(Permission.objects.get(codename="view_private_board"))
    client.force_login(fan)
    assert client.get(API).status_code == 200
    assert client.get("/boards/finals/history/").status_code == 200


def test_an_unknown_board_is_404(client, db):
    response = client.get("/api/boards/nope/history/")
    assert response.status_code == 404 and response.json()["code"] == "board_not_found"
    assert client.get("/boards/nope/history/").status_code == 404


def test_the_timeline_lists_change_sets_newest_first_in_words(client, players):
    ada = players[0]
    set_score(ada, 35)
    ada.name = "Ada L."
    ada.save()
    html = client.get("/boards/finals/history/").content.decode()
    assert html.index("v4") < html.index("v3") < html.index("v1")
    assert "Ada renamed to “Ada L.”" in html and "Ada 30 → 35" in html
    assert "Dee added (10)" in html and "board created" in html
    assert "by " not in html


def test_the_timeline_is_paginated_50_a_page(client, players):
    for score in range(60):
        set_score(players[3], score)  # versions 3 to 62
    first = client.get("/boards/finals/history/").content.decode()
    assert 'data-version="62"' in first and 'data-version="13"' in first
    assert 'data-version="12"' not in first and 'rel="next"' in first
    second = client.get("/boards/finals/history/", {"page": 2}).content.decode()
    assert 'data-version="12"' in second and 'data-version="1"' in second and 'rel="prev"' in second


def test_the_timeline_escapes_names(client, board):
    Player.objects.create(board=board, name="<b>Eve</b>")
    html = client.get("/boards/finals/history/").content.decode()
    assert "<b>Eve</b>" not in html and "&lt;b&gt;Eve&lt;/b&gt;" in html
