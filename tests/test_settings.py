"""Settings come from the environment and refuse unsafe or unclear values."""

import subprocess
import sys

import pytest

from harness.servers import ROOT


def django_setup(env: dict) -> subprocess.CompletedProcess:
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "scoreboard.settings", "DJANGO_ENV_FILE": ""}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=base | env, capture_output=True, text=True, timeout=60
    )


def test_debug_is_off_by_default_and_a_secret_key_is_then_required():
    result = django_setup({})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_with_a_secret_key_debug_stays_off():
    result = django_setup({"DJANGO_SECRET_KEY": "x" * 50})
    assert result.returncode == 0 and result.stdout.strip() == "False"


def test_an_env_file_is_read_and_the_environment_wins_over_it(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DJANGO_DEBUG=1\nDJANGO_SECRET_KEY=from-the-file\n")
    assert django_setup({"DJANGO_ENV_FILE": str(env_file)}).stdout.strip() == "True"
    assert django_setup({"DJANGO_ENV_FILE": str(env_file), "DJANGO_DEBUG": "0"}).stdout.strip() == "False"


def test_debug_can_be_turned_on_without_a_secret_key():
    result = django_setup({"DJANGO_DEBUG": "1"})
    assert result.returncode == 0 and result.stdout.strip() == "True"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG must be a boolean"),
        ({"DJANGO_DEBUG": "1", "REDIS_URL": "redis://x", "CHANNEL_LAYER": "kafka"}, "CHANNEL_LAYER must be"),
        ({"DJANGO_DEBUG": "1", "LIVE_GROUP_EXPIRY": "soon"}, "LIVE_GROUP_EXPIRY must be an integer"),
    ],
)
def test_a_bad_value_is_refused_with_a_clear_message(env, message):
    result = django_setup(env)
    assert result.returncode != 0 and message in result.stderr


def test_redis_url_switches_to_channels_redis(settings):
    from scoreboard.settings import redis_channel_layer

    core = redis_channel_layer(redis_url="redis://h:1/0", kind="core", group_expiry=99)
    assert core["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert core["CONFIG"]["group_expiry"] == 99 and core["CONFIG"]["capacity"] >= 1000
    pubsub = redis_channel_layer(redis_url="redis://h:1/0", kind="pubsub", group_expiry=99)
    assert pubsub["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"


@pytest.mark.parametrize(
    "origins",
    ["https://ok.example,https://evil.example; script-src *", "club.example", "https://club.example/path"],
)
def test_embed_origins_must_be_origins(origins):
    """They go into a Content-Security-Policy header: nothing else may get in with them."""
    result = django_setup({"DJANGO_DEBUG": "1", "LIVE_EMBED_ORIGINS": origins})
    assert result.returncode != 0 and "LIVE_EMBED_ORIGINS lists origins" in result.stderr


def test_embed_origins_are_read_from_the_environment():
    code = (
        "import django; django.setup(); from django.conf import settings; print(settings.LIVE_EMBED_ORIGINS)"
    )
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "scoreboard.settings", "DJANGO_ENV_FILE": ""}
    env |= {
        "DJANGO_DEBUG": "1",
        "LIVE_EMBED_ORIGINS": "https://club.example, http://[::1]:8080,https://*.x.example",
    }
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "['https://club.example', 'http://[::1]:8080', 'https://*.x.example']"
