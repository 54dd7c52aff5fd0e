"""Who is watching: each board's spectators, counted across all server processes.

Once a second (`settings.LIVE_PRESENCE_EVERY`) a process counts its own spectators of each
board (its feeds' lengths), publishes these counts to Redis under a key of its own that
expires after `EXPIRY` seconds unless refreshed, and reads the other live processes'
counts. Each feed whose total changed then sends one `watching` frame to its spectators: a
board gets at most one per second (fewer above `WATCHING_FRAMES_PER_SECOND` spectators
here), however many join or leave, and a killed process's
watchers leave every count within 12 s (docs/PROTOCOL.md, "Who is watching"). With the
in-memory channel layer there is no Redis, and each process counts its own.
"""

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter
from contextlib import suppress

from channels_redis.utils import create_pool, decode_hosts
from django.conf import settings
from redis import asyncio as aioredis

from live.delivery import metrics
from live.delivery.feed import BoardFeed

logger = logging.getLogger(__name__)

# Nine missed refreshes (a saturated loop, a Redis blip) before a live process's watchers
# blink out of the count. The dead are out within EXPIRY + one period + one exchange: 12 s.
EXPIRY = 10
# The longest a tally waits for Redis: a frozen Redis never stacks tallies.
EXCHANGE_TIMEOUT = 1.0
# A `watching` frame is one write per spectator of the board here: a board with more
# spectators than this in the process gets one every spectators / this seconds, not every
# second (docs/PROTOCOL.md). A crowd joining a board of 10,000 spent a fifth of the
# process's time on these frames.
WATCHING_FRAMES_PER_SECOND = 2000


class RedisTally:
    """This process's counts in Redis, and the sum of every other live process's.

    Each process writes a hash of its own (board id -> spectators) with an expiry, and
    indexes it in a sorted set scored by when it expires. The hashes' own expiry is what
    counts: an index entry outliving its hash reads as nothing, and is pruned later. One
    round trip writes and lists, one reads all the hashes: for P processes and B boards,
    Redis reads P × B fields per process and second, tens of thousands at tens of processes.
    """

    def __init__(self, *, host: dict, prefix: str) -> None:
        self.redis = aioredis.Redis.from_pool(create_pool(host))
        self.index = f"{prefix}:presence"
        # One entry per run: a run ending late never withdraws its successor's counts.
        self.key = f"{self.index}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def exchange(self, counts: dict[int, int]) -> Counter:
        """Publish this process's counts; the other processes' totals per board."""
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key)
            if counts:
                pipe.hset(self.key, mapping=counts)
                pipe.expire(self.key, EXPIRY)
                pipe.zadd(self.index, {self.key: now + EXPIRY})
            # Hosts' clocks may differ: an index entry goes only long after its hash expired.
            pipe.zremrangebyscore(self.index, "-inf", now - EXPIRY)
            pipe.zrange(self.index, 0, -1)
            *_, keys = await pipe.execute()
        others = [key for key in keys if key.decode() != self.key]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in others:
                pipe.hgetall(key)
            hashes = await pipe.execute() if others else []
        totals: Counter = Counter()
        for entries in hashes:
            for board, count in entries.items():
                try:
                    totals[int(board)] += int(count)
                except ValueError:
                    continue  # not ours: nothing to add
        return totals

    async def withdraw(self) -> None:
        """This process watches nothing any more: out of every count at the others' next tally."""
        try:
            async with asyncio.timeout(EXCHANGE_TIMEOUT):
                async with self.redis.pipeline(transaction=True) as pipe:
                    await pipe.delete(self.key).zrem(self.index, self.key).execute()
        except Exception as exc:  # noqa: BLE001 - the entry expires by itself
            logger.info("presence: could not withdraw %s (%s); it expires by itself", self.key, exc)
        finally:
            await self.redis.aclose()


def redis_tally() -> RedisTally | None:
    """A tally on the channel layer's Redis (its first host, options and prefix), or None
    when the layer has no Redis (in-memory: each process counts its own)."""
    layer = settings.CHANNEL_LAYERS["default"]
    if not layer["BACKEND"].startswith("channels_redis."):
        return None
    config = layer.get("CONFIG", {})
    return RedisTally(host=decode_hosts(config.get("hosts"))[0], prefix=config.get("prefix", "asgi"))


def due(feed: BoardFeed, here: int, now: float) -> bool:
    """May this feed's `here` spectators get a changed count now? Each tally up to
    WATCHING_FRAMES_PER_SECOND of them; more, once every here / that many seconds."""
    return (
        here <= WATCHING_FRAMES_PER_SECOND or now - feed.watching_sent_at >= here / WATCHING_FRAMES_PER_SECOND
    )


class Presence:
    """Counts the spectators of this process's feeds, and tells each feed its board's total."""

    def __init__(self, feeds: dict[int, BoardFeed]) -> None:
        self.feeds = feeds
        # The other processes' totals per board, as last read, and when (monotonic).
        self.others: Counter = Counter()
        self._read_at = 0.0
        self._failing = False
        self._gauged: set[int] = set()

    def seed(self, feed: BoardFeed) -> None:
        """A board's first spectator here: its count until the next tally (it counts itself)."""
        feed.watching = self.others[feed.board_id] + 1

    async def run(self) -> None:
        """Tally every second until cancelled (the relay stops), then withdraw our counts."""
        tally = redis_tally()
        try:
            while True:
                await asyncio.sleep(settings.LIVE_PRESENCE_EVERY)  # a period, not synchronisation
                await self.count(tally)
        finally:
            self._ungauge(self._gauged)
            self._gauged = set()
            if tally is not None:
                await tally.withdraw()

    async def count(self, tally: RedisTally | None = None) -> None:
        """One tally: publish and read the counts, then announce each changed total."""
        local = {board_id: len(feed) for board_id, feed in self.feeds.items() if len(feed)}
        others = self.others if tally is None else await self._exchange(tally, local)
        now = time.monotonic()
        for board_id, here in local.items():
            feed = self.feeds.get(board_id)
            if feed is None:
                continue  # left during the exchange
            total = here + others[board_id]
            metrics.WATCHING.labels(board_id).set(total)
            if total != feed.watching and due(feed, here, now):
                feed.watching_sent_at = now
                await feed.announce_watching(total)
        self._ungauge(self._gauged - local.keys())
        self._gauged = set(local)

    @staticmethod
    def _ungauge(board_ids) -> None:
        for board_id in board_ids:
            with suppress(KeyError):  # a label never set is no error
                metrics.WATCHING.remove(str(board_id))

    async def _exchange(self, tally: RedisTally, local: dict[int, int]) -> Counter:
        """The other processes' totals; while Redis fails, as last read (for up to EXPIRY)."""
        try:
            async with asyncio.timeout(EXCHANGE_TIMEOUT):
                others = await tally.exchange(local)
        except Exception as exc:  # noqa: BLE001 - counts must never break delivery
            if not self._failing:
                self._failing = True
                logger.warning(
                    "presence: Redis unavailable (%s); other processes' watchers counted as last read",
                    f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                )
            if time.monotonic() - self._read_at > EXPIRY:
                self.others = Counter()  # as old as an expired entry: count only our own
            return self.others
        if self._failing:
            self._failing = False
            logger.warning("presence: Redis answers again; counting every process's watchers")
        self.others, self._read_at = others, time.monotonic()
        return others
