from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from live.models import Board
from live.serializers import board_snapshot


def board_list(request: HttpRequest) -> HttpResponse:
    return render(request, "live/board_list.html", {"boards": Board.objects.all()})


def board_page(request: HttpRequest, slug: str) -> HttpResponse:
    board = get_object_or_404(Board, slug=slug)
    return render(request, "live/board.html", {"board": board, "snapshot": board_snapshot(board=board)})


def board_api(request: HttpRequest, slug: str) -> JsonResponse:
    """The same JSON as the WebSocket's first frame."""
    board = Board.objects.filter(slug=slug).first()
    if board is None:
        error = {"type": "error", "code": "board_not_found", "message": "No board with this slug."}
        return JsonResponse(error, status=404)
    return JsonResponse(board_snapshot(board=board), json_dumps_params={"ensure_ascii": False})
