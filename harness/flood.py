"""Many raw WebSocket spectators, each sending frames at a steady rate: a load for one server.

    python -m harness.flood --url ws://127.0.0.1:8000/ws/boards/demo/ --sockets 1000 \\
        --rate 9 --seconds 10 --addresses 127.0.0.10-29 [--frame '{"type": "resync"}']

Opens the sockets from the given loopback addresses in turn (one address may hold only
LIVE_CONNECTIONS_PER_ADDRESS), prints `ready` once every handshake is done, sends the frame
on every socket `rate` times a second for `seconds` (a late tick is skipped, never caught up
in a burst, so no socket passes the server's flood limit), reads and discards whatever comes
back, then prints one JSON line of counts. Frames are built once and sent with a zero mask,
so one process can drive thousands of sockets. Loopback targets only.
"""

import argparse
import ipaddress
import json
import selectors
import socket
import sys
import time
from urllib.parse import urlsplit

BATCH = 40  # handshakes in flight at once: within Daphne's listen backlog (50)
TIMEOUT = 10.0


def text_frame(payload: bytes) -> bytes:
    """A masked client text frame (a zero mask key is valid and leaves the payload as is)."""
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def loopback_range(spec: str) -> list[str]:
    """'127.0.0.10-29' -> ['127.0.0.10', ..., '127.0.0.29']; every one must be loopback."""
    first, _, last = spec.partition("-")
    start = ipaddress.ip_address(first)
    count = int(last) - int(first.rsplit(".", 1)[1]) + 1 if last else 1
    addresses = [start + i for i in range(count)]
    if not all(address.is_loopback for address in addresses):
        raise SystemExit("loopback addresses only")
    return [str(address) for address in addresses]


def open_sockets(url: str, count: int, addresses: list[str]) -> list[socket.socket]:
    parts = urlsplit(url)
    if not ipaddress.ip_address(parts.hostname).is_loopback:
        raise SystemExit("loopback targets only")
    origin = f"http://{parts.netloc}"
    request = (
        f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nOrigin: {origin}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ).encode()
    opened: list[socket.socket] = []
    for start in range(0, count, BATCH):
        batch = []
        for number in range(start, min(count, start + BATCH)):
            source = (addresses[number % len(addresses)], 0)
            sock = socket.create_connection(
                (parts.hostname, parts.port), timeout=TIMEOUT, source_address=source
            )
            sock.sendall(request)
            batch.append(sock)
        for sock in batch:
            response = b""
            while b"\r\n\r\n" not in response:
                chunk = sock.recv(4096)
                if not chunk:
                    raise SystemExit(f"handshake {len(opened)} closed by the server")
                response += chunk
            if not response.startswith(b"HTTP/1.1 101"):
                raise SystemExit(f"handshake {len(opened)} refused: {response.splitlines()[0]!r}")
            sock.setblocking(False)
            opened.append(sock)
    return opened


def flood(sockets: list[socket.socket], frame: bytes, rate: float, seconds: float) -> dict:
    selector = selectors.DefaultSelector()
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    alive = set(sockets)
    sent = skipped = received = ticks = 0
    started = time.monotonic()
    next_tick = started
    while (now := time.monotonic()) < started + seconds:
        if now >= next_tick:
            ticks += 1
            for sock in list(alive):
                try:
                    sock.send(frame)
                    sent += 1
                except BlockingIOError:
                    skipped += 1
                except OSError:
                    alive.discard(sock)
            next_tick = max(next_tick + 1 / rate, time.monotonic())
        for key, _ in selector.select(timeout=max(0.0, next_tick - time.monotonic())):
            try:
                data = key.fileobj.recv(1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                selector.unregister(key.fileobj)
                alive.discard(key.fileobj)
            received += len(data)
    elapsed = time.monotonic() - started
    return {
        "sockets": len(sockets),
        "still_open": len(alive),
        "frames_sent": sent,
        "frames_per_second": round(sent / elapsed),
        "per_socket_per_second": round(sent / elapsed / max(1, len(sockets)), 2),
        "sends_skipped": skipped,
        "bytes_received": received,
        "seconds": round(elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=9.0, help="frames per socket per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--addresses", default="127.0.0.1")
    parser.add_argument("--frame", default='{"type": "resync"}')
    args = parser.parse_args()
    sockets = open_sockets(args.url, args.sockets, loopback_range(args.addresses))
    print("ready", flush=True)
    result = flood(sockets, text_frame(args.frame.encode()), args.rate, args.seconds)
    for sock in sockets:
        sock.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
