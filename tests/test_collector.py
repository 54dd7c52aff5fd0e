"""Full garbage collections paced by closed connections (live/delivery/collector.py)."""

import asyncio
import gc
import weakref
from contextlib import contextmanager

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from live.delivery import collector
from live.delivery.collector import Collector
from tests.conftest import FakeClock

PEER = IPv4Address("TCP", "203.0.113.9", 40000)
UPGRADE = (
    b"GET /ws/boards/demo/ HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.fixture
def paced():
    """A collector with its own clock and a collect() that only counts."""
    runs: list[float] = []
    clock = FakeClock(100.0)
    pacer = Collector(
        at_least=10,
        share=0.25,
        interval=10.0,
        settle=0.01,
        collect=lambda: runs.append(clock.now) or 0,
        clock=clock,
    )
    pacer.runs, pacer.clock = runs, clock
    return pacer


async def settled(pacer: Collector) -> None:
    """Wait for a scheduled collection to run (each wait bounded)."""
    async with asyncio.timeout(2):
        while pacer.scheduled is not None:
            await asyncio.sleep(0.005)


async def test_a_crowd_joining_causes_no_full_collection(paced):
    for _ in range(10_000):
        paced.opened()
    await asyncio.sleep(0.05)
    assert paced.runs == [] and paced.scheduled is None


async def test_a_quarter_of_those_open_closing_causes_one_collection_after_they_settle(paced):
    for _ in range(100):
        paced.opened()
    for _ in range(10):  # at least 10 (`at_least`): the first collection
        paced.closed()
    await settled(paced)
    assert paced.runs == [100.0] and paced.open_at_last == 90
    paced.clock.now += 60
    for _ in range(21):  # a quarter of 90 is 22
        paced.closed()
    assert paced.scheduled is None
    paced.closed()
    await settled(paced)
    assert paced.runs == [100.0, 160.0] and paced.closed_since == 0


async def test_a_crowd_dropping_at_once_is_collected_once(paced):
    for _ in range(1000):
        paced.opened()
    for _ in range(1000):
        paced.closed()
    await settled(paced)
    assert len(paced.runs) == 1


async def test_collections_are_at_least_an_interval_apart(paced):
    for _ in range(100):
        paced.opened()
    for _ in range(10):
        paced.closed()
    await settled(paced)
    for _ in range(22):  # due again: a quarter of the 90 open at the first
        paced.closed()
    assert paced.scheduled is not None
    assert paced.scheduled.when() - asyncio.get_running_loop().time() > 9  # 10 s after the first
    paced.scheduled.cancel()


def test_configure_freezes_start_up_and_raises_the_oldest_threshold():
    thresholds = gc.get_threshold()
    try:
        collector.configure()
        assert gc.get_threshold() == collector.THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


# What a connection leaves behind once it is gone: nothing in a reference cycle, so that
# reference counting frees it at once and no full collection is needed for it.


@contextmanager
def no_cycle_collection():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def daphne_server(app):
    """Daphne's server with its factories as `Server.run()` makes them, listening nowhere."""
    from daphne.http_protocol import HTTPFactory
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketFactory

    import scoreboard.asgi  # noqa: F401 - installs live/delivery/daphne.py

    server = Server(app, endpoints=["tcp:port=0:interface=127.0.0.1"])
    server.connections = {}
    server.http_factory = HTTPFactory(server)
    server.ws_factory = WebSocketFactory(server, server="Daphne")
    server.ws_factory.setProtocolOptions(allowNullOrigin=True)
    return server


def test_a_closed_http_connection_is_freed_without_a_full_collection():
    """The per-address limit's hook (live/delivery/daphne.py) used to hold its channel for good."""
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure

    server = daphne_server(app=None)
    with no_cycle_collection():
        protocol = server.http_factory.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        channel = weakref.ref(protocol._channel)
        # Closed, as Twisted's TCP transport closes: the protocol told, the transport letting go.
        protocol.connectionLost(Failure(ConnectionDone()))
        transport.unregisterProducer()
        transport.scoreboard_headers_due.cancel()
        del protocol, transport
        assert channel() is None


async def test_the_http_request_of_a_websocket_handshake_is_freed_without_a_full_collection():
    """Daphne leaves the upgrade's HTTP channel and request holding each other."""

    async def accept(scope, receive, send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.Event().wait()  # open until cancelled

    server = daphne_server(accept)
    with no_cycle_collection():
        protocol = server.http_factory.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER, hostAddress=IPv4Address("TCP", "127.0.0.1", 8000))
        protocol.makeConnection(transport)
        channel = weakref.ref(protocol._channel)
        protocol.dataReceived(UPGRADE)
        async with asyncio.timeout(5):
            while b"101 Switching Protocols" not in transport.value():
                await asyncio.sleep(0.01)
        del protocol
        server.application_checker()  # what Daphne runs every second: forgets the HTTP request
        try:
            assert channel() is None
        finally:
            for details in server.connections.values():
                details["application_instance"].cancel()
