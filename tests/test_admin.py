"""Staff edit scores in the admin; every path goes through the broadcast."""

import json

import pytest

from live.models import Board, Player
from tests.conftest import in_thread

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_admin_needs_a_staff_login(client, players):
    response = client.get("/admin/live/player/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_logged_in_non_staff_user_cannot_reach_the_admin(client, django_user_model, players):
    client.force_login(django_user_model.objects.create_user("fan", password="x" * 12))
    assert client.get("/admin/live/player/").status_code == 302


def test_the_admin_rejects_a_post_without_csrf_token(admin_user, players):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(f"/admin/live/player/{players[0].pk}/change/", {"score": 1})
    assert response.status_code == 403


def test_the_changelist_shows_editable_scores_filters_and_search(admin_client, players):
    Board.objects.create(name="Other", slug="other")
    response = admin_client.get("/admin/live/player/?q=Ad")
    html = response.content.decode()
    assert 'name="form-0-score"' in html
    assert "By board" in html
    # The rows found, not the page's text: a random CSRF token once contained "Bob".
    assert [player.name for player in response.context["cl"].result_list] == ["Ada"]


def changelist_post(players, scores: dict[str, int]) -> dict:
    data = {
        "form-TOTAL_FORMS": str(len(players)),
        "form-INITIAL_FORMS": str(len(players)),
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for i, player in enumerate(players):
        data[f"form-{i}-id"] = str(player.pk)
        data[f"form-{i}-score"] = str(scores.get(player.name, player.score))
        data[f"initial-form-{i}-score"] = str(player.score)  # what the page showed
    return data


async def test_a_list_editable_save_of_several_rows_is_one_update(admin_client, players, group_listener):
    next_message = await group_listener(players[0].board)
    ordered = await in_thread(lambda: list(Player.objects.all()))
    data = changelist_post(ordered, {"Bob": 40, "Cy": 5, "Dee": 35})
    response = await in_thread(admin_client.post, "/admin/live/player/", data)
    assert response.status_code == 302
    update = json.loads((await next_message())["text"])
    assert update["version"] == 3
    assert {p["name"]: (p["score"], p["rank"]) for p in update["players"]} == {
        "Bob": (40, 1),
        "Cy": (5, 4),
        "Dee": (35, 2),
    }
    ada = players[0]
    ada.score = 31
    await in_thread(ada.save)
    assert (await next_message())["version"] == 4, "the save above sent exactly one update"


async def test_the_points_action_goes_through_the_broadcast(admin_client, players, group_listener):
    next_message = await group_listener(players[0].board)
    data = {"action": "award_5", "_selected_action": [str(players[2].pk), str(players[3].pk)]}
    response = await in_thread(admin_client.post, "/admin/live/player/", data)
    assert response.status_code == 302
    update = json.loads((await next_message())["text"])
    assert {p["name"]: p["score"] for p in update["players"]} == {"Cy": 25, "Dee": 15}


def test_the_subtract_action_subtracts(admin_client, players):
    data = {"action": "award_minus_1", "_selected_action": [str(players[0].pk)]}
    admin_client.post("/admin/live/player/", data)
    assert Player.objects.get(pk=players[0].pk).score == 29


def test_the_change_form_saves_a_score(admin_client, players):
    ada = players[0]
    response = admin_client.post(
        f"/admin/live/player/{ada.pk}/change/",
        {"board": ada.board_id, "name": "Ada", "score": 3}
        | {"initial-board": ada.board_id, "initial-name": "Ada", "initial-score": 30},
    )
    assert response.status_code == 302
    ada.refresh_from_db()
    assert ada.score == 3


def test_the_board_form_edits_players_inline(admin_client, players):
    board = players[0].board
    html = admin_client.get(f"/admin/live/board/{board.pk}/change/").content.decode()
    assert 'name="players-0-score"' in html
    assert "version" in html
