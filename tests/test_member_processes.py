"""Messages to one member and access that ends, across two real Daphne processes on Redis.

docs/PROTOCOL.md promises that a private board's subscriptions end within 1 s of the commit
of a change that ends the user's access, on every server process, while public ones go on,
and that a notice reaches every open page of its user and nobody else's.
"""

import asyncio
import sqlite3
import time
from contextlib import AsyncExitStack

import pytest

from harness.deployment import Deployment
from harness.servers import manage
from harness.staff import STAFF_PASSWORD, Staff
from harness.tab import Tab

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

ENDED_WITHIN = 1.0  # seconds from the commit, the promise

SETUP = f"""
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, Permission, User
from live.models import Board, Player
secret = Board.objects.create(name="Secret", slug="secret", is_public=False)
Player.objects.create(board=secret, name="Insider", score=7)
allowed = Permission.objects.get(codename="view_private_board")
password = make_password({STAFF_PASSWORD!r})
for name in ["deactivated", "unpermitted", "ungrouped", "group-permission", "deleted",
             "repassworded", "loggedout", "changer", "noticed", "other"]:
    user = User.objects.create(username=name, password=password, is_staff=name == "changer")
    if name in ("ungrouped", "group-permission"):
        group = Group.objects.create(name=name)
        group.permissions.add(allowed)
        user.groups.add(group)
    else:
        user.user_permissions.add(allowed)
"""


def change(site: Deployment, code: str) -> float:
    """Run ORM code in its own process (as an admin's script would); returns a time before its
    commit: the code prints it right before the write."""
    script = "import time\nfrom django.contrib.auth.models import Group, Permission, User\n" + code
    output = manage("shell", "-v", "0", "-c", script, env=site.env).stdout
    return float(next(line for line in output.splitlines() if line.startswith("before ")).split()[1])


CHANGES = {
    "deactivated": 'u = User.objects.get(username="deactivated")\nu.is_active = False\n'
    'print("before", time.time())\nu.save()',
    "permission removed": 'u = User.objects.get(username="unpermitted")\n'
    'p = Permission.objects.get(codename="view_private_board")\n'
    'print("before", time.time())\nu.user_permissions.remove(p)',
    "removed from the group": 'u = User.objects.get(username="ungrouped")\n'
    'print("before", time.time())\nu.groups.clear()',
    "the group's permission removed": 'g = Group.objects.get(name="group-permission")\n'
    'print("before", time.time())\ng.permissions.clear()',
    "deleted": 'u = User.objects.get(username="deleted")\nprint("before", time.time())\nu.delete()',
    "password changed": 'u = User.objects.get(username="repassworded")\nu.set_password("x-9-new-password")\n'
    'print("before", time.time())\nu.save()',
}
USERS = {
    "deactivated": "deactivated",
    "permission removed": "unpermitted",
    "removed from the group": "ungrouped",
    "the group's permission removed": "group-permission",
    "deleted": "deleted",
    "password changed": "repassworded",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory, prepared_sqlite, redis_url):
    """Redis, two Daphne processes on one database with a private board "secret" and users."""
    tmp_path = tmp_path_factory.mktemp("members")
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(prepared_sqlite) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
    site = Deployment(tmp_path, layer="pubsub", database_url=f"sqlite:///{path}")
    try:
        manage("shell", "-v", "0", "-c", SETUP, env=site.env)
        site.start_daphne()
        site.start_daphne()
        yield site
    finally:
        for daphne in site.daphnes:
            print(f"--- {daphne.log_path.name}\n{daphne.output()}")  # shown when a test fails
        site.stop()


@pytest.fixture(scope="module")
def staff(site) -> Staff:
    return Staff(site.daphnes[0].http_url, "staff1").log_in()


async def log_in(site: Deployment, username: str, *, on: int = 0) -> Staff:
    """A logged-in session of `username` (through the viewers' login page)."""
    return await asyncio.to_thread(Staff(site.daphnes[on].http_url, username).log_in, "/accounts/login/")


async def open_tabs(stack: AsyncExitStack, site: Deployment, slug: str, session: str | None) -> list[Tab]:
    """One tab of the board on each process."""
    tabs = [Tab(d.ws_url, slug, session=session) for d in site.daphnes]
    for tab in tabs:
        stack.push_async_callback(tab.close)
    await asyncio.gather(*(tab.open() for tab in tabs))
    return tabs


async def edit_both_boards(site: Deployment, staff: Staff) -> None:
    """One point more for a player of "demo" and of "secret" (a change-set on each)."""
    ids = [p["id"] for slug in ("demo", "secret") for p in site.db.players(site.db.board(slug)[0])[:1]]
    await asyncio.to_thread(staff.add_points, ids)


async def assert_ended_within_the_promise(private: list[Tab], before_commit: float) -> None:
    for tab in private:
        code, at = await tab.closed()
        assert code == 4403, f"{tab.url}: closed with {code}"
        print(f"ended {at - before_commit:.3f}s after the commit: {tab.url}")
        assert at - before_commit <= ENDED_WITHIN, (
            f"{tab.url}: ended {at - before_commit:.3f}s after the commit"
        )


async def assert_still_watching(tabs: list[Tab], site: Deployment, staff: Staff) -> None:
    marks = [len(tab.frames) for tab in tabs]
    await edit_both_boards(site, staff)
    for tab, mark in zip(tabs, marks, strict=True):
        assert (await tab.frame("update", after=mark))["type"] == "update"
        assert tab.close_code is None


@pytest.mark.parametrize("case", list(CHANGES))
async def test_a_change_of_access_ends_private_subscriptions_on_every_process_within_1s(site, staff, case):
    """...committed by another process; the user's public subscriptions go on."""
    viewer = await log_in(site, USERS[case])
    async with AsyncExitStack() as stack:
        private = await open_tabs(stack, site, "secret", viewer.session)
        public = await open_tabs(stack, site, "demo", viewer.session)
        before_commit = await asyncio.to_thread(change, site, CHANGES[case])
        await assert_ended_within_the_promise(private, before_commit)
        await assert_still_watching(public, site, staff)


async def test_logging_out_ends_that_sessions_private_subscriptions_on_every_process_within_1s(site, staff):
    leaving, staying = await log_in(site, "loggedout"), await log_in(site, "loggedout", on=1)
    async with AsyncExitStack() as stack:
        private = await open_tabs(stack, site, "secret", leaving.session)
        public = await open_tabs(stack, site, "demo", leaving.session)
        others = await open_tabs(stack, site, "secret", staying.session)
        token = [("csrfmiddlewaretoken", leaving.csrf_token())]
        before_commit = time.time()
        status, _ = await asyncio.to_thread(leaving.request, "/accounts/logout/", token)
        assert status == 200
        await assert_ended_within_the_promise(private, before_commit)
        await assert_still_watching(public + others, site, staff)


async def test_a_password_change_in_the_admin_keeps_that_session_and_ends_the_others(site, staff):
    changing, other = await log_in(site, "changer", on=0), await log_in(site, "changer", on=1)
    async with AsyncExitStack() as stack:
        kept = await open_tabs(stack, site, "secret", changing.session)
        ended = await open_tabs(stack, site, "secret", other.session)
        form = [("old_password", STAFF_PASSWORD)] + [
            (f"new_password{n}", "An0ther-pass-phrase") for n in (1, 2)
        ]
        await asyncio.to_thread(changing.post, "/admin/password_change/", form)
        answered = time.time()  # the commit came before: hashing passwords takes a while
        await assert_ended_within_the_promise(ended, answered)
        await assert_still_watching(kept, site, staff)
        # Its sockets followed the session to its new key: logging it out ends them too.
        token = [("csrfmiddlewaretoken", changing.csrf_token())]
        before_commit = time.time()
        await asyncio.to_thread(changing.request, "/accounts/logout/", token)
        await assert_ended_within_the_promise(kept, before_commit)


async def test_a_notice_reaches_every_tab_of_its_user_on_every_process_and_nobody_else(site):
    noticed, other = await log_in(site, "noticed"), await log_in(site, "other", on=1)
    async with AsyncExitStack() as stack:
        tabs = await open_tabs(stack, site, "demo", noticed.session)
        tabs += await open_tabs(stack, site, "secret", noticed.session)  # two boards, one user
        others = await open_tabs(stack, site, "demo", other.session)
        anonymous = await open_tabs(stack, site, "demo", None)
        text = "Final at 18:00 <script>alert(1)</script> — hall B"
        result = await asyncio.to_thread(manage, "notify", "--user", "noticed", text, env=site.env)
        assert "noticed" in result.stdout
        for tab in tabs:
            assert await tab.frame("member") == {
                "type": "member",
                "event": "notice",
                "payload": {"text": text},
            }
        # Sent second through the same relays: had the first reached them, it would be first.
        await asyncio.to_thread(manage, "notify", "--user", "other", "yours", env=site.env)
        for tab in others:
            assert (await tab.frame("member"))["payload"] == {"text": "yours"}
        for tab in tabs + others + anonymous:
            members = [frame for _, frame in tab.frames if frame["type"] == "member"]
            assert len(members) == 1 or tab in anonymous and not members


async def test_notify_names_an_unknown_user_and_fails(site):
    with pytest.raises(RuntimeError, match="No user named 'nobody'"):
        await asyncio.to_thread(manage, "notify", "--user", "nobody", "hello", env=site.env)
