"""The management commands a newcomer and the demo rely on."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from live.management.commands import ensure_admin, notify
from live.models import Board, Player

pytestmark = pytest.mark.django_db


def run(*args, **options) -> str:
    out = StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def test_seed_demo_is_idempotent():
    assert "created" in run("seed_demo")
    assert "exists" in run("seed_demo")
    assert Board.objects.filter(slug="demo").count() == 1
    assert Player.objects.filter(board__slug="demo").count() == 8


@pytest.fixture
def credentials_file(tmp_path, monkeypatch):
    path = tmp_path / ".admin-credentials"
    monkeypatch.setattr(ensure_admin, "CREDENTIALS_FILE", path)
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    return path


def test_ensure_admin_generates_a_password_once_and_prints_it(credentials_file):
    first = run("ensure_admin")
    password = first.split("password: ")[1].strip()
    assert len(password) >= 12 and credentials_file.read_text().split() == ["admin", password]
    assert get_user_model().objects.get(username="admin").check_password(password)
    assert run("ensure_admin") == first


def test_ensure_admin_takes_the_password_from_the_environment(credentials_file, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "correct-horse-battery")
    assert "password: correct-horse-battery" in run("ensure_admin")
    user = get_user_model().objects.get(username="admin")
    assert user.is_staff and user.is_superuser and user.check_password("correct-horse-battery")


def test_ensure_admin_never_resets_a_password_it_did_not_generate(credentials_file, django_user_model):
    django_user_model.objects.create_superuser("admin", password="chosen-by-the-owner")
    assert "password: unchanged" in run("ensure_admin")
    assert django_user_model.objects.get(username="admin").check_password("chosen-by-the-owner")


def test_seed_demo_never_re_adds_players_staff_renamed_or_removed():
    run("seed_demo")
    Player.objects.filter(name="Ken").update(name="Kenneth")
    Player.objects.filter(name="Radia").delete()
    assert "exists" in run("seed_demo")
    names = set(Player.objects.values_list("name", flat=True))
    assert "Kenneth" in names and "Ken" not in names and "Radia" not in names


@pytest.mark.django_db(transaction=True)
def test_simulate_makes_one_recorded_change_set_per_change():
    run("seed_demo")
    board = Board.objects.get(slug="demo")
    before = dict(Player.objects.values_list("name", "score"))
    assert "Made 5 changes" in run("simulate", "--count", "5", "--interval", "0", "--seed", "3")
    assert dict(Player.objects.values_list("name", "score")) != before
    records = board.changes.filter(version__gt=board.version)
    assert Board.objects.get(pk=board.pk).version == board.version + 5
    assert [r.source for r in records] == ["simulate"] * 5


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--board", "nope"], "No board with slug 'nope'"), (["--count", "-1"], "must not be negative")],
)
def test_simulate_refuses_bad_input_clearly(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("simulate", *args)


# manage.py notify: a notice to every open page of one user (tests/test_member_processes.py
# shows it arriving across processes).


@pytest.fixture
def crossing_layer(monkeypatch):
    """As under channels-redis: a message from this process reaches the servers."""
    monkeypatch.setattr(notify, "reaches_other_processes", lambda: True)
    sent = []
    monkeypatch.setattr(notify, "relay_to_member", lambda **message: sent.append(message) or True)
    return sent


def test_notify_refuses_to_send_into_the_in_memory_layer_that_reaches_no_server():
    get_user_model().objects.create_user("ada")
    with pytest.raises(CommandError, match=r"in-memory \(no REDIS_URL\).*cannot reach"):
        run("notify", "--user", "ada", "Final at six")


def test_notify_sends_one_notice_to_the_user(crossing_layer):
    ada = get_user_model().objects.create_user("ada")
    assert "Notice sent to ada's open pages." in run("notify", "--user", "ada", "Final at six")
    assert crossing_layer == [{"user_id": ada.pk, "event": "notice", "payload": {"text": "Final at six"}}]


def test_notify_names_an_unknown_user(crossing_layer):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run("notify", "--user", "nobody", "hello")


def test_notify_refuses_a_notice_over_1000_characters(monkeypatch):
    monkeypatch.setattr(notify, "reaches_other_processes", lambda: True)
    get_user_model().objects.create_user("ada")
    with pytest.raises(CommandError, match="1 to 1000 characters, not 1001"):
        run("notify", "--user", "ada", "x" * 1001)


def test_notify_fails_when_the_channel_layer_is_unreachable(crossing_layer, monkeypatch):
    get_user_model().objects.create_user("ada")
    monkeypatch.setattr(notify, "relay_to_member", lambda **message: False)
    with pytest.raises(CommandError, match="unreachable; the notice was not sent"):
        run("notify", "--user", "ada", "hello")
