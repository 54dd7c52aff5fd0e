"""A staff member in the admin through Django's test client, in a session of their own.

Every page is loaded, filled in and submitted as a browser does (CSRF enforced), so a page
loaded before another member's save is submitted stale, as in the field.
"""

from urllib.parse import urlencode

from django.contrib.auth.models import User
from django.test import Client

from harness.admin_pages import AdminForm
from live.models import Board, Player

PASSWORD = "pw-for-tests-only"
PLAYERS = "/admin/live/player/"


class AdminSession:
    """A staff member logged in through the admin's login page, in their own browser session."""

    def __init__(self, username: str) -> None:
        self.user = User.objects.create_superuser(username, password=PASSWORD)
        self.client = Client(enforce_csrf_checks=True)
        login = self.open("/admin/login/", "login-form")
        login.set("username", username).set("password", PASSWORD)
        assert self.post("/admin/login/", login.submit(None)).status_code == 302

    def post(self, path: str, fields: list[tuple[str, str]]):
        """POST as a browser does: urlencoded, a field name may repeat."""
        return self.client.post(path, urlencode(fields), content_type="application/x-www-form-urlencoded")

    def open(self, path: str, form_id: str) -> AdminForm:
        response = self.client.get(path)
        assert response.status_code == 200, path
        return AdminForm(response.content.decode(), form_id)

    def open_player(self, player: Player) -> AdminForm:
        return self.open(f"{PLAYERS}{player.pk}/change/", "player_form")

    def open_players(self) -> AdminForm:
        return self.open(PLAYERS, "changelist-form")

    def open_board(self, board: Board) -> AdminForm:
        return self.open(f"/admin/live/board/{board.pk}/change/", "board_form")

    def save_player(self, player: Player, form: AdminForm):
        return self.post(f"{PLAYERS}{player.pk}/change/", form.submit())

    def save_players(self, form: AdminForm):
        return self.post(PLAYERS, form.submit())

    def save_board(self, board: Board, form: AdminForm):
        return self.post(f"/admin/live/board/{board.pk}/change/", form.submit())

    def award(self, action: str, *players: Player):
        """Tick the players in the changelist, choose the action and click Go."""
        page = self.open_players().set("action", action)
        for player in players:
            page.tick("_selected_action", player.pk)
        response = self.post(PLAYERS, page.submit("index", "0"))
        assert response.status_code == 302
        return response
