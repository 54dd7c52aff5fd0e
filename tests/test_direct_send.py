"""write_now() (live/delivery/daphne.py): straight to the kernel when nothing waits, in order always."""

import socket

import pytest

from live.delivery.daphne import write_now


class Transport:
    """The parts of Twisted's TCP transport that write_now() reads, over a real socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.connected, self.disconnecting, self._writeDisconnected = True, False, False
        self._tempDataLen, self.dataBuffer, self.offset = 0, b"", 0
        self.queued: list[bytes] = []  # what Twisted would buffer and write later, in order

    def write(self, data: bytes) -> None:
        self.queued.append(bytes(data))
        self._tempDataLen += len(data)


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    server.setblocking(False)
    client.setblocking(False)
    yield server, client
    server.close()
    client.close()


def received(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_an_idle_socket_gets_the_frame_in_one_send(pair):
    server, client = pair
    transport = Transport(server)
    write_now(transport, b"frame-1")
    assert received(client) == b"frame-1" and transport.queued == []


def test_what_the_kernel_does_not_take_waits_in_twisteds_buffer_in_order(pair):
    server, client = pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport = Transport(server)
    big = bytes(range(256)) * 4096  # 1 MiB: more than the kernel takes at once
    write_now(transport, big)
    assert transport.queued and len(received(client)) + len(b"".join(transport.queued)) == len(big)
    write_now(transport, b"next")  # something waits before it: behind it, never ahead
    assert transport.queued[-1] == b"next"


def test_a_lost_connection_is_left_to_twisteds_own_write(pair):
    server, client = pair
    client.close()
    transport = Transport(server)
    write_now(transport, b"x" * 100_000)  # EPIPE or a reset: no exception here
    assert b"".join(transport.queued) != b""


def test_a_transport_without_a_plain_socket_writes_the_usual_way():
    class Tls:
        def __init__(self) -> None:
            self.written: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.written.append(data)

    transport = Tls()
    write_now(transport, b"frame")
    assert transport.written == [b"frame"]
