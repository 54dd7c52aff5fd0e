from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from live.delivery.frames import error_payload
from live.delivery.protocol import PAGE_CLOSE_CODES
from live.scores import selectors
from live.scores.selectors import BoardUnavailable

# A board this user may not view is answered as a missing one (docs/PROTOCOL.md): the same
# status, the same body, nothing of the board (not even its name).
NOT_FOUND_STATUS = 404
NOT_FOUND_ERROR = error_payload("board_not_found", "No board with this slug.")


def board_list(request: HttpRequest) -> HttpResponse:
    return render(request, "live/board_list.html", {"boards": selectors.visible_boards(request.user)})


def board_page(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        board = selectors.board_for(slug=slug, user=request.user)
    except BoardUnavailable:
        return not_found_page(request)
    snapshot = selectors.board_snapshot(board_id=board.pk)
    context = {"board": board, "snapshot": snapshot, "close_codes": PAGE_CLOSE_CODES}
    return render(request, "live/board.html", context)


def board_api(request: HttpRequest, slug: str) -> JsonResponse:
    """The same JSON as the WebSocket's first frame."""
    try:
        board = selectors.board_for(slug=slug, user=request.user)
    except BoardUnavailable:
        return JsonResponse(NOT_FOUND_ERROR, status=NOT_FOUND_STATUS)
    snapshot = selectors.board_snapshot(board_id=board.pk)
    return JsonResponse(snapshot, json_dumps_params={"ensure_ascii": False})


def not_found_page(request: HttpRequest) -> HttpResponse:
    """templates/404.html, the page Django shows for any unknown address, also with DEBUG on."""
    return render(request, "404.html", status=NOT_FOUND_STATUS)
