"""No lost edits: two staff members in the admin at once, each with their own logged-in session.

Every page is loaded, filled in and submitted as a browser does (CSRF enforced), so a page
loaded before another member's save is submitted stale, as in the field. The same tests
run on PostgreSQL with `make test-postgres` (DATABASE_URL pointed at a server).
"""

import html
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone

from harness.admin_pages import AdminForm
from harness.admin_session import PLAYERS
from harness.admin_session import AdminSession as Staff
from live.models import Board, Change, Player
from live.scores import changes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def board(demo_board) -> Board:
    return demo_board


def player(name: str) -> Player:
    return Player.objects.get(name=name)


def scores() -> dict[str, int]:
    return dict(Player.objects.values_list("name", "score"))


def errors(response) -> list[str]:
    """The texts of the error lists on a page, unescaped."""
    page = response.content.decode()
    return [
        html.unescape(re.sub(r"<[^>]+>", "", item))
        for block in re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', page, re.S)
        for item in re.findall(r"<li>(.*?)</li>", block, re.S)
    ]


def when(change: Change) -> str:
    return timezone.localtime(change.at).strftime("%Y-%m-%d %H:%M:%S %Z")


def last_record(board: Board) -> Change:
    return Change.objects.filter(board=board).order_by("-version").first()


# --- the player change form ----------------------------------------------------------------


def test_two_staff_save_one_players_form_the_second_is_refused_naming_the_first(board, staff1, staff2):
    """Bug (a): both open Ken's form and save; the first value used to be lost."""
    ken = player("Ken")
    page1, page2 = staff1.open_player(ken), staff2.open_player(ken)
    assert staff1.save_player(ken, page1.set("score", 20)).status_code == 302
    saved_by_staff1 = last_record(board)

    response = staff2.save_player(ken, page2.set("score", 25))

    assert response.status_code == 200
    assert errors(response) == [
        f"staff1 changed score to 20 at {when(saved_by_staff1)}, after this page was loaded (it showed 14). "
        "Nothing was saved. The page now has your value: save again to replace 20 with it."
    ]
    assert player("Ken").score == 20
    assert last_record(board) == saved_by_staff1, "staff2 recorded nothing"
    assert not LogEntry.objects.filter(user=staff2.user).exists()


def test_saving_again_after_the_refusal_is_a_deliberate_overwrite(board, staff1, staff2):
    ken = player("Ken")
    page1, page2 = staff1.open_player(ken), staff2.open_player(ken)
    staff1.save_player(ken, page1.set("score", 20))
    refused = staff2.save_player(ken, page2.set("score", 25))

    again = AdminForm(refused.content.decode(), "player_form")
    assert again.get("score") == "25" and again.get("initial-score") == "20"
    assert staff2.save_player(ken, again).status_code == 302
    assert player("Ken").score == 25


def test_a_rename_in_a_stale_form_keeps_the_points_given_meanwhile(board, staff1, staff2):
    """Bug (c): staff 2 only renames Ken; staff 1's points stay, and the history says "name"."""
    ken = player("Ken")
    page = staff2.open_player(ken)
    staff1.award("award_5", ken)

    assert staff2.save_player(ken, page.set("name", "Ken T.")).status_code == 302

    ken.refresh_from_db()
    assert (ken.name, ken.score) == ("Ken T.", 19)
    history = LogEntry.objects.get(user=staff2.user)
    assert history.get_change_message() == "Changed Name."
    entry = last_record(board).players.get()
    assert (entry.name_before, entry.name_after, entry.score_before, entry.score_after) == (
        "Ken",
        "Ken T.",
        19,
        19,
    )


def test_a_change_made_by_a_script_is_named_as_such(board, staff2):
    ken = player("Ken")
    page = staff2.open_player(ken)
    with changes.attributed(source=Change.Source.SIMULATE):
        ken.score = 16
        ken.save()

    response = staff2.save_player(ken, page.set("score", 30))

    assert response.status_code == 200
    assert errors(response)[0].startswith(
        f"a script (simulate) changed score to 16 at {when(last_record(board))}"
    )
    assert player("Ken").score == 16


def test_the_same_change_made_by_both_is_no_conflict_and_no_second_write(board, staff1, staff2):
    ken = player("Ken")
    page1, page2 = staff1.open_player(ken), staff2.open_player(ken)
    staff1.save_player(ken, page1.set("score", 20))
    version = Board.objects.get(pk=board.pk).version

    assert staff2.save_player(ken, page2.set("score", 20)).status_code == 302
    assert Board.objects.get(pk=board.pk).version == version
    assert LogEntry.objects.get(user=staff2.user).get_change_message() == "No fields changed."


def test_a_post_without_the_originals_is_refused_then_saved_as_shown(board, staff2):
    """A page rendered before this feature (or a hand-made POST) cannot say what it showed."""
    ken = player("Ken")
    page = staff2.open_player(ken).set("score", 30)
    fields = [(key, value) for key, value in page.submit() if not key.startswith("initial-")]

    response = staff2.post(f"{PLAYERS}{ken.pk}/change/", fields)

    assert response.status_code == 200
    assert "did not send the value it showed" in errors(response)[0]
    assert player("Ken").score == 14
    assert staff2.save_player(ken, AdminForm(response.content.decode(), "player_form")).status_code == 302
    assert player("Ken").score == 30


# --- the Players changelist (list_editable) --------------------------------------------------


def test_a_stale_players_list_keeps_the_points_given_meanwhile(board, staff1, staff2):
    """Bug (b): staff 1 gives Ken +5; staff 2's older list, changing only Radia, used to undo it."""
    ken, radia = player("Ken"), player("Radia")
    page = staff2.open_players()
    staff1.award("award_5", ken)

    response = staff2.save_players(page.set(f"{page.row(radia.pk)}-score", 12))

    assert response.status_code == 302
    assert (player("Ken").score, player("Radia").score) == (19, 12)
    assert "1 player was changed successfully." in staff2.client.get(response["Location"]).content.decode()


def test_a_stale_players_list_writes_back_none_of_the_rows_the_user_left_alone(board, staff1, staff2):
    """Staff 2 edits only Ada in an old list; the seven others, changed meanwhile, keep their scores."""
    ada = player("Ada")
    others = list(Player.objects.exclude(pk=ada.pk))
    page = staff2.open_players()
    staff1.award("award_1", *others)
    changed_meanwhile = scores()

    assert staff2.save_players(page.set(f"{page.row(ada.pk)}-score", 50)).status_code == 302

    assert scores() == {**changed_meanwhile, "Ada": 50}
    assert last_record(board).players.count() == 1


def test_a_row_changed_by_both_refuses_the_whole_list_naming_who_changed_it(board, staff1, staff2):
    """The whole submit is refused: no row of it is saved, the conflicting row says why."""
    ada, radia = player("Ada"), player("Radia")
    page = staff2.open_players()
    staff1.save_player(ada, staff1.open_player(ada).set("score", 60))
    saved_by_staff1 = last_record(board)
    before = scores()

    response = refused(staff2, page, {ada: 45, radia: 12})
    assert errors(response) == [
        f"staff1 changed score to 60 at {when(saved_by_staff1)}, after this page was loaded (it showed 42). "
        "Nothing was saved. The page now has your value: save again to replace 60 with it."
    ]
    assert scores() == before
    # The error is shown in Ada's own row, although she moved up in the standings.
    row = re.search(
        r"<tr[^>]*>((?:(?!</tr>).)*errorlist(?:(?!</tr>).)*)</tr>", response.content.decode(), re.S
    )
    assert f"/admin/live/player/{ada.pk}/change/" in row[1]


def refused(staff: Staff, page, scores: dict[Player, int]):
    """Save these scores in a Players list loaded earlier; the page comes back refused."""
    for row_player, score in scores.items():
        page = page.set(f"{page.row(row_player.pk)}-score", score)
    response = staff.save_players(page)
    assert response.status_code == 200
    return response


def delete_player(staff: Staff, player: Player) -> None:
    path = f"{PLAYERS}{player.pk}/delete/"
    assert staff.post(path, staff.open(path, None).submit(None)).status_code == 302


def test_a_row_deleted_meanwhile_is_skipped_if_untouched_and_named_if_changed(board, staff1, staff2):
    ada, radia, ken = player("Ada"), player("Radia"), player("Ken")
    page = staff2.open_players()
    delete_player(staff1, radia)

    assert staff2.save_players(page.set(f"{page.row(ada.pk)}-score", 50)).status_code == 302
    assert player("Ada").score == 50

    page = staff2.open_players()
    delete_player(staff1, ken)
    deleted = last_record(board)
    response = refused(staff2, page, {ada: 51, ken: 1})
    assert errors(response) == [
        f"“Ken” was deleted or moved by staff1 at {when(deleted)}, after this page was loaded. "
        "Nothing was saved."
    ]
    assert player("Ada").score == 50


def test_an_inline_row_moved_to_another_board_meanwhile_is_left_alone(board, staff1, staff2):
    radia, ada = player("Radia"), player("Ada")
    other = Board.objects.create(name="Other league", slug="other")
    page = staff2.open_board(board)
    staff1.save_player(radia, staff1.open_player(radia).set("board", other.pk))

    response = staff2.save_board(board, page.set(f"{page.row(ada.pk, 'players')}-score", 50))

    assert response.status_code == 302
    assert (player("Ada").score, player("Radia").board_id) == (50, other.pk)


# --- the Board change form and its players inline ------------------------------------------


def test_a_stale_board_form_that_only_renames_keeps_the_board_private(board, staff1, staff2):
    """A board another admin had just made private used to become public again."""
    page = staff2.open_board(board)
    staff1.save_board(board, staff1.open_board(board).set("is_public", False))

    assert staff2.save_board(board, page.set("name", "Demo cup")).status_code == 302

    board.refresh_from_db()
    assert (board.name, board.is_public) == ("Demo cup", False)
    assert last_record(board).board_fields == {"name": ["Demo league", "Demo cup"]}
    assert LogEntry.objects.get(user=staff2.user).get_change_message() == "Changed Name."


def test_both_making_a_board_private_is_no_conflict(board, staff1, staff2):
    page1, page2 = staff1.open_board(board), staff2.open_board(board)
    staff1.save_board(board, page1.set("is_public", False))
    version = Board.objects.get(pk=board.pk).version

    assert staff2.save_board(board, page2.set("is_public", False)).status_code == 302
    assert Board.objects.get(pk=board.pk).version == version


def test_a_board_renamed_by_both_refuses_the_second(board, staff1, staff2):
    page1, page2 = staff1.open_board(board), staff2.open_board(board)
    staff1.save_board(board, page1.set("name", "Demo cup").set("is_public", False))
    saved_by_staff1 = last_record(board)

    response = staff2.save_board(board, page2.set("name", "Demo open"))

    assert response.status_code == 200
    assert errors(response) == [
        f"staff1 changed name to “Demo cup” at {when(saved_by_staff1)}, after this page was loaded "
        "(it showed “Demo league”). Nothing was saved. The page now has your value: save again to "
        "replace “Demo cup” with it."
    ]
    board.refresh_from_db()
    assert (board.name, board.is_public) == ("Demo cup", False)
    again = AdminForm(response.content.decode(), "board_form")
    assert again.get("is_public") is None, "the page shows the board private now"


def test_a_stale_inline_keeps_the_points_given_meanwhile(board, staff1, staff2):
    ken, radia = player("Ken"), player("Radia")
    page = staff2.open_board(board)
    staff1.award("award_5", ken)

    assert staff2.save_board(board, page.set(f"{page.row(radia.pk, 'players')}-score", 12)).status_code == 302

    assert (player("Ken").score, player("Radia").score) == (19, 12)
    assert last_record(board).players.count() == 1
    assert LogEntry.objects.get(user=staff2.user).get_change_message() == "Changed Score for player “Radia”."


def test_an_inline_row_changed_by_both_refuses_the_whole_board_form(board, staff1, staff2):
    radia = player("Radia")
    page = staff2.open_board(board)
    list_page = staff1.open_players()
    staff1.save_players(list_page.set(f"{list_page.row(radia.pk)}-score", 15))
    saved_by_staff1 = last_record(board)

    response = staff2.save_board(
        board, page.set("name", "Demo cup").set(f"{page.row(radia.pk, 'players')}-score", 12)
    )

    assert response.status_code == 200
    assert errors(response) == [
        f"staff1 changed score to 15 at {when(saved_by_staff1)}, after this page was loaded (it showed 9). "
        "Nothing was saved. The page now has your value: save again to replace 15 with it."
    ]
    board.refresh_from_db()
    assert (board.name, player("Radia").score) == ("Demo league", 15)


# --- who and what the records say ------------------------------------------------------------


def source_of_last_change(board: Board) -> tuple[str, str | None]:
    record = last_record(board)
    return record.source, record.user and record.user.username


def test_each_admin_path_records_its_user_and_source(board, staff1):
    ken, radia = player("Ken"), player("Radia")
    staff1.save_player(ken, staff1.open_player(ken).set("score", 21))
    assert source_of_last_change(board) == ("form", "staff1")

    page = staff1.open_players()
    staff1.save_players(page.set(f"{page.row(ken.pk)}-score", 22))
    assert source_of_last_change(board) == ("list", "staff1")

    staff1.award("award_1", ken, radia)
    assert source_of_last_change(board) == ("action", "staff1")

    page = staff1.open_board(board)
    staff1.save_board(board, page.set(f"{page.row(ken.pk, 'players')}-score", 24))
    assert source_of_last_change(board) == ("inline", "staff1")

    page = staff1.open_board(board)
    staff1.save_board(board, page.set("name", "Demo cup").set(f"{page.row(ken.pk, 'players')}-score", 25))
    assert source_of_last_change(board) == ("form", "staff1"), "the board's own change came first"
    assert last_record(board).players.get().score_after == 25


def test_deletes_through_the_admin_record_their_user_and_source(board, staff1):
    ken, radia = player("Ken"), player("Radia")
    confirm = staff1.open(f"{PLAYERS}{ken.pk}/delete/", None)
    assert staff1.post(f"{PLAYERS}{ken.pk}/delete/", confirm.submit(None)).status_code == 302
    assert source_of_last_change(board) == ("form", "staff1")

    page = staff1.open_players().set("action", "delete_selected").tick("_selected_action", radia.pk)
    confirm = AdminForm(staff1.post(PLAYERS, page.submit("index", "0")).content.decode(), None)
    assert staff1.post(PLAYERS, confirm.submit(None)).status_code == 302
    assert source_of_last_change(board) == ("action", "staff1")
    assert not Player.objects.filter(name__in=["Ken", "Radia"]).exists()
