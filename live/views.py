from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from live.models import Board
from live.serializers import board_snapshot

# Nothing about a private board (not even its name) goes into a refusal.
FORBIDDEN_ERROR = {"type": "error", "code": "forbidden", "message": "You may not view this board."}


def board_list(request: HttpRequest) -> HttpResponse:
    return render(request, "live/board_list.html", {"boards": Board.objects.visible_to(request.user)})


def board_page(request: HttpRequest, slug: str) -> HttpResponse:
    board = get_object_or_404(Board, slug=slug)
    if not board.is_visible_to(request.user):
        return render(request, "live/forbidden.html", status=403)
    return render(request, "live/board.html", {"board": board, "snapshot": board_snapshot(board=board)})


def board_api(request: HttpRequest, slug: str) -> JsonResponse:
    """The same JSON as the WebSocket's first frame."""
    board = Board.objects.filter(slug=slug).first()
    if board is None:
        error = {"type": "error", "code": "board_not_found", "message": "No board with this slug."}
        return JsonResponse(error, status=404)
    if not board.is_visible_to(request.user):
        return JsonResponse(FORBIDDEN_ERROR, status=403)
    return JsonResponse(board_snapshot(board=board), json_dumps_params={"ensure_ascii": False})
