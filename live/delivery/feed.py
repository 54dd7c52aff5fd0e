"""One board's spectators in this process, and the one owner of which version each holds.

The relay hands every update of the board to its feed, once. The feed passes each version
on in order, exactly once per spectator, never older than what a spectator already holds:

- a version that arrives before its predecessor (two writers committing almost at once)
  is held for `settings.LIVE_REORDER_HOLD` seconds; if the gap is still open then, the
  missing versions are read from the database (their change records), once per board;
- a joining spectator gets the board's current snapshot, then the updates newer than it
  that arrived meanwhile; the snapshot is read once and reused while no newer update
  passed, however many spectators join or ask for a resync at the same moment.

The feed also carries the board's count of watchers (live/delivery/presence.py): in every
snapshot it sends, and as a `watching` frame to all its spectators when the count changes.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from django.conf import settings

from live.delivery import metrics
from live.delivery.frames import Frame, stale_frame, watching_frame, with_watching
from live.delivery.protocol import CLOSE_BOARD_NOT_FOUND, CLOSE_FORBIDDEN
from live.scores.selectors import is_visible

logger = logging.getLogger(__name__)


class Socket(Protocol):
    """A socket that takes a message framed once for all (live/delivery/daphne.py)."""

    open: bool

    def prepare(self, text: str) -> object: ...

    def send(self, prepared: object) -> None: ...


class Spectator(Protocol):
    """What a feed needs of a spectator: a per-board socket (live/delivery/consumers.py), an
    event stream (events.py) or one board's subscription on /ws/ (subscriptions.py).

    A spectator may also have `async board_renamed(slug)`, awaited before the first frame
    that carries the board's new slug.
    """

    may_view_private: bool
    socket: Socket | None  # None under a server without the seam: send_frame() is used

    async def send_frame(self, text: str) -> None: ...

    async def close_with(self, code: int) -> None: ...


class Reads(Protocol):
    """The feed's database reads (live/delivery/reads.py)."""

    read_snapshot: Callable[[int], Awaitable[Frame]]
    read_updates: Callable[[int, int], Awaitable[list[Frame] | None]]


class BoardGone(Exception):
    """The board was deleted."""


class BoardFeed:
    def __init__(self, board_id: int, reads: Reads) -> None:
        self.board_id = board_id
        self.reads = reads
        # As of the newest frame: unknown (and so asked of the database) until one is seen.
        self.slug = ""
        self.public = False
        # The newest version passed on. Spectators in step hold exactly it; a spectator whose
        # snapshot is newer waits, ahead, for the feed to reach its version.
        self.version = 0
        self.in_step: set[Spectator] = set()
        self.ahead: dict[Spectator, int] = {}
        # Spectators whose snapshot is being read, with the updates that arrived meanwhile.
        self.joining: dict[Spectator, list[Frame]] = {}
        self.early: dict[int, Frame] = {}
        self._snapshot: Frame | None = None
        self._snapshot_read: asyncio.Task | None = None
        self._read_from = 0
        self._catching_up: asyncio.Task | None = None
        self._gap_timer: asyncio.TimerHandle | None = None
        # The board's watchers in every process, as last counted (set by presence.py), and the
        # frames carrying that count: made once per count (and snapshot), not per spectator.
        self.watching = 0
        self.watching_sent_at = 0.0  # monotonic: when presence.py last sent it
        self._counted: tuple[Frame, int, Frame] | None = None  # (snapshot, count, with count)
        self._watching_frame: tuple[str, int, Frame] | None = None  # (slug, count, frame)

    def __len__(self) -> int:
        return len(self.in_step) + len(self.ahead) + len(self.joining)

    def spectators(self) -> list[Spectator]:
        return [*self.in_step, *self.ahead, *self.joining]

    # Spectators come and go.

    async def send_snapshot(self, spectator: Spectator, *, fresh: bool = False) -> None:
        """Send the spectator the board's current snapshot, then every newer update, in order."""
        self.leave(spectator)
        self.joining[spectator] = []
        try:
            snapshot = await self.snapshot(fresh=fresh)
        except BoardGone:
            await self.board_removed()
            return
        if spectator not in self.joining:
            return  # left meanwhile
        waiting = self.joining.pop(spectator)
        if not self._may_see(spectator, snapshot):
            await spectator.close_with(CLOSE_FORBIDDEN)
            return
        await write(spectator, self.counted(snapshot))
        holds = snapshot.version
        for frame in waiting:
            if frame.version > holds:
                holds = frame.version
                await write(spectator, frame)
        self._place(spectator, holds)
        metrics.SPECTATORS.labels(self.board_id).set(len(self))

    def _place(self, spectator: Spectator, holds: int) -> None:
        # Its snapshot read started at the feed's version or later: it is never behind it.
        if holds <= self.version:
            self.in_step.add(spectator)
            return
        self.ahead[spectator] = holds
        if not self.in_step and not self.joining:
            # Nobody relies on the feed's version yet: start it at the oldest snapshot out.
            self.version = min(self.ahead.values())
            for other in [other for other, version in self.ahead.items() if version <= self.version]:
                del self.ahead[other]
                self.in_step.add(other)

    def leave(self, spectator: Spectator) -> None:
        self.in_step.discard(spectator)
        self.ahead.pop(spectator, None)
        self.joining.pop(spectator, None)
        metrics.SPECTATORS.labels(self.board_id).set(len(self))

    async def private_access_lost(self, spectator: Spectator) -> None:
        """The spectator may no longer view private boards (its `may_view_private` is False
        now): its subscription ends if this board is private; a public one continues."""
        if self.public or spectator in self.joining:
            return  # a snapshot being read is checked against may_view_private when it arrives
        if spectator in self.in_step or spectator in self.ahead:
            self.leave(spectator)
            await spectator.close_with(CLOSE_FORBIDDEN)

    async def snapshot(self, *, fresh: bool = False) -> Frame:
        """The board's current snapshot: one database read however many ask at once."""
        cached = self._snapshot
        if not fresh and cached is not None and cached.version >= self.version:
            return cached
        # A read started before an update passed here may miss it: share only a newer one.
        if self._snapshot_read is None or self._snapshot_read.done() or self._read_from < self.version:
            self._read_from = self.version
            self._snapshot_read = asyncio.ensure_future(self._read_snapshot())
        snapshot = await asyncio.shield(self._snapshot_read)
        if snapshot is None:
            raise BoardGone
        return snapshot

    async def _read_snapshot(self) -> Frame | None:
        snapshot = await self.reads.read_snapshot(self.board_id)
        # Cached by the read itself, not by its readers: on a busy loop they resume long after
        # it is done, and a spectator joining in between must find the cache, not read again.
        if snapshot is not None and snapshot.version >= self.version:
            self._snapshot = snapshot
            await self._learn(snapshot)
        return snapshot

    # Updates pass through.

    async def deliver(self, frame: Frame) -> bool:
        """Pass one update on (True); a redelivered or older version is dropped here."""
        if frame.version <= self.version:
            return False
        if self.version and frame.version > self.version + 1:
            self.early[frame.version] = frame
            self._arm_gap_timer()
            return False
        await self._pass_on(frame)
        while self.version + 1 in self.early:
            await self._pass_on(self.early.pop(self.version + 1))
        if not self.early and self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None
        return True

    async def _pass_on(self, frame: Frame) -> None:
        self.version = frame.version
        await self._learn(frame)
        for waiting in self.joining.values():
            waiting.append(frame)
        # Spectators whose snapshot holds this version are in step from the next one; those
        # whose snapshot is older (joined before the feed knew its version) need it too.
        caught_up = [spectator for spectator, holds in self.ahead.items() if holds <= frame.version]
        for spectator in caught_up:
            if self.ahead.pop(spectator) < frame.version:
                self.in_step.add(spectator)
        outsiders = [] if frame.public else [s for s in self.in_step if not self._may_see(s, frame)]
        for spectator in outsiders:  # the board was made private while they watched
            self.leave(spectator)
            await spectator.close_with(CLOSE_FORBIDDEN)
        await self._write_all(tuple(self.in_step), frame, kind="update")
        self.in_step.update(caught_up)

    async def _write_all(self, spectators: tuple[Spectator, ...], frame: Frame, *, kind: str) -> None:
        """The same frame to many spectators, framed once where the server allows it."""
        direct = asgi = 0
        for spectator in spectators:
            try:
                socket = spectator.socket
                if socket is None:
                    await spectator.send_frame(frame.text)
                    asgi += 1
                elif socket.open:
                    socket.send(frame.prepared_for(socket))
                    direct += 1
                # else closing (or closed for not reading): the frame would go nowhere
            except Exception:
                logger.exception("could not deliver to a spectator of board=%s", self.board_id)
        metrics.FRAMES.labels(kind, "direct").inc(direct)
        metrics.FRAMES.labels(kind, "asgi").inc(asgi)

    async def _learn(self, frame: Frame) -> None:
        """The board's slug and visibility as of its newest frame (Relay.find_board); a new
        slug is told to the spectators who want to know before any frame carries it."""
        if not frame.slug:
            return
        renamed = self.slug and frame.slug != self.slug
        self.slug, self.public = frame.slug, frame.public
        if renamed:
            for spectator in self.spectators():
                told = getattr(spectator, "board_renamed", None)
                if told is not None:
                    await told(frame.slug)

    @staticmethod
    def _may_see(spectator: Spectator, frame: Frame) -> bool:
        return is_visible(public=frame.public, may_view_private=spectator.may_view_private)

    def _arm_gap_timer(self) -> None:
        if self._gap_timer is None:
            loop = asyncio.get_running_loop()
            self._gap_timer = loop.call_later(settings.LIVE_REORDER_HOLD, self._gap_timeout)

    def _gap_timeout(self) -> None:
        self._gap_timer = None
        if self.early:
            self.start_catch_up()

    # Catching up with the database.

    def start_catch_up(self) -> asyncio.Task:
        """Read the versions this feed missed from the database (one read at a time)."""
        if self._catching_up is None or self._catching_up.done():
            self._catching_up = asyncio.ensure_future(self.catch_up())
        return self._catching_up

    async def catch_up(self) -> None:
        try:
            frames = await self.reads.read_updates(self.board_id, self.version)
        except BoardGone:
            await self.board_removed()
            return
        except Exception:
            logger.exception("could not read missed updates of board=%s", self.board_id)
            return
        if frames is None:  # too many, or older than the change records: start afresh
            logger.warning("board=%s: resyncing %d spectators from a snapshot", self.board_id, len(self))
            await self.resync_all(reason="catch_up")
            return
        for frame in frames:
            await self.deliver(frame)
        if frames:
            metrics.CATCH_UPS.inc()
            logger.info("board=%s caught up to version %d from the database", self.board_id, self.version)

    async def resync_all(self, *, reason: str, everyone: bool = False) -> None:
        """Send a fresh snapshot to every spectator behind it (`everyone`: to all)."""
        try:
            snapshot = await self.snapshot(fresh=True)
        except BoardGone:
            await self.board_removed()
            return
        self.version = max(self.version, snapshot.version)
        self.early = {v: f for v, f in self.early.items() if v > self.version}
        synced = [
            *self.in_step,
            *(s for s, holds in self.ahead.items() if everyone or holds < snapshot.version),
        ]
        for spectator in synced:
            self.leave(spectator)
            if not self._may_see(spectator, snapshot):
                await spectator.close_with(CLOSE_FORBIDDEN)
                continue
            self._place(spectator, snapshot.version)
            try:
                await write(spectator, self.counted(snapshot))
            except Exception:
                logger.exception("could not resync a spectator of board=%s", self.board_id)
        metrics.RESYNCS.labels(reason).inc(len(synced))

    # Who is watching.

    def counted(self, snapshot: Frame) -> Frame:
        """The snapshot with the board's current count: one copy per snapshot and count."""
        cached = self._counted
        if cached is None or cached[0] is not snapshot or cached[1] != self.watching:
            cached = self._counted = (snapshot, self.watching, with_watching(snapshot, self.watching))
        return cached[2]

    def watching_frame(self) -> Frame:
        """The board's current `watching` frame."""
        cached = self._watching_frame
        if cached is None or cached[:2] != (self.slug, self.watching):
            frame = watching_frame(slug=self.slug, count=self.watching)
            cached = self._watching_frame = (self.slug, self.watching, frame)
        return cached[2]

    async def announce_watching(self, count: int) -> None:
        """The board's count changed: one frame, framed once, to every spectator with a snapshot
        (those still joining get the count in their snapshot)."""
        self.watching = count
        await self._write_all((*self.in_step, *self.ahead), self.watching_frame(), kind="watching")

    # The board or the broker changed state.

    async def board_removed(self) -> None:
        for spectator in self.spectators():
            self.leave(spectator)
            await spectator.close_with(CLOSE_BOARD_NOT_FOUND)

    async def stale(self) -> None:
        stale = stale_frame(self.slug)
        for spectator in [*self.in_step, *self.ahead]:
            try:
                await spectator.send_frame(stale)
            except Exception:
                logger.exception("could not tell a spectator of board=%s it is stale", self.board_id)

    def stop(self) -> None:
        metrics.SPECTATORS.remove(str(self.board_id))
        if self._gap_timer is not None:
            self._gap_timer.cancel()
        for task in (self._snapshot_read, self._catching_up):
            if task is not None:
                task.cancel()


async def write(spectator: Spectator, frame: Frame) -> None:
    """One frame to one spectator: framed once for all where the server allows it."""
    socket = spectator.socket
    if socket is None:
        await spectator.send_frame(frame.text)
        path = "asgi"
    elif socket.open:
        socket.send(frame.prepared_for(socket))
        path = "direct"
    else:
        return  # closing (or closed for not reading): the frame would go nowhere
    metrics.FRAMES.labels("snapshot" if frame.snapshot else "update", path).inc()
