"""Who a WebSocket belongs to, without a database hop for anonymous spectators, and
whether its session still logs its user in (live/delivery/members.py asks).

Channels' AuthMiddlewareStack loads the session and the user on every connection, even one
without a session cookie: a hop to Django's single database thread per anonymous spectator.
A connection without the session cookie is anonymous by definition, so it skips the stack.
"""

from importlib import import_module

from channels.auth import AuthMiddlewareStack
from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.http import parse_cookie
from django.utils.crypto import constant_time_compare


def has_session_cookie(scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"cookie" and settings.SESSION_COOKIE_NAME in parse_cookie(value.decode("latin1")):
            return True
    return False


class SessionAuthMiddleware:
    """AuthMiddlewareStack for connections with a session cookie; AnonymousUser otherwise."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.authenticated = AuthMiddlewareStack(inner)

    async def __call__(self, scope, receive, send):
        if has_session_cookie(scope):
            return await self.authenticated(scope, receive, send)
        return await self.inner(dict(scope, user=AnonymousUser()), receive, send)


def session_user(session_key: str, *, user_id: int):
    """The user `user_id` if the session `session_key` still logs them in, else None.

    Django's own test (django.contrib.auth.get_user) without its writes: the session exists
    and names this user and a configured backend, the backend still returns the user
    (ModelBackend: only an active one), and the session's hash still matches the user's
    password (a password change ends every other session). Synchronous: call it from a
    database hop.
    """
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    data = store.load()
    try:
        stored_id = get_user_model()._meta.pk.to_python(data[SESSION_KEY])
        backend_path = data[BACKEND_SESSION_KEY]
    except (KeyError, ValidationError):
        return None
    if stored_id != user_id or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = load_backend(backend_path).get_user(user_id)
    session_hash = data.get(HASH_SESSION_KEY)
    if user is None or not session_hash:
        return None
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return user if any(constant_time_compare(session_hash, known) for known in hashes) else None


def member_identity(scope) -> tuple[int, str] | None:
    """(user id, session key) of a logged-in user's connection; None for an anonymous one."""
    user, session = scope.get("user"), scope.get("session")
    if user is None or not user.is_authenticated or session is None or not session.session_key:
        return None
    return user.pk, session.session_key
