"""The documented production environment (deploy/scoreboard.env.example), for test processes."""

import secrets
from pathlib import Path

from harness.servers import ROOT, server_env

ENV_EXAMPLE = ROOT / "deploy" / "scoreboard.env.example"


def documented_env() -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def production_env(tmp_path: Path, **overrides: str) -> dict:
    """The documented environment with a real secret key and throwaway paths."""
    env = documented_env()
    env.update(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DJANGO_STATIC_ROOT=str(tmp_path / "static"),
        **overrides,
    )
    redis_url = env.pop("REDIS_URL")
    return server_env(database_url=env.pop("DATABASE_URL"), redis_url=redis_url, **env)
