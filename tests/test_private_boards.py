"""Private boards: only logged-in users with `live.view_private_board` see anything of them."""

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from live.models import Board, Player
from scoreboard.asgi import application
from tests.conftest import SPECTATOR_HEADERS, TIMEOUT, in_thread, receive

SECRET_NAME = "Secret Merger Talks"


@pytest.fixture
def private_board(db) -> Board:
    board = Board.objects.create(name=SECRET_NAME, slug="hidden", is_public=False)
    Player.objects.create(board=board, name="Insider", score=7)
    return board


def make_user(username: str, *, allowed: bool = False, via_group: bool = False) -> User:
    user = User.objects.create_user(username, password="pw-for-tests-only")
    if allowed:
        permission = Permission.objects.get(codename="view_private_board", content_type__app_label="live")
        if via_group:
            group = Group.objects.create(name="viewers")
            group.permissions.add(permission)
            user.groups.add(group)
        else:
            user.user_permissions.add(permission)
    return user


def logged_in(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def assert_nothing_leaks(response) -> None:
    body = response.content.decode()
    assert SECRET_NAME not in body and "Insider" not in body


def test_boards_are_public_by_default(db):
    assert Board.objects.create(name="Open", slug="open").is_public


@pytest.mark.parametrize("who", ["anonymous", "user without permission"])
@pytest.mark.parametrize("url", ["/boards/{}/", "/api/boards/{}/"])
def test_outsiders_get_exactly_the_answer_of_a_missing_board(private_board, who, url):
    """Same status, same body (but for the slug they asked for): a private board does not exist."""
    client = logged_in(None if who == "anonymous" else make_user("outsider"))
    private = client.get(url.format("hidden"))
    missing = client.get(url.format("nosuch"))
    assert private.status_code == missing.status_code == 404
    assert private.content.decode() == missing.content.decode().replace("nosuch", "hidden")
    assert private["Content-Type"] == missing["Content-Type"]
    assert_nothing_leaks(private)


def test_the_api_refusal_is_the_not_found_error(private_board):
    response = Client().get("/api/boards/hidden/")
    assert response.json() == {
        "type": "error",
        "code": "board_not_found",
        "message": "No board with this slug.",
    }


@pytest.mark.parametrize("slug", ["hidden", "nosuch"])
def test_the_not_found_page_offers_anonymous_visitors_a_login_link(private_board, slug):
    response = Client().get(f"/boards/{slug}/")
    assert f'href="/accounts/login/?next=/boards/{slug}/"' in response.content.decode()


def test_the_not_found_page_offers_no_login_to_a_logged_in_user(private_board):
    response = logged_in(make_user("outsider")).get("/boards/hidden/")
    assert response.status_code == 404 and "/accounts/login/" not in response.content.decode()


@pytest.mark.parametrize("via_group", [False, True])
@pytest.mark.parametrize("url", ["/boards/hidden/", "/api/boards/hidden/"])
def test_a_user_with_the_permission_sees_the_board(private_board, via_group, url):
    response = logged_in(make_user("insider", allowed=True, via_group=via_group)).get(url)
    assert response.status_code == 200
    assert SECRET_NAME in response.content.decode()


def test_a_superuser_sees_the_board(private_board):
    admin = User.objects.create_superuser("boss", password="pw-for-tests-only")
    assert logged_in(admin).get("/api/boards/hidden/").status_code == 200


def test_the_board_list_hides_private_boards_from_outsiders(private_board):
    Board.objects.create(name="Open Finals", slug="open")
    outsider_view = Client().get("/").content.decode()
    assert "Open Finals" in outsider_view
    assert SECRET_NAME not in outsider_view and "/boards/hidden/" not in outsider_view
    insider_view = logged_in(make_user("insider", allowed=True)).get("/").content.decode()
    assert SECRET_NAME in insider_view


def test_a_viewer_who_is_not_staff_logs_in_outside_the_admin(private_board):
    make_user("insider", allowed=True)
    client = Client()
    login_page = client.get("/accounts/login/?next=/boards/hidden/")
    assert login_page.status_code == 200
    response = client.post(
        "/accounts/login/",
        {"username": "insider", "password": "pw-for-tests-only", "next": "/boards/hidden/"},
    )
    assert response.status_code == 302 and response["Location"] == "/boards/hidden/"
    assert client.get("/boards/hidden/").status_code == 200


def test_staff_switch_a_board_private_in_the_admin(db):
    board = Board.objects.create(name="Finals", slug="finals")
    admin = User.objects.create_superuser("boss", password="pw-for-tests-only")
    response = logged_in(admin).post(
        f"/admin/live/board/{board.pk}/change/",
        {
            "name": "Finals",
            "slug": "finals",
            "initial-name": "Finals",
            "initial-slug": "finals",
            "initial-is_public": "True",
            "players-TOTAL_FORMS": "0",
            "players-INITIAL_FORMS": "0",
            "players-MIN_NUM_FORMS": "0",
            "players-MAX_NUM_FORMS": "1000",
        },  # an unchecked checkbox is simply absent
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    board.refresh_from_db()
    assert not board.is_public


def session_headers(user: User | None) -> list[tuple[bytes, bytes]]:
    headers = list(SPECTATOR_HEADERS)
    if user is not None:
        session = logged_in(user).cookies["sessionid"].value
        headers.append((b"cookie", f"sessionid={session}".encode()))
    return headers


async def connect(headers, *, slug: str = "hidden") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/boards/{slug}/", headers=headers)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return communicator


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["anonymous", "user without permission"])
@pytest.mark.parametrize("slug", ["hidden", "nosuch"])
async def test_an_outsiders_websocket_is_closed_with_4404_before_any_frame(private_board, who, slug):
    """A private board closes an outsider's socket exactly as a missing one does."""
    user = None if who == "anonymous" else await in_thread(make_user, "outsider")
    outsider = await connect(await in_thread(session_headers, user), slug=slug)
    try:
        assert await outsider.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4404}
    finally:
        await outsider.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_updates_of_a_private_board_reach_only_allowed_sockets(private_board):
    insider_user = await in_thread(make_user, "insider", allowed=True)
    insider = await connect(await in_thread(session_headers, insider_user))
    outsider = await connect(await in_thread(session_headers, None))
    try:
        assert (await receive(insider))["board"]["name"] == SECRET_NAME
        assert await outsider.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4404}
        await in_thread(Player.objects.create, board=private_board, name="Leaker", score=1)
        assert (await receive(insider))["players"][0]["name"] == "Leaker"
        assert await outsider.receive_nothing(timeout=0.2)
    finally:
        await insider.disconnect()
        await outsider.disconnect()


def make_private(board_id: int) -> None:
    board = Board.objects.get(pk=board_id)
    board.is_public = False
    board.save()


@pytest.mark.django_db(transaction=True)
async def test_making_a_board_private_closes_outsiders_and_keeps_insiders(board):
    insider_user = await in_thread(make_user, "insider", allowed=True)
    insider = await connect(await in_thread(session_headers, insider_user), slug="finals")
    outsider = await connect(await in_thread(session_headers, None), slug="finals")
    try:
        await receive(insider)
        await receive(outsider)
        await in_thread(make_private, board.pk)
        assert (await receive(insider))["type"] == "update"
        assert await outsider.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4403}
    finally:
        await insider.disconnect()
        await outsider.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_an_outsider_is_closed_when_the_update_making_the_board_private_is_lost(board, lose_updates):
    """Made private while the broker swallows updates: the database check closes it."""
    outsider = await connect(await in_thread(session_headers, None), slug="finals")
    try:
        await receive(outsider)
        await in_thread(make_private, board.pk)
        assert await outsider.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4403}
    finally:
        await outsider.disconnect()
