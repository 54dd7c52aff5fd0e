"""The admin's Changes: every change-set read-only, filtered and searched, linked from players and
boards, with an Undo action that makes a new change-set or lists the conflicts."""

import re

import pytest
from django.contrib.auth.models import Permission, User

from harness.admin_session import AdminSession as Staff
from live.models import Board, Change, Player
from live.scores.changes import attributed

pytestmark = pytest.mark.django_db(transaction=True)

CHANGES = "/admin/live/change/"


@pytest.fixture
def board(demo_board) -> Board:
    return demo_board


def player(name: str) -> Player:
    return Player.objects.get(name=name)


def rows(html: str) -> list[list[str]]:
    """The changelist's rows: [version, when, who, source, changes, board] as text."""
    if 'id="result_list"' not in html:
        return []
    body = html.split('id="result_list"', 1)[1].split("</table>", 1)[0].split("<tbody>", 1)[1]
    return [
        [
            " ".join(re.sub(r"<[^>]+>", " ", cell).split())
            for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
        ][1:]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def versions(staff: Staff, query: str = "") -> list[str]:
    return [row[0] for row in rows(staff.client.get(f"{CHANGES}?{query}").content.decode())]


def messages(response) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", m).strip()
        for m in re.findall(r'<li class="(?:error|success)">(.*?)</li>', response.content.decode(), re.S)
    ]


def test_each_row_shows_version_when_who_source_and_the_changes_in_words(board, staff1):
    ken, ada = player("Ken"), player("Ada")
    staff1.save_player(ken, staff1.open_player(ken).set("score", 19))
    staff1.save_player(ada, staff1.open_player(ada).set("name", "Ada L."))
    page = rows(staff1.client.get(CHANGES).content.decode())
    assert [row[:1] + row[2:] for row in page] == [
        ["3", "staff1", "Form", "Ada renamed to “Ada L.”", "Demo league"],
        ["2", "staff1", "Form", "Ken 14 → 19", "Demo league"],
        [
            "1",
            "a script",
            "Script",
            "board created; Ada added (42); Grace added (37); Linus added (35); Margaret added (35); "
            "… and 4 more",
            "Demo league",
        ],
    ]
    assert re.fullmatch(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC", page[0][1]), "when, to the second"


def test_nobody_may_add_change_or_delete_a_change_set(board, staff1):
    html = staff1.client.get(CHANGES).content.decode()
    assert "/admin/live/change/add/" not in html and "delete_selected" not in html
    assert staff1.client.get(f"{CHANGES}add/").status_code == 403
    record = Change.objects.get(board=board, version=1)
    detail = staff1.client.get(f"{CHANGES}{record.pk}/change/").content.decode()
    assert 'name="_save"' not in detail and "Ken added (14)" in detail
    assert staff1.client.post(f"{CHANGES}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Change.objects.filter(pk=record.pk).exists()


def test_a_staff_member_without_permission_sees_no_changes(board, db):
    User.objects.create_user("clerk", password="pw-for-tests-only", is_staff=True)
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username="clerk"))
    assert client.get(CHANGES).status_code == 403
    clerk = User.objects.get(username="clerk")
    clerk.user_permissions.add(Permission.objects.get(codename="view_change"))
    html = client.get(CHANGES).content.decode()
    assert "board created" in html and 'value="undo"' not in html, "viewing is not undoing"


def test_filters_by_board_player_user_and_source(board, staff1):
    cup = Board.objects.create(name="Cup", slug="cup")
    ken, radia = player("Ken"), player("Radia")
    staff1.save_player(ken, staff1.open_player(ken).set("score", 19))
    staff1.award("award_1", radia)
    ken.refresh_from_db()
    ken.score = 1
    ken.save()
    assert versions(staff1, f"board__id__exact={cup.pk}") == ["1"]
    assert versions(staff1, f"board__id__exact={board.pk}") == ["4", "3", "2", "1"]
    assert versions(staff1, f"player={ken.pk}") == ["4", "2", "1"]
    assert versions(staff1, f"player={radia.pk}&source__exact=action") == ["3"]
    assert versions(staff1, f"user__id__exact={staff1.user.pk}") == ["3", "2"]
    assert versions(staff1, "source__exact=script") == ["4", "1", "1"]
    assert versions(staff1, "user__isnull=True") == ["4", "1", "1"], "made by no user: scripts"
    filters = staff1.client.get(f"{CHANGES}?board__id__exact={board.pk}").content.decode()
    assert f"?board__id__exact={board.pk}&amp;player={ken.pk}" in filters, "the board's players are offered"


def test_search_finds_player_names_and_usernames(board, staff1):
    ken = player("Ken")
    staff1.save_player(ken, staff1.open_player(ken).set("name", "Kenneth"))
    assert versions(staff1, "q=Kenneth") == ["2"]
    assert versions(staff1, "q=staff1") == ["2"]
    assert versions(staff1, "q=Ken") == ["2", "1"]


def test_player_and_board_pages_link_to_their_history(board, staff1):
    ken = player("Ken")
    html = staff1.client.get(f"/admin/live/player/{ken.pk}/change/").content.decode()
    assert f'href="{CHANGES}?player={ken.pk}">History of this player</a>' in html
    html = staff1.client.get(f"/admin/live/board/{board.pk}/change/").content.decode()
    assert f'href="{CHANGES}?board__id__exact={board.pk}">History of this board</a>' in html
    # A player with no record yet still filters (to nothing), instead of the filter being dropped.
    [newcomer] = Player.objects.bulk_create([Player(board=board, name="Hedy")])
    assert versions(staff1, f"player={newcomer.pk}") == []


def undo(staff: Staff, record: Change):
    page = staff.open(CHANGES, "changelist-form").set("action", "undo").tick("_selected_action", record.pk)
    return staff.client.post(CHANGES, dict_of(page.submit("index", "0")), follow=True)


def dict_of(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    data: dict[str, list[str]] = {}
    for key, value in fields:
        data.setdefault(key, []).append(value)
    return data


def test_the_undo_action_restores_as_a_new_change_set_by_the_staff_member(board, staff1, staff2):
    ken, radia = player("Ken"), player("Radia")
    staff1.award("award_5", ken, radia)
    awarded = Change.objects.get(board=board, version=2)

    response = undo(staff2, awarded)

    assert messages(response) == ["Version 2 of “Demo league” undone: the board is at version 3."]
    assert (player("Ken").score, player("Radia").score) == (14, 9)
    new = Change.objects.get(board=board, version=3)
    assert (new.source, new.user.username, new.undoes) == ("undo", "staff2", 2)
    assert rows(response.content.decode())[0][4] == "undo of version 2; Ken 19 → 14; Radia 14 → 9"


def test_the_undo_action_refuses_and_lists_the_conflicts(board, staff1, staff2):
    ken, radia = player("Ken"), player("Radia")
    staff1.award("award_5", ken, radia)
    awarded = Change.objects.get(board=board, version=2)
    page = staff2.open_players()
    staff2.save_players(page.set(f"{page.row(ken.pk)}-score", 40))

    response = undo(staff1, awarded)

    said = messages(response)
    assert said[0] == "Version 2 was not undone: what it changed was changed again since."
    assert said[1].startswith("Ken: score should be 19, is 40 (changed by staff2 through list at ")
    assert len(said) == 2
    assert (player("Ken").score, player("Radia").score) == (40, 14)
    assert Board.objects.get(pk=board.pk).version == 3


def test_the_undo_action_takes_exactly_one_change_set(board, staff1):
    staff1.award("award_1", player("Ken"))
    page = staff1.open(CHANGES, "changelist-form").set("action", "undo")
    for record in Change.objects.all()[:2]:
        page.tick("_selected_action", record.pk)
    response = staff1.client.post(CHANGES, dict_of(page.submit("index", "0")), follow=True)
    assert messages(response) == ["Select exactly one change-set to undo."]
    assert player("Ken").score == 15


def test_points_actions_simulate_and_scripts_all_appear(board, staff1):
    with attributed(source="simulate"):
        ken = player("Ken")
        ken.score = 2
        ken.save()
    staff1.award("award_1", player("Radia"))
    page = rows(staff1.client.get(CHANGES).content.decode())
    assert [row[2:5] for row in page] == [
        ["staff1", "Action", "Radia 9 → 10"],
        ["a script (simulate)", "Simulate", "Ken 14 → 2"],
        ["a script", "Script", page[2][4]],
    ]
