"""Messages to one member, and access to private boards that ends while a socket watches.

In one process with the in-memory layer: the relay, its members and the revocation path
from each kind of change (tests/test_member_processes.py does it across real processes).
"""

from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

import live.delivery.reads
from live.delivery import publish
from live.delivery.frames import InvalidMemberMessage
from live.delivery.publish import relay_to_member
from live.delivery.relay import get_relay
from live.models import Board, Player, member_group_name
from scoreboard.asgi import application
from tests.conftest import SPECTATOR_HEADERS, TIMEOUT, expect_close, in_thread, receive

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "pw-for-tests-only"


@pytest.fixture
def boards(db) -> dict[str, Board]:
    """A private board "hidden" and a public one "open", one player each."""
    hidden = Board.objects.create(name="Secret", slug="hidden", is_public=False)
    public = Board.objects.create(name="Open", slug="open")
    Player.objects.create(board=hidden, name="Insider", score=7)
    Player.objects.create(board=public, name="Anyone", score=3)
    return {"hidden": hidden, "open": public}


def viewer_permission() -> Permission:
    return Permission.objects.get(codename="view_private_board", content_type__app_label="live")


def make_viewer(username: str, *, via: str = "permission", staff: bool = False) -> User:
    """A user allowed to view private boards, through the permission or a group's ("group")."""
    user = User.objects.create_user(username, password=PASSWORD, is_staff=staff)
    if via == "group":
        group, _ = Group.objects.get_or_create(name="viewers")
        group.permissions.add(viewer_permission())
        user.groups.add(group)
    else:
        user.user_permissions.add(viewer_permission())
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@asynccontextmanager
async def tab(slug: str, client: Client | None = None):
    """A socket of `slug` with the client's session cookie, past its snapshot; always closed."""
    headers = list(SPECTATOR_HEADERS)
    if client is not None:
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    ws = WebsocketCommunicator(application, f"/ws/boards/{slug}/", headers=headers)
    connected, _ = await ws.connect(timeout=TIMEOUT)
    assert connected
    try:
        assert (await receive(ws))["type"] == "snapshot"
        yield ws
    finally:
        await ws.disconnect()


def add_point(board: Board) -> None:
    player = board.players.first()
    player.score += 1
    player.save()


async def assert_watching(ws, board: Board) -> None:
    """The socket still receives the board's updates."""
    await in_thread(add_point, board)
    assert (await receive(ws))["type"] == "update"


# Messages to one member.


async def test_a_member_frame_reaches_every_socket_of_its_user_and_nobody_else(boards):
    ada = await in_thread(make_viewer, "ada")
    bob = await in_thread(make_viewer, "bob")
    ada_laptop, ada_phone, bob_client = [await in_thread(logged_in, u) for u in (ada, ada, bob)]
    async with AsyncExitStack() as stack:
        adas = [
            await stack.enter_async_context(tab("open", ada_laptop)),
            await stack.enter_async_context(tab("hidden", ada_laptop)),
            await stack.enter_async_context(tab("open", ada_phone)),
        ]
        others = [
            await stack.enter_async_context(tab("open", bob_client)),
            await stack.enter_async_context(tab("open")),  # anonymous
        ]
        assert await in_thread(relay_to_member, user_id=ada.pk, event="notice", payload={"text": "Hi <b>"})
        for ws in adas:
            assert await receive(ws) == {"type": "member", "event": "notice", "payload": {"text": "Hi <b>"}}
        for ws in others:
            assert await ws.receive_nothing(timeout=0.1)


async def test_the_relay_joins_a_users_group_once_whatever_their_sockets(boards):
    """One member per process in the user's group, not one per socket; left with the last."""
    ada = await in_thread(make_viewer, "ada")
    layer, relay = get_channel_layer(), get_relay()
    clients = [await in_thread(logged_in, ada) for _ in range(2)]
    async with AsyncExitStack() as stack:
        for client in clients:
            for slug in ("open", "hidden", "open"):
                await stack.enter_async_context(tab(slug, client))
        assert len(layer.groups[member_group_name(ada.pk)]) == 1
        assert set(layer.groups[member_group_name(ada.pk)]) == {relay.channel}
        assert len(relay.members) == 6
    assert not layer.groups.get(member_group_name(ada.pk))
    assert relay.channel is None and not len(relay.members)  # the relay stopped


async def test_anonymous_spectators_join_no_member_group(boards):
    async with tab("open"):
        assert not any(name.startswith("member-") for name in get_channel_layer().groups)
        assert not len(get_relay().members)


@pytest.mark.parametrize(
    ("event", "payload", "complaint"),
    [
        ("Notice", {"text": "x"}, "starting with a letter"),
        ("", {"text": "x"}, "1 to 32"),
        ("a" * 33, {}, "1 to 32"),
        ("score", ["not", "an", "object"], "JSON object"),
        ("notice", {"text": ""}, "1 to 1000 characters"),
        ("notice", {"text": "x" * 1001}, "1 to 1000 characters"),
        ("notice", {"text": "x", "html": "<b>"}, '{"text": "..."}'),
        ("score", {"blob": "é" * 4096}, "the limit is 8192"),
        ("score", {"at": object()}, "not JSON"),
        ("score", {"text": "\ud800"}, "lone surrogate"),
    ],
)
def test_relay_to_member_refuses_what_breaks_the_protocol(event, payload, complaint):
    with pytest.raises(InvalidMemberMessage, match=complaint.replace("(", r"\(").replace(".", r"\.")):
        relay_to_member(user_id=1, event=event, payload=payload)


# Access to private boards that ends.


def deactivate(user: User) -> None:
    user.is_active = False
    user.save()


def remove_permission(user: User) -> None:
    user.user_permissions.remove(viewer_permission())


def remove_from_group(user: User) -> None:
    Group.objects.get(name="viewers").user_set.remove(user)


def remove_groups(user: User) -> None:
    user.groups.clear()


def remove_groups_permission(user: User) -> None:
    Group.objects.get(name="viewers").permissions.remove(viewer_permission())


def delete_group(user: User) -> None:
    Group.objects.get(name="viewers").delete()


def change_password(user: User) -> None:
    user.set_password("a-new-password-for-tests")
    user.save()


def delete_user(user: User) -> None:
    user.delete()


def no_longer_superuser(user: User) -> None:
    user.is_superuser = False
    user.save()


CHANGES = {
    "deactivated": (deactivate, "permission"),
    "permission removed": (remove_permission, "permission"),
    "removed from the group": (remove_from_group, "group"),
    "groups cleared": (remove_groups, "group"),
    "the group's permission removed": (remove_groups_permission, "group"),
    "the group deleted": (delete_group, "group"),
    "password changed": (change_password, "permission"),
    "deleted": (delete_user, "permission"),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_change_of_access_ends_private_subscriptions_and_keeps_public_ones(boards, change):
    write, via = CHANGES[change]
    ada = await in_thread(make_viewer, "ada", via=via)
    client = await in_thread(logged_in, ada)
    async with tab("hidden", client) as private, tab("open", client) as public:
        await in_thread(write, ada)
        await expect_close(private, 4403)
        await assert_watching(public, boards["open"])


async def test_losing_superuser_status_ends_private_subscriptions(boards):
    boss = await in_thread(User.objects.create_superuser, "boss", password=PASSWORD)
    client = await in_thread(logged_in, boss)
    async with tab("hidden", client) as private:
        await in_thread(no_longer_superuser, boss)
        await expect_close(private, 4403)


async def test_after_access_ended_a_resync_never_returns_the_private_snapshot(boards):
    ada = await in_thread(make_viewer, "ada")
    client = await in_thread(logged_in, ada)
    async with tab("hidden", client) as private:
        await in_thread(remove_permission, ada)
        await expect_close(private, 4403)
        await private.send_json_to({"type": "resync"})  # still reaches the consumer in a test
        assert await private.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4403}
        assert await private.receive_nothing(timeout=0.2)


async def test_after_access_ended_a_public_board_made_private_closes_the_socket(boards):
    """The socket keeps no private access: the board turning private cannot leak it."""
    ada = await in_thread(make_viewer, "ada")
    client = await in_thread(logged_in, ada)
    async with tab("hidden", client) as private, tab("open", client) as public:
        await in_thread(remove_permission, ada)
        await expect_close(private, 4403)
        await in_thread(make_viewer_again, ada)  # allowed again: the open socket still is not
        await in_thread(make_private, boards["open"])
        await expect_close(public, 4403)


def make_viewer_again(user: User) -> None:
    user.user_permissions.add(viewer_permission())


def make_private(board: Board) -> None:
    board.is_public = False
    board.save()


async def test_a_change_that_keeps_access_ends_nothing(boards):
    ada = await in_thread(make_viewer, "ada")
    client = await in_thread(logged_in, ada)

    def rename(user: User) -> None:
        user.first_name = "Ada"
        user.save()  # all fields: checked again, and still allowed

    async with tab("hidden", client) as private:
        await in_thread(rename, ada)
        await assert_watching(private, boards["hidden"])


async def test_logging_out_ends_only_that_sessions_private_subscriptions(boards):
    ada = await in_thread(make_viewer, "ada")
    leaving, staying = await in_thread(logged_in, ada), await in_thread(logged_in, ada)
    async with tab("hidden", leaving) as logged_out, tab("hidden", staying) as other:
        response = await in_thread(leaving.post, "/accounts/logout/")
        assert response.status_code == 200  # "logged out"
        await expect_close(logged_out, 4403)
        await assert_watching(other, boards["hidden"])


async def test_a_password_change_keeps_the_session_that_made_it_and_ends_the_others(boards):
    """As in Django: the changing session gets a new key and stays logged in, its sockets too."""
    ada = await in_thread(make_viewer, "ada", staff=True)  # the admin's password page is for staff
    changing, other = await in_thread(logged_in, ada), await in_thread(logged_in, ada)
    async with tab("hidden", changing) as kept, tab("hidden", other) as ended:
        form = {
            "old_password": PASSWORD,
            "new_password1": "An0ther-pass-phrase",
            "new_password2": "An0ther-pass-phrase",
        }
        response = await in_thread(changing.post, "/admin/password_change/", form)
        assert response.status_code == 302, response.content.decode()[:500]
        await expect_close(ended, 4403)
        await assert_watching(kept, boards["hidden"])
        # The kept socket follows its session's new key: a later logout of it ends it too.
        await in_thread(changing.post, "/accounts/logout/")
        await expect_close(kept, 4403)


async def test_an_access_event_is_one_database_read_for_all_of_a_users_sockets(boards, monkeypatch):
    ada = await in_thread(make_viewer, "ada")
    clients = [await in_thread(logged_in, ada) for _ in range(3)]
    original, reads = live.delivery.reads.read_private_access, []

    async def counted(sessions):
        reads.append(sessions)
        return await original(sessions)

    monkeypatch.setattr(live.delivery.reads, "read_private_access", counted)
    async with AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(tab("hidden", client)) for client in clients]
        await in_thread(remove_permission, ada)
        for ws in sockets:
            await expect_close(ws, 4403)
    assert len(reads) == 1 and len(reads[0][ada.pk]) == 3


async def test_an_access_change_while_a_socket_connects_is_not_missed(boards, monkeypatch):
    """Deactivated after the handshake loaded the user, before the board was read: refused."""
    ada = await in_thread(make_viewer, "ada")
    client = await in_thread(logged_in, ada)
    join_member = type(get_relay()).join_member

    async def revoked_meanwhile(relay, socket):
        await in_thread(deactivate, ada)  # its event may arrive before the socket joins
        await join_member(relay, socket)

    monkeypatch.setattr(type(get_relay()), "join_member", revoked_meanwhile)
    headers = [*SPECTATOR_HEADERS, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]
    ws = WebsocketCommunicator(application, "/ws/boards/hidden/", headers=headers)
    assert (await ws.connect(timeout=TIMEOUT))[0]
    try:
        await expect_close(ws, 4404)  # never saw it: as an outsider
    finally:
        await ws.disconnect()


async def test_an_event_stream_of_the_user_gets_member_frames_and_ends_with_forbidden(boards):
    from tests.test_events import stream

    ada = await in_thread(make_viewer, "ada")
    client = await in_thread(logged_in, ada)
    cookie = [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]
    async with stream("hidden", headers=cookie) as sse:
        assert (await sse.next_event())[1]["type"] == "snapshot"
        await in_thread(relay_to_member, user_id=ada.pk, event="notice", payload={"text": "hi"})
        assert (await sse.next_event())[1] == {"type": "member", "event": "notice", "payload": {"text": "hi"}}
        await in_thread(remove_permission, ada)
        assert (await sse.next_event())[1]["code"] == "forbidden"
        assert sse.ended


async def test_access_events_lost_in_a_broker_outage_are_made_up_when_it_is_back(boards, monkeypatch):
    """An outage the heartbeat notices may have swallowed one: every member is checked again."""
    ada = await in_thread(make_viewer, "ada")
    client = await in_thread(logged_in, ada)
    layer = get_channel_layer()
    group_send = layer.group_send

    async def lost(group, message):
        pass  # accepted and never delivered, as the pubsub layer does while Redis is away

    async with tab("hidden", client) as private:
        monkeypatch.setattr(layer, "group_send", lost)
        assert (await private.receive_json_from(timeout=3))["type"] == "stale"
        await in_thread(remove_permission, ada)  # its access event is lost
        monkeypatch.setattr(layer, "group_send", group_send)
        await expect_close(private, 4403)


# Which changes tell the relays.


@pytest.fixture
def told(monkeypatch) -> list[set[int]]:
    """The user ids of each access event sent (after its commit)."""
    events = []
    monkeypatch.setattr(
        publish, "relay_access_changed", lambda *, user_ids, moved=None: events.append(set(user_ids))
    )
    return events


def test_saves_that_cannot_end_access_tell_nobody(told):
    user = User.objects.create_user("ada", password=PASSWORD)  # created
    user.last_login = user.date_joined
    user.save(update_fields=["last_login"])  # every login does this
    group = Group.objects.create(name="viewers")
    user.groups.add(group)  # granting
    group.permissions.add(viewer_permission())
    assert told == []


def test_a_group_losing_its_permission_tells_its_members_only(told):
    group = Group.objects.create(name="viewers")
    members = [make_viewer(name) for name in ("ada", "bob")]
    make_viewer("cy")
    group.user_set.add(*members)
    viewer_permission().group_set.remove(group)  # from the permission's side
    assert told == [{m.pk for m in members}]


def test_clearing_a_permissions_holders_tells_each_of_them(told):
    ada, bob = make_viewer("ada"), make_viewer("bob")
    viewer_permission().user_set.clear()
    assert told == [{ada.pk, bob.pk}]


def test_a_rolled_back_change_tells_nobody(told):
    from django.db import transaction

    ada = make_viewer("ada")
    with pytest.raises(RuntimeError), transaction.atomic():
        deactivate(ada)
        raise RuntimeError
    assert told == []
