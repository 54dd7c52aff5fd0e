"""Who may reach the application, and how much of it one client may hold (docs/PROTOCOL.md).

- `ClientAddress` (HTTP and WebSocket) puts the client's own address in `scope["client"]`:
  the peer's, or, when the peer is a trusted proxy, the nearest untrusted address of its
  `X-Forwarded-For`. Django's `REMOTE_ADDR`, the login throttle (django-axes) and the
  connection limit below all read it, so a client cannot choose its address by sending the
  header itself.
- `WebSocketGuard` refuses a handshake (Daphne answers HTTP 403) whose `Host` Django would
  refuse, whose `Origin` is neither the site's own nor one of `LIVE_WEBSOCKET_ORIGINS`, or
  whose client already holds `LIVE_CONNECTIONS_PER_ADDRESS` WebSockets in this process.
"""

import functools
import ipaddress
import logging
import time
from collections import Counter
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.http import is_same_domain

logger = logging.getLogger(__name__)

# A refusal is logged once, then at most once a minute per reason with the count meanwhile:
# a flood of refused handshakes must not become a flood of log lines.
REFUSAL_LOG_EVERY = 60.0


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def is_trusted_proxy(host: str | None) -> bool:
    """A Unix-socket peer (no address: a local process, nginx in deploy/) or a LIVE_TRUSTED_PROXIES one."""
    return host is None or _is_trusted(host)


# Asked on every connect, before anything else: parsing the address, and even reading the
# setting, cost more than the rest of the guard. Forgotten when a test changes the setting.
@functools.lru_cache(maxsize=4096)
def _is_trusted(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in _networks(tuple(settings.LIVE_TRUSTED_PROXIES)))


def setting_changed(*, setting: str, **kwargs) -> None:
    """A test changed a setting (connected in LiveConfig.ready())."""
    if setting == "LIVE_TRUSTED_PROXIES":
        _is_trusted.cache_clear()


def header(scope, name: bytes) -> str | None:
    """A request header of an ASGI scope (repeated ones joined with commas), or None."""
    values = [value.decode("latin1") for key, value in scope.get("headers", ()) if key == name]
    return ",".join(values) if values else None


def client_address(scope) -> list | None:
    """[address, port] of the client: X-Forwarded-For is believed only from trusted proxies."""
    peer = scope.get("client")
    if not is_trusted_proxy(peer[0] if peer else None):
        return peer
    forwarded = header(scope, b"x-forwarded-for")
    hops = [hop.strip() for hop in forwarded.split(",")] if forwarded else []
    # Each proxy appends the address it saw: read from the right, the nearest hop first.
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a hop we cannot read: believe nothing further left
        if not is_trusted_proxy(hop):
            return [hop, 0]
    return peer


def request_client_address(request) -> str | None:
    """The client address of a Django request: REMOTE_ADDR, as ClientAddress set it."""
    return request.META.get("REMOTE_ADDR")


class ClientAddress:
    """ASGI middleware: `scope["client"]` is the client's address (see client_address())."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in {"http", "websocket"}:
            scope = dict(scope, client=client_address(scope))
        return await self.app(scope, receive, send)


class Handshake(HttpRequest):
    """A WebSocket upgrade as Django sees an HTTP request: get_host() and is_secure() as for HTTP."""

    def __init__(self, scope) -> None:
        super().__init__()
        self._scheme = "https" if scope.get("scheme") == "wss" else "http"
        server = scope.get("server") or ("unknown", "0")
        self.META = {"SERVER_NAME": server[0], "SERVER_PORT": str(server[1])}
        for name, value in scope.get("headers", ()):
            key = "HTTP_" + name.decode("latin1").upper().replace("-", "_")
            value = value.decode("latin1")
            self.META[key] = f"{self.META[key]},{value}" if key in self.META else value

    def _get_scheme(self) -> str:
        return self._scheme

    def refusal(self) -> str | None:
        """Why this handshake must be refused, or None."""
        try:
            host = self.get_host()
        except DisallowedHost:
            return f"Host: {self.META.get('HTTP_HOST')!r} is not in ALLOWED_HOSTS"
        origin = self.META.get("HTTP_ORIGIN")
        if origin is None:
            return "Origin: missing"
        if not origin_allowed(origin, own=f"{'https' if self.is_secure() else 'http'}://{host}"):
            return f"Origin: {origin!r} is not this site's"
        return None


def origin_allowed(origin: str, *, own: str) -> bool:
    """The rule of Django's CSRF check for an Origin: the site's own, or a trusted one."""
    trusted = settings.LIVE_WEBSOCKET_ORIGINS
    if origin == own or origin in trusted:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    # "https://*.example.com" trusts every subdomain (scheme and port still exact).
    return any(
        is_same_domain(parsed.netloc, urlsplit(pattern).netloc.lstrip("*"))
        for pattern in trusted
        if "*" in pattern and urlsplit(pattern).scheme == parsed.scheme
    )


class RefusalLog:
    """Logs the first refusal of each kind, then at most once a minute with the count meanwhile."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.counts: Counter[str] = Counter()
        self.logged_at: dict[str, float] = {}

    def note(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        now = time.monotonic()
        if now - self.logged_at.get(kind, float("-inf")) >= REFUSAL_LOG_EVERY:
            count, self.counts[kind] = self.counts[kind], 0
            self.logged_at[kind] = now
            logger.warning("%s refused: %s (%d since this was last logged)", self.what, detail, count)


class WebSocketGuard:
    """ASGI middleware for the WebSocket routes: Host, Origin and connections per address."""

    def __init__(self, app) -> None:
        self.app = app
        self.open: Counter[str] = Counter()
        self.refusals = RefusalLog("WebSocket handshake")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        reason = Handshake(scope).refusal()
        address = scope["client"][0] if scope.get("client") else None
        limit = settings.LIVE_CONNECTIONS_PER_ADDRESS
        if reason is None and address is not None and limit and self.open[address] >= limit:
            reason = f"connections: {limit} open from this address"
        if reason is not None:
            self.refusals.note(reason.split(":", 1)[0], f"{reason} (client {address})")
            await receive()  # websocket.connect
            await send({"type": "websocket.close"})  # before accept: Daphne answers 403
            return
        if address is None:
            return await self.app(scope, receive, send)
        self.open[address] += 1
        try:
            return await self.app(scope, receive, send)
        finally:
            self.open[address] -= 1
            if not self.open[address]:
                del self.open[address]
