"""Process-local fan-out: one channel-layer group member per board and server process.

Spectator consumers do not join the channel layer themselves. The relay of their process
adds one channel to the group of each board watched here, receives each update once, and
hands it to that board's feed (live/delivery/feed.py), which writes the pre-encoded frame
to every local spectator. Redis (or the in-memory layer) carries messages between
processes; the relay carries them to sockets. Two watchers keep it honest: the broker
heartbeat (heartbeat.py) and the comparison with the database (freshness.py). Its presence
(presence.py) counts who is watching.

The relay also joins one group per logged-in user with sockets here, once, and hands what
arrives there to its `Members` (live/delivery/members.py): messages to one member, and
access to private boards that ended.
"""

import asyncio
import logging
import time
import weakref
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from live.delivery import metrics, reads
from live.delivery.feed import BoardFeed, Spectator
from live.delivery.frames import Frame, stale_frame
from live.delivery.freshness import FreshnessCheck
from live.delivery.heartbeat import HEARTBEAT, BrokerHeartbeat
from live.delivery.members import Members, MemberSocket
from live.delivery.presence import Presence
from live.delivery.publish import ACCESS, MEMBER, REMOVED, UPDATE
from live.models import Board, member_group_name

logger = logging.getLogger(__name__)


class Relay:
    """Relays the updates of the boards watched in this process, each to its feed."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.feeds: dict[int, BoardFeed] = {}
        self.heartbeat = BrokerHeartbeat(
            layer, on_lost=self._broker_lost, on_recovered=self._broker_back, rejoin=self._rejoin
        )
        self.freshness = FreshnessCheck(self.feeds, reads.read_versions)
        self.members = Members(reads, end_private=self._end_private)
        self.presence = Presence(self.feeds)
        self._membership = asyncio.Lock()
        self._anonymous_lookups: dict[str, asyncio.Future] = {}
        self._tasks: list[asyncio.Task] = []

    @property
    def live(self) -> bool:
        return self.heartbeat.live

    async def find_board(self, *, slug: str, user, session_key: str | None = None) -> tuple[int, bool]:
        """(board id, may the user view private boards) or BoardUnavailable.

        An anonymous spectator of a public board already watched here needs no database: the
        feed knows the board's slug and whether it is public as of its newest version. A
        member socket passes its `session_key` (after join_member()): its session is read
        again, so that no access change slips between its handshake and its membership.
        """
        if user is not None and user.is_authenticated:
            return await reads.find_board(slug=slug, user=user, session_key=session_key)
        feed = next((f for f in self.feeds.values() if f.slug == slug), None)
        if feed is not None and feed.public:
            return feed.board_id, False
        # Until its feed knows the board, anonymous spectators arriving together (a reconnect
        # storm) share one lookup: every answer, a refusal too, is the same for all of them.
        lookup = self._anonymous_lookups.get(slug)
        if lookup is None:
            lookup = asyncio.ensure_future(reads.find_board(slug=slug, user=user))
            self._anonymous_lookups[slug] = lookup
            lookup.add_done_callback(lambda _: self._anonymous_lookups.pop(slug, None))
            lookup.add_done_callback(_retrieved)  # all who asked may have left meanwhile
        return await asyncio.shield(lookup)

    async def watch(self, board_id: int, spectator: Spectator) -> None:
        """Route the board's updates here, then send the spectator its snapshot and updates."""
        async with self._membership:
            if board_id not in self.feeds:
                await self._join(Board.group_name_for(board_id))
                self.feeds[board_id] = BoardFeed(board_id, reads)
                self.presence.seed(self.feeds[board_id])
        feed = self.feeds[board_id]
        await feed.send_snapshot(spectator)
        if not self.live:
            await spectator.send_frame(stale_frame(feed.slug))

    async def resync(self, board_id: int, spectator: Spectator) -> None:
        """A spectator asked for a snapshot: the current one, read once per board and moment."""
        feed = self.feeds.get(board_id)
        if feed is not None:
            metrics.RESYNCS.labels("client").inc()
            await feed.send_snapshot(spectator)

    async def leave(self, board_id: int, spectator: Spectator) -> None:
        async with self._membership:
            feed = self.feeds.get(board_id)
            if feed is None:
                return
            feed.leave(spectator)
            if len(feed):
                return
            feed.stop()
            del self.feeds[board_id]
            await self._discard(Board.group_name_for(board_id))

    # Members: the sockets of logged-in users (live/delivery/members.py).

    async def join_member(self, socket: MemberSocket) -> None:
        """Reach a logged-in user's socket: the user's first socket here joins the user's group.

        Call it before reading the socket's access, so that no access event is missed between.
        """
        async with self._membership:
            if socket.user_id not in self.members:
                await self._join(member_group_name(socket.user_id))
            self.members.add(socket)

    async def leave_member(self, socket: MemberSocket) -> None:
        async with self._membership:
            if self.members.discard(socket):
                await self._discard(member_group_name(socket.user_id))

    async def _end_private(self, board_id: int, spectator: Spectator) -> None:
        feed = self.feeds.get(board_id)
        if feed is not None:
            await feed.private_access_lost(spectator)

    # Group membership: the relay runs while it serves any feed or member.

    @property
    def idle(self) -> bool:
        return not self.feeds and not len(self.members)

    async def _join(self, group: str) -> None:
        try:
            await self._start()
            await self.layer.group_add(group, self.channel)
        except BaseException:
            if self.idle:
                self._stop()  # nobody to serve: the next join starts afresh
            raise

    async def _discard(self, group: str) -> None:
        groups = [group, self.heartbeat.group] if self.idle else [group]
        for name in groups:
            try:
                await self.layer.group_discard(name, self.channel)
            except Exception as exc:  # noqa: BLE001 - the membership expires by itself
                logger.warning("relay could not leave group %s: %s", name, exc)
        if self.idle:
            self._stop()

    async def _start(self) -> None:
        if self.channel is not None:
            return
        self.channel = await self.layer.new_channel()
        self.heartbeat.live = True
        metrics.BROKER_UP.set(1)
        self._tasks = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self.heartbeat.run()),
            asyncio.create_task(self.freshness.run()),
            asyncio.create_task(self._refresh_groups()),
            asyncio.create_task(self.presence.run()),
        ]
        await self.layer.group_add(self.heartbeat.group, self.channel)

    def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        self.channel = None

    async def _listen(self) -> None:
        channel = self.channel
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the broker went away; the heartbeat recovers
                await self.heartbeat.lost(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.25)  # retry back-off, not synchronisation
                continue
            self.heartbeat.received += 1
            if message.get("type") == HEARTBEAT:
                self.heartbeat.heard(message)
                continue
            self.heartbeat.dispatching = True
            try:
                await self.dispatch(message)
            finally:
                self.heartbeat.dispatching = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] == MEMBER:
            await self.members.deliver(message["user_id"], message["text"])
            return
        if message["type"] == ACCESS:
            self.members.access_changed(message["user_id"], message.get("moved") or {})
            return
        feed = self.feeds.get(message.get("board_id"))
        if feed is None:
            return
        if message["type"] == UPDATE:
            received = time.perf_counter()
            frame = Frame(
                version=message["version"],
                text=message["text"],
                public=message.get("public", True),
                slug=message.get("slug", ""),
            )
            if await feed.deliver(frame):
                metrics.FANOUT.observe(time.perf_counter() - received)
        elif message["type"] == REMOVED:
            await feed.board_removed()

    async def _broker_lost(self, reason: str) -> None:
        metrics.BROKER_UP.set(0)
        logger.warning("relay lost the channel layer (%s); %d spectators are stale", reason, self.audience())
        for feed in list(self.feeds.values()):
            await feed.stale()

    async def _broker_back(self, outage: float) -> None:
        metrics.BROKER_UP.set(1)
        logger.warning("relay reconnected after %.1fs; resyncing %d spectators", outage, self.audience())
        # An access event may have been lost meanwhile: one read for every member socket here,
        # before any snapshot goes out.
        await self.members.check_everyone()
        # So may updates: one fresh snapshot per board, for everyone.
        for feed in list(self.feeds.values()):
            await feed.resync_all(reason="broker", everyone=True)

    def watching_frame(self, board_id: int) -> str | None:
        """The board's current `watching` frame (for a stream resumed without a snapshot)."""
        feed = self.feeds.get(board_id)
        return None if feed is None else feed.watching_frame().text

    def audience(self) -> int:
        """Spectators of every board in this process."""
        return sum(len(feed) for feed in self.feeds.values())

    async def _rejoin(self) -> None:
        async with self._membership:
            await self.layer.group_add(self.heartbeat.group, self.channel)
            for board_id in list(self.feeds):
                await self.layer.group_add(Board.group_name_for(board_id), self.channel)
            for user_id in list(self.members.by_user):
                await self.layer.group_add(member_group_name(user_id), self.channel)

    async def _refresh_groups(self) -> None:
        # A group member older than the layer's group_expiry silently stops receiving.
        while True:
            await asyncio.sleep(settings.LIVE_GROUP_REFRESH)
            try:
                await self._rejoin()
            except Exception as exc:  # noqa: BLE001 - the heartbeat handles outages
                logger.warning("relay could not refresh its groups: %s", exc)


def _retrieved(future: asyncio.Future) -> None:
    """Mark the outcome seen, so that a refusal nobody waited for is not logged as an error."""
    if not future.cancelled():
        future.exception()


_relays: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Relay]" = weakref.WeakKeyDictionary()


def get_relay() -> Relay:
    """The relay of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    relay = _relays.get(loop)
    if relay is None:
        relay = _relays[loop] = Relay(get_channel_layer())
    return relay
