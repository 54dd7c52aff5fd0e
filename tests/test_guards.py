"""Who may open a WebSocket: Host, Origin (scheme, host and port), connections per client address."""

import pytest
from channels.testing import WebsocketCommunicator

from live.delivery.guards import client_address
from scoreboard.asgi import application
from tests.conftest import TIMEOUT, receive

pytestmark = pytest.mark.django_db(transaction=True)


def from_address(address: str | None):
    """The application as reached by a peer with this address (None: over a Unix socket)."""

    async def app(scope, receive, send):
        client = None if address is None else [address, 40000]
        return await application(dict(scope, client=client), receive, send)

    return app


async def handshake(
    *,
    host: str = "testserver",
    origin: str | None = "http://testserver",
    address: str = "192.0.2.1",
    extra=(),
) -> tuple[bool, WebsocketCommunicator]:
    headers = [(b"host", host.encode())] if host else []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    headers.extend(extra)
    communicator = WebsocketCommunicator(from_address(address), "/ws/boards/finals/", headers=headers)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    return connected, communicator


async def accepted(**kwargs) -> bool:
    connected, communicator = await handshake(**kwargs)
    await communicator.disconnect()
    return connected


async def test_the_sites_own_origin_is_accepted(board):
    assert await accepted(host="testserver", origin="http://testserver")
    assert await accepted(host="localhost:8000", origin="http://localhost:8000")


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:9999",  # another port
        "http://localhost",  # the default port, not the one served
        "https://localhost:8000",  # another scheme
        "ws://localhost:8000",
        "chrome-extension://localhost",
        "http://evil.example",
        "http://localhost.evil.example:8000",
        "null",
        "",
    ],
)
async def test_an_origin_of_another_scheme_host_or_port_is_refused(board, origin):
    assert not await accepted(host="localhost:8000", origin=origin)


async def test_a_handshake_without_origin_is_refused(board):
    assert not await accepted(origin=None)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "localhost.evil.example", ""])
async def test_a_host_outside_allowed_hosts_is_refused_even_from_its_own_origin(board, host):
    assert not await accepted(host=host, origin=f"http://{host}")


async def test_behind_a_tls_proxy_the_own_origin_is_https(board, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proto = [(b"x-forwarded-proto", b"https")]
    assert await accepted(host="localhost", origin="https://localhost", extra=proto)
    assert not await accepted(host="localhost", origin="http://localhost", extra=proto)


async def test_configured_origins_are_accepted_exactly(board, settings):
    settings.LIVE_WEBSOCKET_ORIGINS = ["https://localhost:8443", "https://*.example.org"]
    assert await accepted(host="localhost", origin="https://localhost:8443")
    assert not await accepted(host="localhost", origin="https://localhost:8444")
    assert not await accepted(host="localhost", origin="http://localhost:8443")
    assert await accepted(host="localhost", origin="https://scores.example.org")
    assert not await accepted(host="localhost", origin="http://scores.example.org")


async def test_one_address_may_hold_only_the_configured_number_of_websockets(board, settings):
    settings.LIVE_CONNECTIONS_PER_ADDRESS = 3
    held = []
    try:
        for _ in range(3):
            connected, ws = await handshake(address="192.0.2.7")
            held.append(ws)
            assert connected
            await receive(ws)
        connected, refused = await handshake(address="192.0.2.7")
        await refused.disconnect()
        assert not connected
        assert await accepted(address="192.0.2.8")  # another client is not affected
        await held.pop().disconnect()
        assert await accepted(address="192.0.2.7")  # a closed socket frees its place
    finally:
        for ws in held:
            await ws.disconnect()


def scope_from(peer: str | None, forwarded: str | None = None) -> dict:
    headers = [] if forwarded is None else [(b"x-forwarded-for", forwarded.encode())]
    return {"client": None if peer is None else [peer, 5000], "headers": headers}


def test_a_direct_client_cannot_choose_its_address_with_x_forwarded_for():
    assert client_address(scope_from("198.51.100.9", "203.0.113.1")) == ["198.51.100.9", 5000]


def test_behind_nginx_on_a_unix_socket_the_address_nginx_saw_counts():
    """nginx appends $remote_addr: what the client wrote itself stays to its left, ignored."""
    assert client_address(scope_from(None, "203.0.113.1, 198.51.100.9")) == ["198.51.100.9", 0]
    assert client_address(scope_from(None, "198.51.100.9")) == ["198.51.100.9", 0]
    assert client_address(scope_from(None)) is None


def test_trusted_tcp_proxies_are_skipped_from_the_right(settings):
    settings.LIVE_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_address(scope_from("10.1.1.1", "203.0.113.1, 198.51.100.9, 10.2.2.2")) == [
        "198.51.100.9",
        0,
    ]
    assert client_address(scope_from("10.1.1.1", "not-an-address, 10.2.2.2")) == ["10.1.1.1", 5000]
