"""The spectator WebSockets: one board per socket (/ws/boards/<slug>/), or many over one (/ws/)."""

import logging

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from live.delivery import metrics
from live.delivery.auth import member_identity
from live.delivery.collector import COLLECTOR
from live.delivery.daphne import SOCKET_EXTENSION
from live.delivery.protocol import (
    CLIENT_MESSAGE_TYPES,
    CLOSE_BOARD_NOT_FOUND,
    CLOSE_TRY_AGAIN_LATER,
    MULTIPLEX_MESSAGE_TYPES,
    PONG,
    ClientError,
    FloodGuard,
    board_of,
    close_code_for,
    parse_client_frame,
)
from live.delivery.relay import get_relay
from live.delivery.subscriptions import Subscriptions
from live.scores.selectors import BoardUnavailable

logger = logging.getLogger(__name__)


class NoDatabaseConsumer(AsyncWebsocketConsumer):
    """A consumer that never touches the database itself (its reads hop in live/delivery/reads.py).

    Channels closes stale database connections before every handler, a hop to Django's one
    database thread per connect, ping and disconnect; such a consumer has none to close. A
    flood of frames, each answered from memory, no longer queues every other client's
    database work behind one hop each (docs/RELIABILITY.md, "Hostile clients").
    """

    # Spectators are reached through the relay, not through a layer channel each.
    channel_layer_alias = None

    async def __call__(self, scope, receive, send) -> None:
        # AsyncConsumer.__call__ without its channel-layer lookup (a settings read and a
        # KeyError per connect for no layer) and its task per message: a loop of one receive.
        self.scope, self.channel_layer, self.base_send = scope, None, send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


class SpectatorSocket(NoDatabaseConsumer):
    """What every spectator WebSocket shares: its limits, Daphne's socket, who it belongs to.

    A logged-in user's socket is also a member socket (live/delivery/members.py): it gets the
    user's member frames, and its private boards end if that user's access to them ends.
    """

    counted = False
    # A member socket's user id and session key (the relay follows the session to a new key);
    # None for an anonymous spectator.
    user_id: int | None = None
    session_key: str | None = None
    private_access_lost = False

    async def open(self) -> bool:
        """Accept, and join the user's member group if logged in; False if closed instead."""
        self.flood_guard = FloodGuard()
        # Daphne's socket, for frames written once for all (None under another server).
        self.socket = (
            self.scope.get("extensions", {}).get(SOCKET_EXTENSION) if settings.LIVE_DIRECT_SEND else None
        )
        # Accept before any close: a close before accept reaches a browser only as 1006.
        await self.accept()
        self.counted = True
        metrics.CONNECTS.inc()
        metrics.CONNECTIONS.inc()
        COLLECTOR.opened()
        identity = member_identity(self.scope)
        if identity is None:
            return True
        self.user_id, self.session_key = identity
        # Before any board's access is read, so that no change of it slips between.
        return await self.relayed(get_relay().join_member(self))

    @property
    def user(self):
        return self.scope.get("user")

    async def relayed(self, joining) -> bool:
        """Await the relay's joining of a group; False (and close 1013) if the broker is down."""
        try:
            await joining
        except Exception as exc:  # noqa: BLE001 - the broker is down; let the client retry
            logger.warning("spectator refused, channel layer unavailable: %s", exc)
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return False
        return True

    async def websocket_disconnect(self, message) -> None:
        # Channels' own also closes stale database connections: a hop to the one database
        # thread per disconnect, 10,000 in a row when a crowd drops at once.
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        if self.counted:
            metrics.CONNECTIONS.dec()
            COLLECTOR.closed()
        if self.user_id is not None:
            await get_relay().leave_member(self)

    async def read(self, text: str | None, data: bytes | None, *, types: tuple[str, ...]) -> dict | None:
        """The client's frame, or None once it was answered with an error frame or a close."""
        try:
            return parse_client_frame(text, data, flood_guard=self.flood_guard, types=types)
        except ClientError as error:
            await self.refuse(error)
            return None

    async def refuse(self, error: ClientError) -> None:
        if error.close_code:
            await self.close(code=error.close_code)
        else:
            await self.send(text_data=error.frame())

    async def send_frame(self, text: str) -> None:
        await self.send(text_data=text)

    async def close_with(self, code: int) -> None:
        await self.close(code=code)


class SpectatorConsumer(SpectatorSocket):
    """One spectator of one board (/ws/boards/<slug>/), fed by the process's relay (feed.py)."""

    board_id: int | None = None
    may_view_private = False

    async def connect(self) -> None:
        if not await self.open():
            return
        slug = self.scope["url_route"]["kwargs"]["slug"]
        try:
            board_id, may_view_private = await get_relay().find_board(
                slug=slug, user=self.user, session_key=self.session_key
            )
        except BoardUnavailable as refusal:
            await self.close(code=close_code_for(refusal))
            return
        # An access change handled while that read ran wins over it.
        self.may_view_private = may_view_private and not self.private_access_lost
        self.board_id = board_id  # set first: a disconnect during the snapshot still leaves
        if not await self.relayed(get_relay().watch(board_id, self)):
            self.board_id = None

    async def disconnect(self, code: int) -> None:
        if self.board_id is not None:
            await get_relay().leave(self.board_id, self)
        await super().disconnect(code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.board_id is None:
            return
        message = await self.read(text_data, bytes_data, types=CLIENT_MESSAGE_TYPES)
        if message is None:
            return
        if message["type"] == "ping":
            await self.send(text_data=PONG)
        else:
            await get_relay().resync(self.board_id, self)

    def lose_private_access(self) -> list[tuple[int, "SpectatorConsumer"]]:
        self.private_access_lost = True
        self.may_view_private = False
        return [] if self.board_id is None else [(self.board_id, self)]


class MultiplexConsumer(SpectatorSocket):
    """One connection for many boards (/ws/): the client subscribes to each by slug.

    Each board is a Subscription (live/delivery/subscriptions.py), a spectator of the
    board's feed that writes to this connection's socket.
    """

    subscriptions: Subscriptions | None = None

    async def connect(self) -> None:
        self.subscriptions = Subscriptions(self, get_relay())
        await self.open()

    async def disconnect(self, code: int) -> None:
        if self.subscriptions is not None:
            await self.subscriptions.close()
        await super().disconnect(code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        message = await self.read(text_data, bytes_data, types=MULTIPLEX_MESSAGE_TYPES)
        if message is None:
            return
        if message["type"] == "ping":
            await self.send(text_data=PONG)
            return
        try:
            slug = board_of(message)
            if message["type"] == "subscribe":
                await self.subscriptions.subscribe(slug)
            elif message["type"] == "unsubscribe":
                await self.subscriptions.unsubscribe(slug)
            else:
                await self.subscriptions.resync(slug)
        except ClientError as error:
            await self.refuse(error)

    def lose_private_access(self) -> list[tuple[int, object]]:
        self.private_access_lost = True
        return self.subscriptions.lose_private_access()


class NotFoundConsumer(NoDatabaseConsumer):
    """Any other WebSocket path: accept, then close with 4404 so clients stop retrying."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_BOARD_NOT_FOUND)
