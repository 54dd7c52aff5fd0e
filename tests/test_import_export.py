"""Players' CSV and XLSX import and export in the admin: a confirmed import is one change-set per
board (one version, one update frame), attributed to the staff user; a preview or a failed row
changes nothing."""

import asyncio
import csv
import io
import json
import re

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from harness.admin_pages import AdminForm
from harness.admin_session import AdminSession as Staff
from live.models import Board, Change, Player
from tests.conftest import in_thread, receive, spectate

pytestmark = pytest.mark.django_db(transaction=True)

PLAYERS = "/admin/live/player/"
IMPORT = f"{PLAYERS}import/"
FORMATS = {"csv": "0", "xlsx": "1"}


@pytest.fixture
def staff(db) -> Staff:
    return Staff("staff1")


def csv_file(rows: list[list]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([["id", "board", "name", "score"], *rows])
    return out.getvalue().encode()


def xlsx_file(rows: list[list]) -> bytes:
    book = openpyxl.Workbook()
    for row in [["id", "board", "name", "score"], *rows]:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def preview(staff: Staff, content: bytes, kind: str = "csv"):
    """Upload a file on the import page: import-export's dry run, shown as a preview."""
    page = AdminForm(staff.client.get(IMPORT).content.decode(), None).set("format", FORMATS[kind])
    data = dict(page.fields) | {"import_file": SimpleUploadedFile(f"players.{kind}", content)}
    return staff.client.post(IMPORT, data)


def confirm(staff: Staff, previewed, *, follow: bool = True):
    form = AdminForm(previewed.content.decode(), None)
    return staff.client.post(
        f"{PLAYERS}process_import/", dict(form.submit("confirm", "Confirm import")), follow=follow
    )


def import_file(staff: Staff, content: bytes, kind: str = "csv"):
    previewed = preview(staff, content, kind)
    assert previewed.status_code == 200 and "Confirm import" in previewed.content.decode(), errors_of(
        previewed
    )
    return confirm(staff, previewed)


def errors_of(response) -> str:
    return " | ".join(re.findall(r"Line number: [^<]*", response.content.decode()))


def messages(response) -> list[str]:
    html = response.content.decode()
    return [
        re.sub(r"<[^>]+>", "", m).strip()
        for m in re.findall(r'<li class="(?:error|success)">(.*?)</li>', html, re.S)
    ]


def state(board: Board) -> tuple[int, int, dict[str, int]]:
    """The board's version, its number of change records, and its scores."""
    board.refresh_from_db()
    return board.version, board.changes.count(), dict(board.players.values_list("name", "score"))


# --- export ------------------------------------------------------------------------------


def export(staff: Staff, kind: str) -> bytes:
    page = AdminForm(staff.client.get(f"{PLAYERS}export/").content.decode(), None).set(
        "format", FORMATS[kind]
    )
    response = staff.client.post(f"{PLAYERS}export/", dict(page.submit(None)))
    assert response.status_code == 200
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_players_export_as_csv_with_id_board_slug_name_and_score(staff, players):
    Board.objects.create(name="Cup", slug="cup")
    rows = list(csv.reader(io.StringIO(export(staff, "csv").decode("utf-8-sig"))))
    assert rows[0] == ["id", "board", "name", "score"]
    assert sorted(rows[1:]) == sorted([str(p.pk), "finals", p.name, str(p.score)] for p in players)


def test_players_export_as_xlsx(staff, players):
    sheet = openpyxl.load_workbook(io.BytesIO(export(staff, "xlsx"))).active
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == ["id", "board", "name", "score"]
    assert sorted(rows[1:]) == sorted([p.pk, "finals", p.name, p.score] for p in players)


def test_an_xlsx_export_keeps_names_that_look_like_formulas_as_text(staff, players, board):
    Player.objects.filter(pk=players[0].pk).update(name="=HYPERLINK(1)")
    Player.objects.filter(pk=players[1].pk).update(name="Bob\x07")
    content = export(staff, "xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    cells = {row[0].value: row[2] for row in sheet.iter_rows(min_row=2)}
    assert (cells[players[0].pk].value, cells[players[0].pk].data_type) == ("=HYPERLINK(1)", "s")
    assert cells[players[1].pk].value == "Bob\N{REPLACEMENT CHARACTER}", (
        "XLSX cannot hold a control character"
    )
    response = import_file(staff, content, "xlsx")
    assert "Import finished: 0 new, 1 updated, 0 deleted and 3 skipped players." in messages(response)
    assert state(board)[2]["=HYPERLINK(1)"] == 30


def test_an_export_imports_back_as_no_change(staff, players, board):
    before = state(board)
    response = import_file(staff, export(staff, "csv"))
    assert "Import finished: 0 new, 0 updated, 0 deleted and 4 skipped players." in messages(response)
    assert state(board) == before, "unchanged rows are skipped: no version, no record"


# --- import ------------------------------------------------------------------------------


def test_a_confirmed_import_is_one_change_set_by_the_staff_user_through_import(staff, players, board):
    ada, dee = players[0], players[3]
    version, records, _ = state(board)
    content = csv_file(
        [[ada.pk, "finals", "Ada", 31], [dee.pk, "finals", "Dee L.", 10], ["", "finals", "Eve", 5]]
    )

    response = import_file(staff, content)

    assert "Import finished: 1 new, 2 updated, 0 deleted and 0 skipped players." in messages(response)
    assert state(board) == (
        version + 1,
        records + 1,
        {"Ada": 31, "Bob": 20, "Cy": 20, "Dee L.": 10, "Eve": 5},
    )
    record = board.changes.get(version=version + 1)
    assert (record.source, record.user.username) == ("import", "staff1")
    eve = Player.objects.get(name="Eve")
    assert {
        e.player_id: (e.name_before, e.name_after, e.score_before, e.score_after)
        for e in record.players.all()
    } == {
        ada.pk: ("Ada", "Ada", 30, 31),
        dee.pk: ("Dee", "Dee L.", 10, 10),
        eve.pk: (None, "Eve", None, 5),
    }


def test_an_xlsx_import_works_the_same(staff, players, board):
    version, _, _ = state(board)
    import_file(staff, xlsx_file([[players[0].pk, "finals", "Ada", 77], [None, "finals", "Eve", 1]]), "xlsx")
    assert state(board)[0] == version + 1
    assert state(board)[2]["Ada"] == 77 and state(board)[2]["Eve"] == 1


def test_an_import_touching_two_boards_is_one_change_set_on_each(staff, players, board):
    cup = Board.objects.create(name="Cup", slug="cup")
    cup_version, board_version = state(cup)[0], state(board)[0]
    import_file(
        staff, csv_file([["", "cup", "Ann", 1], ["", "cup", "Ben", 2], [players[0].pk, "finals", "Ada", 3]])
    )
    assert (state(cup)[0], state(board)[0]) == (cup_version + 1, board_version + 1)


def test_the_preview_changes_nothing_and_bumps_no_version(staff, players, board):
    before = state(board)
    previewed = preview(staff, csv_file([[players[0].pk, "finals", "Ada", 31], ["", "finals", "Eve", 5]]))
    html = previewed.content.decode()
    assert "Confirm import" in html and "Eve" in html
    assert state(board) == before
    assert not Player.objects.filter(name="Eve").exists()


@pytest.mark.parametrize(
    ("row", "error"),
    [
        (["", "finals", "Eve", "lots"], "score must be a whole number, not 'lots'."),
        (["", "finals", "Eve", "3.5"], "score must be a whole number, not '3.5'."),
        (["", "finals", "Eve", ""], "This field cannot be null."),
        (["", "nope", "Eve", "1"], "No board has the slug 'nope'."),
        (["", "finals", "Bob", "1"], "Player with this Board and Name already exists."),
        (["", "finals", "", "1"], "This field cannot be blank."),
        (["999999", "finals", "Eve", "1"], "No player has id 999999: leave it empty to add a player."),
        (["x", "finals", "Eve", "1"], "id must be a whole number, not 'x'."),
    ],
)
def test_a_bad_row_is_reported_and_nothing_is_saved(staff, players, board, row, error):
    before = state(board)
    previewed = preview(staff, csv_file([[players[0].pk, "finals", "Ada", 31], row]))
    html = previewed.content.decode()
    assert "Confirm import" not in html, "no way to confirm an import with a failed row"
    assert error in re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html).replace("&#x27;", "'"))
    assert state(board) == before


def test_a_row_that_fails_at_confirm_time_saves_nothing(staff, players, board):
    """The file was fine at the preview; by the confirm, another player took a name it adds."""
    previewed = preview(staff, csv_file([[players[0].pk, "finals", "Ada", 31], ["", "finals", "Eve", 5]]))
    Player.objects.create(board=board, name="Eve", score=1)
    before = state(board)

    response = confirm(staff, previewed)

    said = messages(response)
    assert said[0] == "Nothing was imported: a row failed."
    assert said[1].startswith("Line 2: ") and "already exists" in said[1]
    assert state(board) == before, "Ada's row, valid, was rolled back with it"


def test_import_pages_have_no_inline_script_or_style(staff, players):
    """script-src and style-src are 'self': an inline script, handler or style would be refused."""
    pages = [
        staff.client.get(PLAYERS).content.decode(),
        staff.client.get(IMPORT).content.decode(),
        preview(staff, csv_file([[players[0].pk, "finals", "Ada L.", 31]])).content.decode(),
        preview(staff, csv_file([["", "finals", "", "x"]])).content.decode(),
        staff.client.get(f"{PLAYERS}export/").content.decode(),
    ]
    for html in pages:
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
        assert re.findall(r"<[^>]+\son\w+=", html) == []
        assert re.findall(r"<[^>]+\sstyle=", html) == []
    assert "<ins>Ada L.</ins>" in pages[2] or "<ins> L.</ins>" in pages[2]


# --- one frame per import -----------------------------------------------------------------


async def test_an_import_of_500_rows_is_one_version_and_one_update_frame(staff, board, players):
    rows = [["", "finals", f"Player {n:03}", n] for n in range(496)]
    rows += [[p.pk, "finals", p.name, p.score + 100] for p in players]
    version = await in_thread(lambda: Board.objects.get(pk=board.pk).version)
    async with spectate("finals") as ws:
        await receive(ws)
        response = await in_thread(import_file, staff, csv_file(rows))
        assert "Import finished: 496 new, 4 updated, 0 deleted and 0 skipped players." in messages(response)
        update = await receive(ws)
        assert await ws.receive_nothing(timeout=0.5), "one frame, not one per row"
    assert (update["type"], update["version"], len(update["players"])) == ("update", version + 1, 500)
    assert await in_thread(lambda: Board.objects.get(pk=board.pk).version) == version + 1
    record = await in_thread(lambda: Change.objects.get(board=board, version=version + 1))
    assert await in_thread(record.players.count) == 500


async def test_a_preview_sends_no_frame(staff, board, players, group_listener):
    next_message = await group_listener(board)
    await in_thread(preview, staff, csv_file([[players[0].pk, "finals", "Ada", 31]]))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(next_message(), 0.5)
    players[0].score = 1
    await in_thread(players[0].save)
    assert json.loads((await next_message())["text"])["version"] == 3, "nothing was numbered by the preview"
