from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import Count, Prefetch
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from import_export.admin import ImportExportMixin

from live.models import Board, Change, Player, PlayerChange
from live.scores import history
from live.scores.editing import EditForm, EditingAdmin, EditInlineFormSet
from live.scores.imports import ImportingAdmin
from live.scores.services import award_points
from live.scores.undo import UndoRefused, undo_change


def history_link(text: str, **query: int) -> str:
    """A link to the Changes list, filtered by `query`."""
    url = f"{reverse('admin:live_change_changelist')}?{urlencode(query)}"
    return format_html('<a href="{}">{}</a>', url, text)


class PlayerInline(admin.TabularInline):
    model = Player
    form = EditForm
    formset = EditInlineFormSet
    extra = 1
    fields = ["name", "score", "updated_at"]
    readonly_fields = ["updated_at"]


@admin.register(Board)
class BoardAdmin(EditingAdmin, admin.ModelAdmin):
    list_display = ["name", "slug", "is_public", "player_count", "version", "updated_at"]
    list_filter = ["is_public"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["version", "created_at", "updated_at", "on_record"]
    inlines = [PlayerInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(player_count=Count("players"))

    @admin.display(description="players", ordering="player_count")
    def player_count(self, board: Board) -> int:
        return board.player_count

    @admin.display(description="history")
    def on_record(self, board: Board) -> str:
        if board.pk is None:
            return "-"
        return history_link("History of this board", board__id__exact=board.pk)


def points_action(points: int):
    verb = "Add" if points > 0 else "Subtract"
    label = f"{verb} {abs(points)} point{'s' if abs(points) > 1 else ''}"

    @admin.action(description=f"{label} to the selected players")
    def action(modeladmin, request, queryset):
        changed = award_points(player_ids=queryset.values_list("pk", flat=True), points=points)
        modeladmin.message_user(request, f"{label}: {changed} player(s) updated.", messages.SUCCESS)

    action.__name__ = f"award_{points}".replace("-", "minus_")
    return action


@admin.register(Player)
class PlayerAdmin(ImportingAdmin, ImportExportMixin, EditingAdmin, admin.ModelAdmin):
    list_display = ["name", "board", "score", "updated_at"]
    list_editable = ["score"]
    list_filter = ["board"]
    list_select_related = ["board"]
    search_fields = ["name"]
    readonly_fields = ["on_record"]
    actions = [points_action(1), points_action(5), points_action(-1)]

    @admin.display(description="history")
    def on_record(self, player: Player) -> str:
        if player.pk is None:
            return "-"
        return history_link("History of this player", player=player.pk)


class PlayerOnRecordFilter(admin.SimpleListFilter):
    """Change-sets that touched one player: those recorded on the chosen board are offered."""

    title = "player"
    parameter_name = "player"

    def lookups(self, request, model_admin):
        try:
            board_id = int(request.GET.get("board__id__exact", ""))
        except ValueError:
            board_id = None
        choices = history.players_on_record(board_id=board_id) if board_id is not None else []
        selected = self.value()
        if selected is not None and selected.isdigit() and selected not in {str(pk) for pk, _ in choices}:
            # A player chosen from its own page: offered (and so applied) even with no board chosen.
            found = history.players_on_record(player_ids=[int(selected)])
            choices += found or [(int(selected), f"player {selected}")]
        return choices

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        if not self.value().isdigit():
            raise IncorrectLookupParameters(f"player must be an id, not {self.value()!r}")
        touched = PlayerChange.objects.filter(player_id=int(self.value())).values("change_id")
        return queryset.filter(pk__in=touched)


@admin.register(Change)
class ChangeAdmin(admin.ModelAdmin):
    """Every change-set on the record, read-only; an undo makes a new one (live/scores/undo.py)."""

    list_display = ["version", "when", "who", "source", "summary", "board"]
    list_filter = ["board", PlayerOnRecordFilter, ("user", admin.RelatedOnlyFieldListFilter), "source"]
    search_fields = ["players__name_before", "players__name_after", "user__username"]
    list_per_page = 50
    ordering = ["-at", "-pk"]
    fields = ["board", "version", "when", "who", "source", "undoes", "in_words"]
    readonly_fields = fields
    actions = ["undo"]

    def get_queryset(self, request):
        entries = Prefetch("players", queryset=PlayerChange.objects.order_by("player_id"))
        return super().get_queryset(request).select_related("board", "user").prefetch_related(entries)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_undo_permission(self, request) -> bool:
        perms = ["live.change_board", "live.add_player", "live.change_player", "live.delete_player"]
        return request.user.has_perms(perms)

    @admin.display(description="when", ordering="at")
    def when(self, change: Change) -> str:
        return f"{timezone.localtime(change.at):%Y-%m-%d %H:%M:%S %Z}"

    @admin.display(description="who", ordering="user__username")
    def who(self, change: Change) -> str:
        return history.who(change)

    @admin.display(description="changes")
    def summary(self, change: Change) -> str:
        return history.summary(change)

    @admin.display(description="changes")
    def in_words(self, change: Change) -> str:
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((line,) for line in history.describe(change)))
        )

    @admin.action(description="Undo the selected change-set (one)", permissions=["undo"])
    def undo(self, request, queryset) -> None:
        chosen = list(queryset[:2])
        if len(chosen) != 1:
            self.message_user(request, "Select exactly one change-set to undo.", messages.ERROR)
            return
        [change] = chosen
        try:
            record = undo_change(change=change, user=request.user)
        except UndoRefused as refusal:
            self.message_user(request, refusal.reason, messages.ERROR)
            for conflict in refusal.conflicts:
                self.message_user(request, str(conflict), messages.ERROR)
            return
        self.message_user(
            request,
            f"Version {change.version} of “{change.board}” undone: the board is at version {record.version}.",
            messages.SUCCESS,
        )
