"""The burst and the stalled-spectator scenarios of the benchmark (see bench/run.py)."""

import base64
import os
import socket
import struct
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from bench.lab import Servers, collect, delivery, open_spectators, start_clients, start_writer, summary
from harness.servers import RedisServer, origin_of


class MemorySampler:
    """Samples the servers' total RSS every `period` seconds in a thread, until stopped."""

    def __init__(self, servers: Servers, period: float = 0.25) -> None:
        self.servers, self.period = servers, period
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.start = time.monotonic()
        self.thread.start()

    def run(self) -> None:
        while not self.stopped.wait(self.period):
            self.samples.append((time.monotonic() - self.start, self.servers.rss()))

    def stop(self) -> list[tuple[float, int]]:
        self.stopped.set()
        self.thread.join(timeout=5)
        return self.samples


def burst(tmp: Path, redis: RedisServer, *, layer: str, seconds: int, n: int = 1000, rate: int = 100) -> dict:
    """`rate` changes per second for `seconds` on one board with `n` spectators on one process."""
    with ExitStack() as stack:
        servers = Servers(stack, tmp, layer, 1, redis)
        writer = start_writer(stack, servers, tmp)
        clients = start_clients(stack, tmp)
        open_spectators(clients, servers.urls, n)
        sampler = MemorySampler(servers)
        cpu0, wall0 = servers.cpu(), time.monotonic()
        commits = writer.ask({"count": rate * seconds, "interval": 1 / rate})["commits"]
        result = collect(clients, commits, timeout=120)
        cpu, wall = servers.cpu() - cpu0, time.monotonic() - wall0
        samples = sampler.stop()
    versions = [v for v, _ in commits]
    row = {
        "layer": layer,
        "n": n,
        "rate_asked": rate,
        "rate_achieved": (len(commits) - 1) / (commits[-1][1] - commits[0][1]),
        "seconds": seconds,
        "changes": len(commits),
        "versions_gap_free": versions == list(range(versions[0], versions[0] + len(versions))),
        **summary(result["latencies"]),
        **delivery(result),
        "server_cpu_pct": 100 * cpu / wall,
        "max_rss_mb": max(rss for _, rss in samples) / 2**20 if samples else None,
    }
    print(
        f"burst {layer}: {row['rate_achieved']:.0f} changes/s x {seconds} s to {n}: p50 {row['p50_ms']:.0f} "
        f"p99 {row['p99_ms']:.0f} max {row['max_ms']:.0f} ms, "
        f"delivered {row['delivered']}/{row['expected']}, "
        f"order errors {row['order_errors']}, resyncs {row['resyncs']}, stale notices {row['stale_notices']}",
        flush=True,
    )
    return row


def stalled_socket(port: int, path: str) -> socket.socket:
    """A spectator that completes the handshake and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n"
        ).encode()
    )
    sock.settimeout(10)
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: not one byte of the frames after it is read
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def drain(sock: socket.socket) -> dict:
    """Read what the server left for the stalled spectator: how many frames, and its close code."""
    sock.settimeout(5)
    data = b""
    error = None
    try:
        while chunk := sock.recv(1 << 16):
            data += chunk
    except OSError as exc:  # a reset when the server dropped the connection
        error = type(exc).__name__
    frames, close_code, i = 0, None, 0
    while i + 2 <= len(data):
        opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[i : i + 2])
            i += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[i : i + 8])
            i += 8
        if i + length > len(data):
            break
        if opcode == 1:
            frames += 1
        elif opcode == 8 and length >= 2:
            (close_code,) = struct.unpack("!H", data[i : i + 2])
        i += length
    sock.close()
    return {"frames_received": frames, "close_code": close_code, "socket_error": error, "bytes": len(data)}


def slow_spectator(
    tmp: Path, redis: RedisServer, *, seconds: int, limit: int | None, n: int = 50, rate: int = 40
) -> dict:
    """One stalled spectator among `n` while a 500-player board changes entirely `rate` times a second."""
    from websockets.sync.client import connect

    extra = {} if limit is None else {"LIVE_SEND_BUFFER_LIMIT": str(limit)}
    with ExitStack() as stack:
        servers = Servers(stack, tmp, "pubsub", 1, redis, extra_env=extra, board="wide")
        writer = start_writer(stack, servers, tmp)
        clients = start_clients(stack, tmp)
        open_spectators(clients, servers.urls, n)
        daphne = servers.servers[0]
        stalled = stalled_socket(daphne.port, "/ws/boards/wide/")
        sampler = MemorySampler(servers)
        commits = writer.ask({"count": rate * seconds, "interval": 1 / rate, "players": 500})["commits"]
        result = collect(clients, commits, timeout=60)
        samples = sampler.stop()
        stalled_result = drain(stalled)
        with connect(servers.urls[0], origin=origin_of(servers.urls[0]), open_timeout=30) as websocket:
            import json

            resync_version = json.loads(websocket.recv(timeout=30))["version"]
    rss = [r for _, r in samples]
    row = {
        "send_buffer_limit": limit if limit is not None else "default",
        "n": n,
        "rate": rate,
        "seconds": seconds,
        **summary(result["latencies"]),
        **delivery(result),
        "rss_start_mb": rss[0] / 2**20,
        "rss_max_mb": max(rss) / 2**20,
        "rss_end_mb": rss[-1] / 2**20,
        "rss_series_mb": [[round(t, 1), round(r / 2**20, 1)] for t, r in samples[::4]],
        "stalled": stalled_result,
        "updates_sent": len(commits),
        "resync_version": resync_version,
        "latest_version": commits[-1][0],
    }
    print(
        f"stalled spectator, limit {row['send_buffer_limit']}: others p99 {row['p99_ms']:.0f} ms, "
        f"delivered {row['delivered']}/{row['expected']}, RSS {row['rss_start_mb']:.0f} -> max "
        f"{row['rss_max_mb']:.0f} MB; stalled one got {stalled_result['frames_received']}/{len(commits)} "
        f"frames, close {stalled_result['close_code']} {stalled_result['socket_error'] or ''}; "
        f"resync at {resync_version} (latest {commits[-1][0]})",
        flush=True,
    )
    return row


def two_writers(
    tmp: Path, redis: RedisServer, *, n: int = 1000, changes: int = 40, layer: str = "pubsub"
) -> dict:
    """Two writer processes commit at once: versions V and V+1 may be published out of order.

    Counts what the relay's reorder hold is for: resyncs (snapshots after the first) and
    out-of-order or missing frames at `n` spectators of one process.
    """
    with ExitStack() as stack:
        servers = Servers(stack, tmp, layer, 1, redis)
        writers = [start_writer(stack, servers, tmp, name=f"writer-{i}") for i in range(2)]
        clients = start_clients(stack, tmp)
        open_spectators(clients, servers.urls, n)
        relays0 = servers.fanout()
        for writer in writers:
            writer.send({"count": changes, "interval": 0.01})
        commits = sorted(c for writer in writers for c in writer.reply()["commits"])
        result = collect(clients, commits, timeout=60)
        relays = servers.fanout()
    row = {
        "layer": layer,
        "n": n,
        "writers": 2,
        "changes": len(commits),
        **summary(result["latencies"]),
        **delivery(result),
        # Gaps the relay had to read from the database, and snapshots it sent after the first.
        "relay_catch_ups": relays["catch_ups"] - relays0["catch_ups"],
        "relay_resyncs": relays["resyncs"] - relays0["resyncs"],
    }
    print(
        f"two writers, {len(commits)} changes to {n}: p99 {row['p99_ms']:.0f} ms, "
        f"delivered {row['delivered']}/{row['expected']}, order errors {row['order_errors']}, "
        f"resyncs {row['resyncs']}",
        flush=True,
    )
    return row
