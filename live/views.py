from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone

from live.delivery.frames import error_payload
from live.delivery.protocol import SLUG
from live.scores import history, selectors
from live.scores.selectors import BoardUnavailable
from scoreboard.csp import embeddable

# A board this user may not view is answered as a missing one (docs/PROTOCOL.md): the same
# status, the same body, nothing of the board (not even its name).
NOT_FOUND_STATUS = 404
NOT_FOUND_ERROR = error_payload("board_not_found", "No board with this slug.")


def board_list(request: HttpRequest) -> HttpResponse:
    return render(request, "live/board_list.html", {"boards": selectors.board_list(request.user)})


# The views of a board page (docs/PROTOCOL.md, "Views of a board"): "" is the page itself.
PAGE_VIEWS = {"tv", "overlay"}
MAX_ROTATION = 50


def bounded(value: str | None, *, low: int, high: int, default: int | None) -> int | None:
    """An integer query parameter within [low, high], else the default."""
    if value is None or not value.isdigit() or len(value) > 6:
        return default
    return int(value) if low <= int(value) <= high else default


def board_page(request: HttpRequest, slug: str) -> HttpResponse:
    view = request.GET.get("view", "")
    return render_board(request, slug, view=view if view in PAGE_VIEWS else "")


@embeddable
def board_embed(request: HttpRequest, slug: str) -> HttpResponse:
    """The compact board other sites may frame (settings.LIVE_EMBED_ORIGINS)."""
    return render_board(request, slug, view="embed")


def render_board(request: HttpRequest, slug: str, *, view: str) -> HttpResponse:
    try:
        board = selectors.board_for(slug=slug, user=request.user)
    except BoardUnavailable:
        return not_found_page(request)
    snapshot = selectors.board_snapshot(board_id=board.pk)
    options = view_options(request.GET, view=view, user=request.user)
    top = options["top"]
    context = {
        "board": board,
        "snapshot": snapshot,
        "players": snapshot["players"][:top] if top else snapshot["players"],
        "view": view,
        "rendered_at": timezone.now(),
        **options,
    }
    return render(request, "live/board.html", context)


def view_options(query: QueryDict, *, view: str, user) -> dict:
    """`top` (overlay: 10 by default; embed: all unless given) and a tv view's rotation."""
    default_top = 10 if view == "overlay" else None
    top = (
        bounded(query.get("top"), low=1, high=100, default=default_top)
        if view in {"overlay", "embed"}
        else None
    )
    rotation: list[str] = []
    if view == "tv" and query.get("boards"):
        asked = [slug for slug in query["boards"].split(",") if SLUG.fullmatch(slug)][:MAX_ROTATION]
        rotation = selectors.watchable_slugs(asked, user=user)
    every = bounded(query.get("every"), low=5, high=3600, default=20)
    return {"top": top, "rotation": rotation, "every": every}


def board_api(request: HttpRequest, slug: str) -> JsonResponse:
    """The same JSON as the WebSocket's first frame."""
    try:
        board = selectors.board_for(slug=slug, user=request.user)
    except BoardUnavailable:
        return not_found_json()
    snapshot = selectors.board_snapshot(board_id=board.pk)
    return JsonResponse(snapshot, json_dumps_params={"ensure_ascii": False})


class InvalidQuery(ValueError):
    """A query parameter the history API cannot use; its message says why."""


def query_int(request: HttpRequest, name: str, *, default: int, low: int, high: int | None = None) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidQuery(f"{name} must be an integer.") from None
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InvalidQuery(f"{name} must be {bounds}.")
    return value


def board_history_api(request: HttpRequest, slug: str) -> JsonResponse:
    """The board's change-sets after version `after`, oldest first, `limit` at most (docs/PROTOCOL.md)."""
    try:
        board = selectors.board_for(slug=slug, user=request.user)
    except BoardUnavailable:
        return not_found_json()
    try:
        after = query_int(request, "after", default=0, low=0)
        limit = query_int(request, "limit", default=history.DEFAULT_LIMIT, low=1, high=history.MAX_LIMIT)
    except InvalidQuery as error:
        return JsonResponse(error_payload("invalid_query", str(error)), status=400)
    document = history.board_history(
        board=board, after=after, limit=limit, with_who=history.shows_who(request.user)
    )
    return JsonResponse(document, json_dumps_params={"ensure_ascii": False})


TIMELINE_PAGE_SIZE = 50


def board_history_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The board's change-sets, newest first, a page at a time."""
    try:
        board = selectors.board_for(slug=slug, user=request.user)
    except BoardUnavailable:
        return not_found_page(request)
    page = Paginator(history.change_sets(board=board), TIMELINE_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "board": board,
        "page": page,
        "entries": [(change, history.describe(change)) for change in page],
        "with_who": history.shows_who(request.user),
    }
    return render(request, "live/history.html", context)


def not_found_json() -> JsonResponse:
    return JsonResponse(NOT_FOUND_ERROR, status=NOT_FOUND_STATUS)


def not_found_page(request: HttpRequest) -> HttpResponse:
    """templates/404.html, the page Django shows for any unknown address, also with DEBUG on."""
    return render(request, "404.html", status=NOT_FOUND_STATUS)
