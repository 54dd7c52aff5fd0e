"""Full garbage collections paced by closed connections, not by a crowd's arrival.

CPython runs a full collection whenever the objects that survived its young collections
have grown by a quarter since the last one. A server process holding spectators grows by
about 80 tracked objects per connection (Twisted, autobahn, asyncio, the consumer), so
while a crowd joined it collected again and again, each time scanning every connection:
12 full collections for 10,000 connects, 0.4 s each at 5,000 open and 0.7 s at 10,000,
a third of the process's CPU while they connected (docs/BENCHMARKS.md). None of it was
garbage: the objects were the new connections.

Garbage comes from connections that end, when something of theirs is in a reference
cycle. Two such cycles were ours and are gone (live/delivery/daphne.py): each WebSocket
handshake left 29 objects behind, and each closed connection about 64. A closed WebSocket
still leaves about 35 in cycles inside Daphne, autobahn and asyncio (its protocol, transport,
timers, Deferreds, queue): without a full collection, 175,000 unreachable objects and 70 MB
more RSS after 5,000 spectators dropped and came back. So:

- `configure()` (scoreboard/asgi.py, once per server process) freezes what start-up made
  (modules, Django, settings: never garbage, never scanned again) and lets CPython start
  a full collection only after 1,000 young-generation passes instead of 10, i.e. after
  about 7 million allocations, as a safety net;
- `COLLECTOR` runs a full collection once the connections closed since the last one reach
  a quarter of those open then (at least 1,000): 1 s later, so that a crowd dropping at
  once is collected once, and at most once every 10 s. Whatever the connections that
  closed left in cycles stays below that bound (plus 10 s of closing).

A crowd that joins causes no full collection; one that drops and comes back, one.
"""

import asyncio
import gc
import logging
import time

logger = logging.getLogger(__name__)

# CPython's defaults are (700, 10, 10).
THRESHOLDS = (700, 10, 1000)


def configure() -> None:
    """Pace this process's full collections (see the module docstring); once, at start-up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


class Collector:
    """Counts connections opened and closed and runs a full collection when enough closed."""

    def __init__(
        self,
        *,
        at_least: int = 1000,
        share: float = 0.25,
        interval: float = 10.0,
        settle: float = 1.0,
        collect=gc.collect,
        clock=time.monotonic,
    ) -> None:
        self.at_least, self.share, self.interval, self.settle = at_least, share, interval, settle
        self._collect, self._clock = collect, clock
        self.open = 0
        self.closed_since = 0
        self.open_at_last = 0
        self.last: float | None = None
        self.scheduled: asyncio.TimerHandle | None = None
        self.collections = 0

    def opened(self) -> None:
        self.open += 1

    def closed(self) -> None:
        self.open -= 1
        self.closed_since += 1
        if self.scheduled is None and self.closed_since >= self.due():
            # A crowd drops within a second or so: one collection after it, not one during it.
            wait = (
                self.settle
                if self.last is None
                else max(self.settle, self.last + self.interval - self._clock())
            )
            self.scheduled = asyncio.get_running_loop().call_later(wait, self.collect)

    def due(self) -> int:
        """How many closed connections make a full collection worth its pause."""
        return max(self.at_least, int(self.share * self.open_at_last))

    def collect(self) -> None:
        started = self._clock()
        found = self._collect()
        self.last = self._clock()
        logger.info(
            "full collection after %d closed connections (%d open): %s unreachable, %.3f s",
            self.closed_since,
            self.open,
            found,
            self.last - started,
        )
        self.collections += 1
        self.scheduled = None
        self.closed_since = 0
        self.open_at_last = self.open


COLLECTOR = Collector()
