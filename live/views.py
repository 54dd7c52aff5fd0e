from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from live.delivery.frames import error_payload
from live.delivery.protocol import PAGE_CLOSE_CODES
from live.scores import selectors
from live.scores.selectors import BoardUnavailable

# Nothing about a refused board (not even its name) goes into a refusal.
REFUSALS = {
    selectors.NOT_FOUND: (404, "board_not_found", "No board with this slug."),
    selectors.FORBIDDEN: (403, "forbidden", "You may not view this board."),
}


def board_list(request: HttpRequest) -> HttpResponse:
    return render(request, "live/board_list.html", {"boards": selectors.board_list(request.user)})


def board_page(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        board = selectors.board_for(slug=slug, user=request.user)
    except BoardUnavailable as refusal:
        return refused_page(request, refusal)
    snapshot = selectors.board_snapshot(board_id=board.pk)
    context = {"board": board, "snapshot": snapshot, "close_codes": PAGE_CLOSE_CODES}
    return render(request, "live/board.html", context)


def board_api(request: HttpRequest, slug: str) -> JsonResponse:
    """The same JSON as the WebSocket's first frame."""
    try:
        board = selectors.board_for(slug=slug, user=request.user)
    except BoardUnavailable as refusal:
        status, code, message = REFUSALS[refusal.reason]
        return JsonResponse(error_payload(code, message), status=status)
    snapshot = selectors.board_snapshot(board_id=board.pk)
    return JsonResponse(snapshot, json_dumps_params={"ensure_ascii": False})


def refused_page(request: HttpRequest, refusal: BoardUnavailable) -> HttpResponse:
    status, _, message = REFUSALS[refusal.reason]
    if status == 404:
        raise Http404(message)
    return render(request, "live/forbidden.html", status=status)
