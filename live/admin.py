from django.contrib import admin, messages
from django.db.models import Count

from live.models import Board, Player
from live.scores.editing import EditForm, EditingAdmin, EditInlineFormSet
from live.scores.services import award_points


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
    readonly_fields = ["version", "created_at", "updated_at"]
    inlines = [PlayerInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(player_count=Count("players"))

    @admin.display(description="players", ordering="player_count")
    def player_count(self, board: Board) -> int:
        return board.player_count


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
class PlayerAdmin(EditingAdmin, admin.ModelAdmin):
    list_display = ["name", "board", "score", "updated_at"]
    list_editable = ["score"]
    list_filter = ["board"]
    list_select_related = ["board"]
    search_fields = ["name"]
    actions = [points_action(1), points_action(5), points_action(-1)]
