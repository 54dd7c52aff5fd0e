"""One /ws/ connection's subscriptions to boards (docs/PROTOCOL.md, "One connection, many boards").

A `Subscription` is one (connection, board) pair and a spectator of that board's feed like
any per-board socket (live/delivery/feed.py): the feed writes the same pre-encoded frames to
the connection's socket. Where a per-board socket would be closed (the board made private or
deleted), a subscription ends with an `unsubscribed` frame and the connection stays open.

Subscribing and resyncing read the database, so they run as tasks: the connection goes on
reading frames (its flood limit counts them as they come, and a ping is answered at once).
"""

import asyncio
import logging

from live.delivery.frames import renamed_frame, unsubscribed_frame
from live.delivery.protocol import (
    CLOSE_BOARD_NOT_FOUND,
    CLOSE_FORBIDDEN,
    CLOSE_TRY_AGAIN_LATER,
    MAX_SUBSCRIPTIONS,
    ClientError,
)
from live.scores.selectors import BoardUnavailable

logger = logging.getLogger(__name__)

CLIENT = "client"
NOT_FOUND = "not_found"
FORBIDDEN = "forbidden"
REMOVED = "removed"

# What a feed's close_with() means for one subscription: it ends, the connection stays.
ENDINGS = {CLOSE_FORBIDDEN: FORBIDDEN, CLOSE_BOARD_NOT_FOUND: REMOVED}


class Subscription:
    """One board watched over a connection shared with other boards (the feed's Spectator).

    `connection` is the consumer (live/delivery/consumers.py, MultiplexConsumer): it knows the
    user (`connection.user`) and the session (`connection.session_key`).
    """

    def __init__(self, connection, slug: str) -> None:
        self.connection = connection
        self.slug = slug  # the board's slug as the client knows it (`renamed` changes it)
        self.board_id: int | None = None  # known once the board was found
        self.may_view_private = False
        self.ended = False

    def __repr__(self) -> str:
        return f"<Subscription {self.slug} board={self.board_id}{' ended' if self.ended else ''}>"

    @property
    def socket(self):
        # None once ended: the feed then calls send_frame(), which drops the frame.
        return None if self.ended else self.connection.socket

    async def send_frame(self, text: str) -> None:
        if not self.ended:
            await self.connection.send_frame(text)

    async def close_with(self, code: int) -> None:
        """The feed ends this subscription (made private: forbidden; deleted: removed)."""
        reason = ENDINGS.get(code)
        if reason is None:  # not about this board alone
            await self.connection.close_with(code)
            return
        await self.connection.subscriptions.end(self, reason)

    async def board_renamed(self, slug: str) -> None:
        if self.ended:
            return
        old, self.slug = self.slug, slug
        self.connection.subscriptions.named[slug] = self  # the old name stays valid too
        await self.connection.send_frame(renamed_frame(old, slug))


class Subscriptions:
    """The subscriptions of one /ws/ connection, named by slug, at most MAX_SUBSCRIPTIONS."""

    def __init__(self, connection, relay) -> None:
        self.connection = connection
        self.relay = relay
        self.named: dict[str, Subscription] = {}  # a renamed board's subscription has both names
        self._tasks: set[asyncio.Task] = set()

    def __iter__(self):
        return iter(self.open())

    def __len__(self) -> int:
        return len(self.open())

    def open(self) -> list[Subscription]:
        """Every open subscription, those whose snapshot is on its way included."""
        return list(dict.fromkeys(self.named.values()))

    async def subscribe(self, slug: str) -> None:
        subscription = self.named.get(slug)
        if subscription is not None:
            await self.resync(slug)  # subscribing twice is a resync (docs/PROTOCOL.md)
            return
        if len(self) >= MAX_SUBSCRIPTIONS:
            raise ClientError(
                "too_many_subscriptions",
                f"At most {MAX_SUBSCRIPTIONS} subscriptions per connection; unsubscribe first.",
                slug=slug,
            )
        subscription = self.named[slug] = Subscription(self.connection, slug)
        self._spawn(self._start(subscription))

    async def unsubscribe(self, slug: str) -> None:
        await self.end(self._subscribed(slug), CLIENT)

    async def resync(self, slug: str) -> None:
        subscription = self._subscribed(slug)
        if subscription.board_id is not None:  # else its first snapshot is on its way
            self._spawn(self.relay.resync(subscription.board_id, subscription))

    async def end(self, subscription: Subscription, reason: str) -> None:
        """End one subscription: its `unsubscribed` frame is the last of it."""
        if subscription.ended:
            return
        subscription.ended = True
        for name in [name for name, named in self.named.items() if named is subscription]:
            del self.named[name]
        await self.connection.send_frame(unsubscribed_frame(subscription.slug, reason))
        if subscription.board_id is not None:
            # A task, not an await: the feed may be calling from its own task, which leaving
            # (the feed's last spectator) would cancel.
            self._spawn(self.relay.leave(subscription.board_id, subscription))

    async def close(self) -> None:
        """The connection is gone: leave every board, once the work in flight is done."""
        subscriptions, self.named = self.open(), {}
        for subscription in subscriptions:
            subscription.ended = True
        # A lookup or a join in flight stops (or undoes itself) once its subscription ended;
        # waited for, so that nothing of this connection reads the database after it.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for subscription in subscriptions:
            if subscription.board_id is not None:
                await self.relay.leave(subscription.board_id, subscription)

    def lose_private_access(self) -> list[tuple[int, Subscription]]:
        """The user may no longer view private boards: (board id, subscription) of each open
        one that joined a feed; the relay ends those of private boards (forbidden)."""
        subscriptions = self.open()
        for subscription in subscriptions:
            subscription.may_view_private = False
        return [(s.board_id, s) for s in subscriptions if s.board_id is not None]

    def _subscribed(self, slug: str) -> Subscription:
        subscription = self.named.get(slug)
        if subscription is None:
            raise ClientError("not_subscribed", "Not subscribed to this board.", slug=slug)
        return subscription

    async def _start(self, subscription: Subscription) -> None:
        """Find the board (one database query, the same for a private board as for a missing
        one), then join its feed: the snapshot, then its updates."""
        connection = self.connection
        try:
            board_id, may_view_private = await self.relay.find_board(
                slug=subscription.slug, user=connection.user, session_key=connection.session_key
            )
        except BoardUnavailable:
            await self.end(subscription, NOT_FOUND)
            return
        if subscription.ended:
            return
        # An access change handled while that read ran wins over it.
        subscription.board_id = board_id
        subscription.may_view_private = may_view_private and not connection.private_access_lost
        await self.relay.watch(board_id, subscription)
        if subscription.ended:  # ended while it joined: the feed may hold it again
            await self.relay.leave(board_id, subscription)

    def _spawn(self, work) -> None:
        task = asyncio.ensure_future(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work) -> None:
        try:
            await work
        except Exception as exc:  # noqa: BLE001 - the channel layer or the database is away
            # As a per-board socket would be: closed, so that the client reconnects (and its
            # disconnect leaves every board, a subscription stuck half-way included).
            logger.warning("a subscription could not start or resync (%s: %s)", type(exc).__name__, exc)
            await self.connection.close_with(CLOSE_TRY_AGAIN_LATER)
