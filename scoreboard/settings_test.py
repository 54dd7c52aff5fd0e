"""Settings for the test suite: production settings plus a throwaway secret key."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production")
# The tests never read a developer's .env (written by `make run`).
os.environ.setdefault("DJANGO_ENV_FILE", "")

from scoreboard.settings import *  # noqa: E402,F403

TEST_RUNNER = "pytest_django.runner.TestRunner"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Unit tests use the in-memory layer; Redis-backed tests switch per test (tests/conftest.py).
CHANNEL_LAYERS = {
    "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
}
# No `watching` frame at a random moment of a unit test: tests of who is watching count
# when they choose (tests/test_presence.py), or set it back to 1 s.
LIVE_PRESENCE_EVERY = 3600.0

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # DATABASE_URL may point at a shared server (`make test-postgres`): a database per run.
    DATABASES["default"]["TEST"] = {"NAME": f"test_scoreboard_{os.getpid()}"}  # noqa: F405
