"""Staff in the admin over real HTTP, and a database prepared for them."""

import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
import uuid

from harness.admin_pages import AdminForm
from harness.servers import manage, server_env

STAFF_PASSWORD = "staff-password-for-tests-only"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 302 is the admin's "saved": report it, do not follow it


class Staff:
    """A staff member in the admin over real HTTP: session cookie, CSRF token, no redirects."""

    def __init__(self, base_url: str, username: str) -> None:
        self.base_url, self.username = base_url, username
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), NoRedirect
        )

    def request(self, path: str, fields: list[tuple[str, str]] | None = None) -> tuple[int, str]:
        data = None if fields is None else urllib.parse.urlencode(fields).encode()
        return self.send(path, data)

    def send(self, path: str, data: bytes | None, *, content_type: str | None = None, timeout: float = 30):
        """(status, body) of one request to the site, with this member's cookies and no redirect."""
        request = urllib.request.Request(self.base_url + path, data=data)
        request.add_header("Referer", self.base_url + path)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def upload(
        self, path: str, fields: list[tuple[str, str]], *, file_field: str, filename: str, content: bytes
    ) -> tuple[int, str]:
        """POST a form with one file, multipart-encoded as a browser sends it."""
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.send(path, body, content_type=f"multipart/form-data; boundary={boundary}", timeout=120)

    def csrf_token(self) -> str:
        return next(c.value for c in self.cookies if c.name == "csrftoken")

    def post(self, path: str, fields: list[tuple[str, str]]) -> int:
        if not any(c.name == "csrftoken" for c in self.cookies):
            self.request(path)
        status, body = self.request(path, [("csrfmiddlewaretoken", self.csrf_token()), *fields])
        assert status == 302, f"POST {path} answered {status}: {body[:2000]}"
        return status

    def log_in(self, path: str = "/admin/login/") -> "Staff":
        """Log in through the admin's login page, or another (`/accounts/login/` for viewers)."""
        status, _ = self.request(path)
        assert status == 200
        self.post(path, [("username", self.username), ("password", STAFF_PASSWORD), ("next", "/admin/")])
        return self

    @property
    def session(self) -> str:
        """The session cookie's value, for a WebSocket of this member (harness/tab.py)."""
        return next(c.value for c in self.cookies if c.name == "sessionid")

    def open(self, path: str, form_id: str) -> AdminForm:
        """Load an admin page and read its form, as the browser shows it."""
        status, body = self.request(path)
        assert status == 200, f"GET {path} answered {status}"
        return AdminForm(body, form_id)

    def save(self, path: str, form: AdminForm, button: str = "_save", value: str = "Save") -> int:
        """Submit a form loaded with open(), as changed since."""
        status, body = self.request(path, form.submit(button, value))
        assert status == 302, f"POST {path} answered {status}: {body[:2000]}"
        return status

    def set_score(self, player: dict, score: int) -> int:
        """Save one player through its admin change form: load it, type the score, save."""
        path = f"/admin/live/player/{player['id']}/change/"
        return self.save(path, self.open(path, "player_form").set("score", score))

    def add_points(self, player_ids: list[int], action: str = "award_1") -> int:
        """The changelist action "Add 1 point to the selected players"."""
        fields = [("action", action), ("index", "0")]
        fields += [("_selected_action", str(pk)) for pk in player_ids]
        return self.post("/admin/live/player/", fields)


def prepare_database(database_url: str) -> None:
    """Migrate, add the demo board and two staff users (staff1, staff2)."""
    env = server_env(database_url=database_url)
    manage("migrate", "--noinput", env=env)
    manage("seed_demo", env=env)
    manage("shell", "-c", CREATE_STAFF, env={**env, "STAFF_PASSWORD": STAFF_PASSWORD})


CREATE_STAFF = (
    "import os; from django.contrib.auth.models import User\n"
    "for name in ('staff1', 'staff2'):\n"
    "    User.objects.create_superuser(name, password=os.environ['STAFF_PASSWORD'])"
)
