"""Players in and out of the admin as CSV and XLSX (django-import-export), imports on the record.

Columns: `id` (empty for a new player), `board` (its slug), `name`, `score`. A row with an
id adds nothing: it changes that player; rows that change nothing are skipped.

A confirmed import runs in ONE transaction, attributed to the staff user through "import":
every row's save joins its board's change-set, so an import is one version and one update
per board, however many rows. A preview (import-export's dry run) runs the same writes and
rolls them back: no version, no record, no update. A row that fails (a bad value, an
unknown board or id, a name taken) fails the whole import: nothing is saved.
"""

import io

import openpyxl
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.safestring import mark_safe
from import_export import fields, resources
from import_export.formats.base_formats import CSV, XLSX
from import_export.forms import ExportForm
from import_export.instance_loaders import ModelInstanceLoader
from import_export.resources import Diff
from import_export.widgets import ForeignKeyWidget, IntegerWidget
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from live.models import Board, Change, Player
from live.scores import changes


class PlainDiff(Diff):
    """The preview's diff without inline styles, which the Content-Security-Policy refuses;
    import-export's import.css colours <ins> and <del> itself."""

    def as_html(self):
        return [
            mark_safe(
                html.replace(' style="background:#e6ffe6;"', "").replace(' style="background:#ffe6e6;"', "")
            )
            for html in super().as_html()
        ]


class TextSafeXLSX(XLSX):
    """XLSX whose texts stay texts: a name starting with "=" is written as that name, never as a
    formula that a spreadsheet would run (openpyxl makes one of any string starting with "=")."""

    def export_data(self, dataset, **kwargs) -> bytes:
        book = openpyxl.Workbook(write_only=False)
        sheet = book.active
        sheet.title = "Players"
        for values in [dataset.headers, *dataset]:
            sheet.append([_xlsx_text(v) if isinstance(v, str) else v for v in values])
            for cell in sheet[sheet.max_row]:
                if isinstance(cell.value, str):
                    cell.data_type = "s"
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()


def _xlsx_text(value: str) -> str:
    # XLSX cannot hold most control characters: U+FFFD stands in (CSV keeps them).
    return ILLEGAL_CHARACTERS_RE.sub("\N{REPLACEMENT CHARACTER}", value)


class WholeNumber(IntegerWidget):
    """A whole number, or a ValueError that says so: "3.5" is refused, never truncated to 3."""

    def __init__(self, column: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.column = column

    def clean(self, value, row=None, **kwargs):
        if self.is_empty(value):
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)  # a spreadsheet's number
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError(f"{self.column} must be a whole number, not {str(value)[:50]!r}.") from None


class BoardBySlug(ForeignKeyWidget):
    """A board by its slug, looked up once per import (each resource has its own copy of its widgets)."""

    def __init__(self) -> None:
        super().__init__(Board, field="slug")
        self.boards: dict[str, Board | None] = {}

    def clean(self, value, row=None, **kwargs):
        key = str(value)
        if key not in self.boards:
            try:
                self.boards[key] = super().clean(value, row=row, **kwargs)
            except Board.DoesNotExist:
                raise ValueError(f"No board has the slug {key[:100]!r}.") from None
        return self.boards[key]


class PlayersById(ModelInstanceLoader):
    """The file's players read in a few queries, not one per row; a bad id is its row's error."""

    BATCH = 900  # ids per query: under SQLite's oldest limit of 999 parameters

    def __init__(self, resource, dataset=None) -> None:
        super().__init__(resource, dataset)
        self.id_field = resource.fields["id"]
        ids = set()
        for row in dataset.dict if dataset is not None else []:
            try:
                ids.add(self.id_field.clean(row))
            except (KeyError, ValueError):
                continue  # reported by get_instance(), for its own row
        ids = sorted(ids - {None})
        self.players = {
            player.pk: player
            for start in range(0, len(ids), self.BATCH)
            for player in self.get_queryset().filter(pk__in=ids[start : start + self.BATCH])
        }

    def get_instance(self, row):
        return self.players.get(self.id_field.clean(row))


class PlayerResource(resources.ModelResource):
    id = fields.Field(attribute="id", column_name="id", widget=WholeNumber("id"))
    board = fields.Field(attribute="board", column_name="board", widget=BoardBySlug())
    name = fields.Field(attribute="name", column_name="name")
    score = fields.Field(attribute="score", column_name="score", widget=WholeNumber("score"))

    class Meta:
        model = Player
        fields = ("id", "board", "name", "score")
        export_order = ("id", "board", "name", "score")
        import_id_fields = ("id",)
        instance_loader_class = PlayersById
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True  # names unique per board, scores whole numbers: per row
        use_transactions = True

    def get_queryset(self):
        return super().get_queryset().select_related("board")  # the diff shows each row's board

    def get_diff_class(self):
        return PlainDiff

    def init_instance(self, row=None):
        player_id = (row or {}).get("id")
        if player_id not in (None, ""):
            # A new player with an id of the file's choosing would bypass the id sequence.
            raise ValidationError({"id": f"No player has id {player_id}: leave it empty to add a player."})
        return super().init_instance(row)


class ImportingAdmin:
    """ModelAdmin mixin for import-export's admin: CSV and XLSX, imports attributed and all-or-nothing.

    Its import and confirm pages are views of their own, not the optimistic-locking change
    views of `EditingAdmin`: an import writes the file's values, as its preview showed them.
    """

    formats = [CSV, TextSafeXLSX]
    resource_classes = [PlayerResource]
    # The plain export form: the selectable-fields one needs an inline event handler (CSP).
    export_form_class = ExportForm

    def get_export_data(self, file_format, request, queryset, **kwargs):
        """import-export's, but numbers stay numbers in any binary format: it keeps native types
        only for its own formats, by their exact class, so not for `TextSafeXLSX`."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        binary = file_format.is_binary()
        data = self.get_data_for_export(request, queryset, force_native_type=binary, **kwargs)
        exported = file_format.export_data(data)
        encoding = kwargs.get("encoding")
        return exported.encode(encoding) if not binary and encoding else exported

    def import_action(self, request, *args, **kwargs):
        with changes.attributed(user=request.user, source=Change.Source.IMPORT):
            return super().import_action(request, *args, **kwargs)

    def process_import(self, request, *args, **kwargs):
        with changes.attributed(user=request.user, source=Change.Source.IMPORT):
            return super().process_import(request, *args, **kwargs)

    def process_dataset(self, dataset, form, request, **kwargs):
        # A row that fails validation at confirm time (the data moved since the preview) must
        # roll back the whole import, as an error does.
        kwargs.setdefault("rollback_on_validation_errors", True)
        # One transaction whatever IMPORT_EXPORT_USE_TRANSACTIONS says: one change-set per board.
        with transaction.atomic():
            return super().process_dataset(dataset, form, request, **kwargs)

    def process_result(self, result, request):
        if result.has_errors() or result.has_validation_errors():
            return self.refused_import(result, request)
        return super().process_result(result, request)

    def refused_import(self, result, request) -> HttpResponseRedirect:
        """Everything was rolled back: say which rows failed and why, and offer the import again."""
        self.message_user(request, "Nothing was imported: a row failed.", messages.ERROR)
        for error in result.base_errors:
            self.message_user(request, str(error.error), messages.ERROR)
        for number, errors in result.row_errors()[:10]:
            for error in errors:
                self.message_user(request, f"Line {number}: {error.error}", messages.ERROR)
        for row in result.invalid_rows[:10]:
            said = "; ".join(f"{name}: {' '.join(words)}" for name, words in row.error_dict.items())
            self.message_user(request, f"Line {row.number}: {said}", messages.ERROR)
        app_label, model_name = self.get_model_info()
        return HttpResponseRedirect(reverse(f"admin:{app_label}_{model_name}_import"))
