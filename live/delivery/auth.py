"""Who a WebSocket belongs to, without a database hop for anonymous spectators.

Channels' AuthMiddlewareStack loads the session and the user on every connection, even one
without a session cookie: a hop to Django's single database thread per anonymous spectator.
A connection without the session cookie is anonymous by definition, so it skips the stack.
"""

from channels.auth import AuthMiddlewareStack
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import parse_cookie


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
