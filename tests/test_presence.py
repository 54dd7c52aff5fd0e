"""Who is watching: counts in snapshots and `watching` frames, at most one per board and second."""

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack, suppress

import pytest
import websockets

from harness.servers import DaphneProcess, free_port, origin_of
from live.delivery import feed as feed_module
from live.delivery import reads
from live.delivery.presence import EXPIRY, WATCHING_FRAMES_PER_SECOND, Presence, RedisTally
from live.delivery.relay import get_relay
from live.models import Board
from tests.conftest import TIMEOUT, in_thread, receive, spectate


def watching(count: int, slug: str = "finals") -> dict:
    return {"type": "watching", "slug": slug, "count": count}


async def join(stack: AsyncExitStack, slug: str, count: int) -> list:
    """`count` spectators of the board, each past its snapshot."""
    crowd = [await stack.enter_async_context(spectate(slug)) for _ in range(count)]
    for ws in crowd:
        assert (await receive(ws))["type"] == "snapshot"
    return crowd


async def tally() -> None:
    """One count of who is watching, now (the unit-test settings never count by themselves)."""
    await get_relay().presence.count()


@pytest.mark.django_db(transaction=True)
async def test_a_snapshot_carries_the_count_of_the_last_tally_and_the_first_spectator_counts_itself(players):
    async with spectate("finals") as first:
        assert (await receive(first))["watching"] == 1
        async with spectate("finals") as second:
            assert (await receive(second))["watching"] == 1  # joined since the last tally
            await tally()
            for ws in (first, second):
                assert await receive(ws) == watching(2)
            async with spectate("finals") as third:
                assert (await receive(third))["watching"] == 2


@pytest.mark.django_db(transaction=True)
async def test_many_joins_and_leaves_make_one_watching_frame_per_board_and_tally(players):
    other = await in_thread(Board.objects.create, name="Other", slug="other")
    async with AsyncExitStack() as stack:
        finals = await join(stack, "finals", 20)
        others = await join(stack, "other", 5)
        await tally()
        for ws in finals:
            assert await receive(ws) == watching(20)
        for ws in others:
            assert await receive(ws) == watching(5, other.slug)
        async with AsyncExitStack() as leaving:
            await join(leaving, "finals", 10)
        finals += await join(stack, "finals", 3)
        await tally()
        for ws in finals:
            assert await receive(ws) == watching(23)
        await tally()  # nothing changed: nothing sent
        for ws in finals + others:
            assert await ws.receive_nothing(timeout=0.05)


@pytest.mark.django_db(transaction=True)
async def test_a_new_count_costs_no_snapshot_read_and_one_copy_for_all_who_join(players, monkeypatch):
    """The snapshot cache stays shared: one copy of the text per count, not per spectator."""
    snapshot_reads, copies = [], []
    read_snapshot, with_watching = reads.read_snapshot, feed_module.with_watching
    monkeypatch.setattr(
        reads, "read_snapshot", lambda board: snapshot_reads.append(board) or read_snapshot(board)
    )
    monkeypatch.setattr(
        feed_module, "with_watching", lambda frame, n: copies.append(n) or with_watching(frame, n)
    )
    async with AsyncExitStack() as stack:
        crowd = await join(stack, "finals", 10)
        await tally()
        for ws in crowd:
            assert await receive(ws) == watching(10)
        snapshot_reads.clear(), copies.clear()
        await join(stack, "finals", 5)
        await crowd[0].send_json_to({"type": "resync"})
        assert (await receive(crowd[0]))["watching"] == 10
    assert (snapshot_reads, copies) == ([], [10])


@pytest.mark.django_db(transaction=True)
async def test_the_relay_counts_once_a_second_whatever_the_joins(players, settings):
    """Spectators join every 0.1 s for 2.5 s: each gets a watching frame at most once a second."""
    settings.LIVE_PRESENCE_EVERY = 1.0
    received: dict[object, list[tuple[float, int]]] = {}
    changed = asyncio.Condition()

    async def listen(ws) -> None:
        while True:
            frame = await ws.receive_json_from(timeout=30)
            async with changed:
                received[ws].append((time.monotonic(), frame["count"]))
                changed.notify_all()

    async with AsyncExitStack() as stack:
        listeners = []
        for _ in range(25):
            (ws,) = await join(stack, "finals", 1)
            received[ws] = []
            listeners.append(asyncio.create_task(listen(ws)))
            await asyncio.sleep(0.1)  # the pace of arrivals, not synchronisation
        # The next tally counts all 25: wait for it to reach everyone.
        async with asyncio.timeout(2.5), changed:
            await changed.wait_for(lambda: all(f and f[-1][1] == 25 for f in received.values()))
        for task in listeners:
            task.cancel()
    gaps = [b[0] - a[0] for frames in received.values() for a, b in zip(frames, frames[1:], strict=False)]
    assert max(len(frames) for frames in received.values()) <= 4
    assert min(gaps) >= 0.9, "one tally a second"


# The tally through Redis, in this process: several presences stand for several processes.


class FakeFeed:
    watching_sent_at = 0.0

    def __init__(self, board_id: int, spectators: int) -> None:
        self.board_id, self.spectators, self.watching = board_id, spectators, 0

    def __len__(self) -> int:
        return self.spectators

    async def announce_watching(self, count: int) -> None:
        self.watching = count


def process(counts: dict[int, int]) -> Presence:
    return Presence({board_id: FakeFeed(board_id, n) for board_id, n in counts.items()})


@pytest.mark.redis
async def test_counts_are_summed_over_every_live_process_in_redis(redis_url):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    host = {"address": redis_url}
    a, b = process({1: 3}), process({1: 2, 2: 1})
    crowd = [process({1: 1}) for _ in range(30)]  # tens of processes
    tallies = {p: RedisTally(host=host, prefix=prefix) for p in [a, b, *crowd]}
    try:
        for p in [a, b, *crowd]:
            await p.count(tallies[p])
        await a.count(tallies[a])
        assert a.feeds[1].watching == 3 + 2 + 30
        await b.count(tallies[b])
        assert (b.feeds[1].watching, b.feeds[2].watching) == (35, 1)
        for p in [b, *crowd]:
            await tallies.pop(p).withdraw()  # their last spectators left
        await a.count(tallies[a])
        assert a.feeds[1].watching == 3
    finally:
        for tally in tallies.values():
            await tally.withdraw()


async def test_without_redis_counts_are_local_and_others_kept_only_as_long_as_an_entry_lives(caplog):
    """Redis unreachable: one warning, delivery unharmed, the others' last counts for EXPIRY."""
    presence = process({1: 4})
    presence.others, presence._read_at = Counter({1: 6}), time.monotonic()
    tally = RedisTally(
        host={"address": f"redis://127.0.0.1:{free_port()}", "socket_connect_timeout": 0.5}, prefix="t"
    )
    try:
        with caplog.at_level(logging.WARNING, logger="live.delivery.presence"):
            await presence.count(tally)
            assert presence.feeds[1].watching == 10
            presence._read_at -= EXPIRY + 1
            await presence.count(tally)
            assert presence.feeds[1].watching == 4
            await presence.count(tally)
    finally:
        await tally.withdraw()
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "live.delivery.presence" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1 and "Redis unavailable" in warnings[0]


async def test_a_crowded_board_is_told_its_count_once_every_spectators_per_2000_seconds():
    """docs/PROTOCOL.md, `watching`: 6,000 spectators here get a new count at most every 3 s."""
    presence = process({1: 6000, 2: WATCHING_FRAMES_PER_SECOND})
    crowded, busy = presence.feeds[1], presence.feeds[2]
    await presence.count()
    assert (crowded.watching, busy.watching) == (6000, 2000)
    crowded.spectators, busy.spectators = 6001, 1999
    await presence.count()
    assert (crowded.watching, busy.watching) == (6000, 1999), "2,000 and fewer: every tally"
    crowded.watching_sent_at -= 2.9  # 6,001 spectators: due 3.0005 s after the last
    await presence.count()
    assert crowded.watching == 6000
    crowded.watching_sent_at -= 0.2
    await presence.count()
    assert crowded.watching == 6001


async def test_a_tally_waits_for_redis_at_most_a_second(monkeypatch):
    presence = process({1: 2})

    class FrozenRedis(RedisTally):
        async def exchange(self, counts):
            await asyncio.Event().wait()  # a Redis that never answers (SIGSTOP)

    tally = FrozenRedis(host={"address": "redis://127.0.0.1:1"}, prefix="t")
    started = time.monotonic()
    await asyncio.wait_for(presence.count(tally), TIMEOUT)
    assert time.monotonic() - started < 1.5
    assert presence.feeds[1].watching == 2
    await tally.redis.aclose()


# Real Daphne processes sharing a real Redis.

# docs/PROTOCOL.md, "Who is watching": the watchers of a killed process leave every count within.
KILLED_PROCESS_LEAVES_WITHIN = 12.0


class Watcher:
    """A `websockets` spectator of the demo board that keeps the count it was last told, and
    when each `watching` frame came."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/ws/boards/demo/"
        self.count: int | None = None
        self.frames: list[float] = []  # monotonic arrival time of each watching frame
        self.history: list[tuple[float, int]] = []  # (when, count) of snapshots and watching frames
        self.opened = 0.0
        self.changed = asyncio.Condition()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with websockets.connect(self.url, origin=origin_of(self.url), open_timeout=30) as ws:
            self.opened = time.monotonic()
            async for text in ws:
                frame = json.loads(text)
                if frame["type"] == "watching":
                    self.frames.append(time.monotonic())
                    count = frame["count"]
                elif frame["type"] == "snapshot":
                    count = frame["watching"]
                else:
                    continue
                async with self.changed:
                    self.count = count
                    self.history.append((time.monotonic(), count))
                    self.changed.notify_all()

    async def sees(self, count: int | None, timeout: float) -> None:
        """Wait until the watcher shows `count` (None: any count, once it has its snapshot)."""
        try:
            async with asyncio.timeout(timeout), self.changed:
                await self.changed.wait_for(lambda: self.count == count or count is None and self.count)
        except TimeoutError:
            raise AssertionError(
                f"{self.url}: {self.count} watching, not {count}, after {timeout}s"
            ) from None

    async def stop(self) -> None:
        self.task.cancel()
        with suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await self.task


async def watchers(stack: AsyncExitStack, server: DaphneProcess, count: int) -> list[Watcher]:
    crowd = [Watcher(server.ws_url) for _ in range(count)]
    for watcher in crowd:
        stack.push_async_callback(watcher.stop)
    for watcher in crowd:
        await watcher.sees(None, TIMEOUT)
    return crowd


async def all_see(crowd: list[Watcher], count: int, timeout: float) -> float:
    """Wait until every watcher shows `count`; the seconds it took."""
    started = time.monotonic()
    for watcher in crowd:
        await watcher.sees(count, max(0.1, timeout - (time.monotonic() - started)))
    return time.monotonic() - started


@pytest.mark.e2e
@pytest.mark.redis
async def test_counts_are_summed_across_processes_and_follow_leaves(deployment):
    a, b = await deployment(layer="pubsub").start_two_daphnes()
    async with AsyncExitStack() as stack:
        on_a = await watchers(stack, a, 3)
        async with AsyncExitStack() as leaving:
            on_b = await watchers(leaving, b, 2)
            await all_see(on_a + on_b, 5, timeout=5)
            await on_b[1].stop()
            one_left = await all_see(on_a + on_b[:1], 4, timeout=5)
        all_left = await all_see(on_a, 3, timeout=5)
    print(f"a spectator's leave seen everywhere in {one_left:.2f} s, a process's last in {all_left:.2f} s")
    assert one_left <= 3.0 and all_left <= 3.0, "the next tally of each process: about 2 s"


@pytest.mark.e2e
@pytest.mark.redis
async def test_the_watchers_of_a_killed_process_leave_every_count_within_the_documented_bound(deployment):
    a, b = await deployment(layer="pubsub").start_two_daphnes()
    async with AsyncExitStack() as stack:
        on_a = await watchers(stack, a, 2)
        on_b = await watchers(stack, b, 3)
        await all_see(on_a + on_b, 5, timeout=5)
        b.kill()  # SIGKILL: no leave, no withdrawal, only the expiry
        gone_after = await all_see(on_a, 2, timeout=KILLED_PROCESS_LEAVES_WITHIN + 5)
    print(f"the killed process's 3 watchers left the count after {gone_after:.1f} s")
    assert gone_after <= KILLED_PROCESS_LEAVES_WITHIN


@pytest.mark.e2e
@pytest.mark.redis
async def test_while_redis_is_down_counts_stay_then_turn_local_then_whole_again(deployment):
    """Delivery is not at stake (tests/test_faults.py); counts degrade as documented, logged once."""
    live = deployment(layer="pubsub")
    a, b = await live.start_two_daphnes()
    async with AsyncExitStack() as stack:
        on_a = await watchers(stack, a, 2)
        on_b = await watchers(stack, b, 3)
        await all_see(on_a + on_b, 5, timeout=5)
        await asyncio.to_thread(live.redis.stop)
        stopped = time.monotonic()
        await all_see(on_a, 2, timeout=EXPIRY + 5)
        await all_see(on_b, 3, timeout=5)
        local_after = time.monotonic() - stopped
        await asyncio.to_thread(live.restart_redis)
        whole_after = await all_see(on_a + on_b, 5, timeout=5)
    kept = min(t for w in on_a + on_b for t, count in w.history if count != 5 and t > stopped) - stopped
    print(
        f"Redis down: counts kept {kept:.1f} s, local after {local_after:.1f} s; "
        f"Redis back: whole in {whole_after:.1f} s"
    )
    assert kept >= EXPIRY - 2 and local_after <= EXPIRY + 2
    assert whole_after <= 3.0
    for daphne in (a, b):
        log = daphne.output()
        assert (
            log.count("presence: Redis unavailable") == 1 and log.count("presence: Redis answers again") == 1
        )
        assert "Traceback" not in log


@pytest.mark.e2e
@pytest.mark.redis
async def test_200_spectators_joining_get_at_most_one_watching_frame_a_second_each(deployment):
    """Presence is not quadratic: 200 joins over 4 s make a frame per tally, not per join."""
    a, b = await deployment(layer="pubsub", LIVE_CONNECTIONS_PER_ADDRESS="0").start_two_daphnes()
    async with AsyncExitStack() as stack:
        crowd = []
        started = time.monotonic()
        for i in range(200):
            crowd.append(Watcher((a, b)[i % 2].ws_url))
            stack.push_async_callback(crowd[-1].stop)
            await asyncio.sleep(0.02)  # the pace of arrivals, not synchronisation
        await all_see(crowd, 200, timeout=15)
        ended = time.monotonic()
        # Watchers leaving at the end are counted too: only the frames of the joins count.
        frames = [[t for t in w.frames if t <= ended] for w in crowd]
    rates = [len(f) / (ended - w.opened) for f, w in zip(frames, crowd, strict=True)]
    paced = [(len(f) - 1) / (f[-1] - f[0]) for f in frames if len(f) > 1]
    gaps = [later - earlier for f in frames for earlier, later in zip(f, f[1:], strict=False)]
    print(
        f"200 joins in {ended - started:.1f} s: watching frames per spectator per second, "
        f"over its connection: mean {sum(rates) / len(rates):.2f}; from its first frame to its last: "
        f"at most {max(paced):.2f}; frames per spectator at most {max(map(len, frames))}; "
        f"shortest gap between two {min(gaps):.2f} s"
    )
    for f, watcher in zip(frames, crowd, strict=True):
        assert len(f) <= (ended - watcher.opened) + 1, "at most one a second"
    assert min(gaps) >= 0.5, "a frame per tally, never a burst of joins"
