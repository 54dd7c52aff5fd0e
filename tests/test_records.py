"""On the record: every write path leaves one change-set with the right old and new values, user and source.

Admin pages are loaded and submitted as a browser does (tests/test_no_lost_edits.py's Staff);
undo and import have their own modules (tests/test_undo.py, tests/test_import_export.py).
"""

import pytest
from django.core.management import call_command
from django.db import transaction

from harness.admin_session import PLAYERS
from harness.admin_session import AdminSession as Staff
from live.models import Board, Change, Player

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def board(demo_board) -> Board:
    return demo_board


@pytest.fixture
def staff(db) -> Staff:
    return Staff("staff1")


def player(name: str) -> Player:
    return Player.objects.get(name=name)


def last_record(board: Board) -> Change:
    return Change.objects.filter(board=board).order_by("-version").first()


def entries(change: Change) -> dict[str, tuple]:
    """Each player of a change-set by name: (name before, name after, score before, score after)."""
    return {
        (e.name_after or e.name_before): (e.name_before, e.name_after, e.score_before, e.score_after)
        for e in change.players.all()
    }


def one_new_record(board: Board, version: int) -> Change:
    """The change-set the step under test made: exactly one, numbered version + 1."""
    board.refresh_from_db()
    assert board.version == version + 1, "exactly one change-set"
    record = last_record(board)
    assert record.version == board.version
    return record


def attribution(record: Change) -> tuple[str, str | None]:
    return record.source, record.user and record.user.username


def test_the_player_change_form_records_name_and_score(board, staff):
    ken, version = player("Ken"), board.version
    page = staff.open_player(ken).set("name", "Ken T.").set("score", 19)
    assert staff.save_player(ken, page).status_code == 302
    record = one_new_record(board, version)
    assert attribution(record) == ("form", "staff1")
    assert entries(record) == {"Ken T.": ("Ken", "Ken T.", 14, 19)}


def test_the_player_add_form_records_an_added_player(board, staff):
    version = board.version
    page = staff.open(f"{PLAYERS}add/", "player_form")
    page.set("board", board.pk).set("name", "Hedy").set("score", 3)
    assert staff.post(f"{PLAYERS}add/", page.submit()).status_code == 302
    record = one_new_record(board, version)
    assert attribution(record) == ("form", "staff1")
    assert entries(record) == {"Hedy": (None, "Hedy", None, 3)}


def test_moving_a_player_records_it_leaving_one_board_and_joining_the_other(board, staff):
    other = Board.objects.create(name="Cup", slug="cup")
    other.refresh_from_db()
    ken, version, other_version = player("Ken"), board.version, other.version
    assert staff.save_player(ken, staff.open_player(ken).set("board", other.pk)).status_code == 302
    left = one_new_record(board, version)
    joined = one_new_record(other, other_version)
    assert entries(left) == {"Ken": ("Ken", None, 14, None)}
    assert entries(joined) == {"Ken": (None, "Ken", None, 14)}
    assert attribution(left) == attribution(joined) == ("form", "staff1")


def test_the_changelist_records_only_the_rows_changed_in_one_change_set(board, staff):
    ken, radia, version = player("Ken"), player("Radia"), board.version
    page = staff.open_players()
    page.set(f"{page.row(ken.pk)}-score", 20).set(f"{page.row(radia.pk)}-score", 1)
    assert staff.save_players(page).status_code == 302
    record = one_new_record(board, version)
    assert attribution(record) == ("list", "staff1")
    assert entries(record) == {"Ken": ("Ken", "Ken", 14, 20), "Radia": ("Radia", "Radia", 9, 1)}


def test_the_board_form_records_its_own_fields_and_inline_adds_edits_and_deletes(board, staff):
    ken, radia, version = player("Ken"), player("Radia"), board.version
    page = staff.open_board(board)
    page.set("name", "Demo cup").set("is_public", False)
    page.set(f"{page.row(ken.pk, 'players')}-score", 30)
    page.set(f"{page.row(radia.pk, 'players')}-DELETE", True)
    page.set("players-8-name", "Hedy").set("players-8-score", 5)  # the empty extra row
    assert staff.save_board(board, page).status_code == 302
    record = one_new_record(board, version)
    assert attribution(record) == ("form", "staff1"), "the board's own change came first"
    assert record.board_fields == {"name": ["Demo league", "Demo cup"], "is_public": [True, False]}
    assert entries(record) == {
        "Ken": ("Ken", "Ken", 14, 30),
        "Radia": ("Radia", None, 9, None),
        "Hedy": (None, "Hedy", None, 5),
    }


def test_the_inline_alone_records_inline(board, staff):
    ken, version = player("Ken"), board.version
    page = staff.open_board(board)
    assert staff.save_board(board, page.set(f"{page.row(ken.pk, 'players')}-score", 30)).status_code == 302
    record = one_new_record(board, version)
    assert attribution(record) == ("inline", "staff1")
    assert record.board_fields == {}
    assert entries(record) == {"Ken": ("Ken", "Ken", 14, 30)}


def test_a_new_board_with_players_is_one_change_set_that_created_it(staff, db):
    page = staff.open("/admin/live/board/add/", "board_form")
    page.set("name", "Cup").set("slug", "cup").set("players-0-name", "Ann").set("players-0-score", 7)
    assert staff.post("/admin/live/board/add/", page.submit()).status_code == 302
    cup = Board.objects.get(slug="cup")
    record = one_new_record(cup, 0)
    assert attribution(record) == ("form", "staff1")
    assert record.board_fields == {"name": [None, "Cup"], "slug": [None, "cup"], "is_public": [None, True]}
    assert entries(record) == {"Ann": (None, "Ann", None, 7)}


@pytest.mark.parametrize(("action", "points"), [("award_1", 1), ("award_5", 5), ("award_minus_1", -1)])
def test_points_actions_record_each_selected_player(board, staff, action, points):
    ken, radia, version = player("Ken"), player("Radia"), board.version
    staff.award(action, ken, radia)
    record = one_new_record(board, version)
    assert attribution(record) == ("action", "staff1")
    assert entries(record) == {
        "Ken": ("Ken", "Ken", 14, 14 + points),
        "Radia": ("Radia", "Radia", 9, 9 + points),
    }


def test_the_delete_page_records_the_removed_player(board, staff):
    from harness.admin_pages import AdminForm

    ken, version = player("Ken"), board.version
    confirm = staff.open(f"{PLAYERS}{ken.pk}/delete/", None)
    assert isinstance(confirm, AdminForm)
    assert staff.post(f"{PLAYERS}{ken.pk}/delete/", confirm.submit(None)).status_code == 302
    record = one_new_record(board, version)
    assert attribution(record) == ("form", "staff1")
    assert entries(record) == {"Ken": ("Ken", None, 14, None)}


def test_the_delete_action_records_every_removed_player_in_one_change_set(board, staff):
    from harness.admin_pages import AdminForm

    ken, radia, version = player("Ken"), player("Radia"), board.version
    page = staff.open_players().set("action", "delete_selected")
    page.tick("_selected_action", ken.pk).tick("_selected_action", radia.pk)
    confirm = AdminForm(staff.post(PLAYERS, page.submit("index", "0")).content.decode(), None)
    assert staff.post(PLAYERS, confirm.submit(None)).status_code == 302
    record = one_new_record(board, version)
    assert attribution(record) == ("action", "staff1")
    assert entries(record) == {"Ken": ("Ken", None, 14, None), "Radia": ("Radia", None, 9, None)}


def test_simulate_records_each_change_as_simulate_by_nobody(board):
    version = board.version
    call_command("simulate", count=3, interval=0, seed=7, verbosity=2, stdout=(out := _Lines()))
    board.refresh_from_db()
    assert board.version == version + 3
    records = Change.objects.filter(board=board, version__gt=version).order_by("version")
    assert {attribution(r) for r in records} == {("simulate", None)}
    recorded = [
        f"{n}: {before} -> {after}" for r in records for n, (_, _, before, after) in entries(r).items()
    ]
    assert recorded == out.lines[:3], "the record says what simulate printed"


def test_a_script_save_outside_any_attribution_is_recorded_as_script(board):
    ken, version = player("Ken"), board.version
    ken.score = 99
    ken.save()
    record = one_new_record(board, version)
    assert attribution(record) == ("script", None)
    assert entries(record) == {"Ken": ("Ken", "Ken", 14, 99)}


def test_a_script_transaction_is_one_change_set_with_adds_and_deletes(board):
    version = board.version
    with transaction.atomic():
        Player.objects.create(board=board, name="Hedy", score=1)
        player("Radia").delete()
        ken = player("Ken")
        ken.score += 1
        ken.save()
        ken.score += 1
        ken.save()
    record = one_new_record(board, version)
    assert entries(record) == {
        "Hedy": (None, "Hedy", None, 1),
        "Radia": ("Radia", None, 9, None),
        "Ken": ("Ken", "Ken", 14, 16),
    }


def test_a_script_board_rename_records_the_boards_fields(board):
    version = board.version
    board.name = "Demo cup"
    board.save()
    record = one_new_record(board, version)
    assert record.board_fields == {"name": ["Demo league", "Demo cup"]}
    assert entries(record) == {}


class _Lines:
    """A stdout for call_command that keeps the lines written."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.extend(line for line in text.splitlines() if line)

    def flush(self) -> None:
        pass
