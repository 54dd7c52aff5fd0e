"""The writer process: makes score changes and reports each one's commit time, as JSON lines.

Modes (argv[1]):
  orm [SLUG] ORM saves against the shared database (Django settings from the environment);
             the commit time is taken by an on_commit callback registered before the save's
             own, so it runs right after COMMIT and before the update is published.
  orm-to-top [SLUG]  the same, but each change moves the last-ranked player to the top (a
             one-player update that re-orders the whole table).
  admin URL PLAYERS  saves through the Django admin over HTTP (the in-memory layer reaches only the
             server process); the time is taken just before the POST, so it includes the
             request's own handling (an overestimate, reported as such).
  reference URL  sends update-shaped frames to the reference server's /publish socket.
Commands on stdin: {"count": k, "interval": s, "players": p (per change, ORM only)};
reply: {"commits": [[version, time], ...]}.
"""

import contextlib
import http.cookiejar
import json
import os
import sys
import time
import urllib.parse
import urllib.request

REQUEST_MS: list[float] = []  # admin POST round trips: the part of the latency before COMMIT


def orm_writer(*, to_top: bool = False):
    import django

    django.setup()
    from django.db import transaction

    from live.models import Board, Player

    board = Board.objects.get(slug=sys.argv[2] if len(sys.argv) > 2 else "demo")
    players = list(Player.objects.filter(board=board))

    from django.db.models import Max

    from live.scores.services import award_points

    def change(index: int, width: int = 1) -> list:
        committed = []
        with transaction.atomic():
            transaction.on_commit(lambda: committed.append(time.time()))
            if to_top:
                board_players = Player.objects.filter(board=board)
                last = board_players.order_by("score", "-name").first()
                last.score = board_players.aggregate(top=Max("score"))["top"] + 1
                last.save(update_fields=["score", "updated_at"])
            elif width >= len(players):  # every player: one UPDATE, as the admin's bulk action does
                award_points(player_ids=[p.pk for p in players], points=1)
            else:
                for offset in range(width):
                    player = players[(index + offset) % len(players)]
                    player.score += 1
                    player.save(update_fields=["score", "updated_at"])
        version = Board.objects.values_list("version", flat=True).get(pk=board.pk)
        return [version, committed[0]]

    return change


def admin_writer(base_url: str, players_json: str):
    jar = http.cookiejar.CookieJar()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    headers = {"Referer": base_url + "/admin/", "Origin": base_url}

    def csrf() -> str:
        return next(c.value for c in jar if c.name == "csrftoken")

    def post(path: str, data: dict) -> None:
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": csrf()}).encode()
        try:
            opener.open(urllib.request.Request(base_url + path, body, headers), timeout=30)
        except urllib.error.HTTPError as error:
            if error.code != 302:
                raise
        else:  # the admin answers a refused save with the form again (200), not a redirect
            raise RuntimeError(f"POST {path} was not saved")

    opener.open(base_url + "/admin/login/", timeout=30).read()
    post("/admin/login/", {"username": "admin", "password": os.environ["DJANGO_SUPERUSER_PASSWORD"]})
    players = [
        (pk, {"board": str(board), "name": name, "score": str(score)})
        for pk, board, name, score in json.loads(players_json)
    ]
    version = [json.loads(opener.open(base_url + "/api/boards/demo/", timeout=30).read())["version"]]

    def change(index: int, width: int = 1) -> list:
        pk, fields = players[index % len(players)]
        shown = {f"initial-{name}": value for name, value in fields.items()}  # what the page showed
        fields["score"] = str(int(fields["score"]) + 1)
        start = time.time()
        post(f"/admin/live/player/{pk}/change/", {**fields, **shown})
        REQUEST_MS.append((time.time() - start) * 1000)
        version[0] += 1  # the only writer: each save is the next version
        return [version[0], start]

    return change


def reference_writer(url: str):
    """The websockets reference (ws://...) or the Socket.IO one (sio+ws://...)."""
    from websockets.sync.client import connect

    from bench.engineio import event, handshake_sync, socketio_url

    socketio = url.startswith("sio+")
    target = socketio_url(url, role="publisher") if socketio else url + "/publish"
    websocket = contextlib.ExitStack().enter_context(connect(target))  # open until exit
    if socketio:
        handshake_sync(websocket)
    version = [0]

    def change(index: int, width: int = 1) -> list:
        version[0] += 1
        frame = json.dumps(
            {
                "type": "update",
                "version": version[0],
                "players": [{"id": index % 8 + 1, "name": "Ada", "score": 42 + index, "rank": 1}],
                "removed": [],
            },
            separators=(",", ":"),
        )
        start = time.time()
        websocket.send(event("publish", frame) if socketio else frame)
        return [version[0], start]

    return change


def main() -> None:
    mode = sys.argv[1]
    if mode in ("orm", "orm-to-top"):
        change = orm_writer(to_top=mode == "orm-to-top")
    elif mode == "admin":
        change = admin_writer(sys.argv[2], sys.argv[3])
    else:
        change = reference_writer(sys.argv[2])
    index = 0
    for line in sys.stdin:
        command = json.loads(line)
        commits = []
        next_at = time.monotonic()
        for _ in range(command["count"]):
            commits.append(change(index, command.get("players", 1)))
            index += 1
            next_at += command["interval"]
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the pacing of the changes, not synchronisation
        reply = {"commits": commits}
        if REQUEST_MS:
            reply["request_ms_p50"] = sorted(REQUEST_MS)[len(REQUEST_MS) // 2]
            REQUEST_MS.clear()
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
