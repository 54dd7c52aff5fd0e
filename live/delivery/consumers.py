"""The spectator WebSocket: a snapshot first, then every update of the board, in order."""

import logging

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from live.delivery import metrics
from live.delivery.auth import member_identity
from live.delivery.daphne import SOCKET_EXTENSION
from live.delivery.protocol import (
    CLOSE_BOARD_NOT_FOUND,
    CLOSE_TRY_AGAIN_LATER,
    PONG,
    ClientError,
    FloodGuard,
    close_code_for,
    parse_client_frame,
)
from live.delivery.relay import get_relay
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


class SpectatorConsumer(NoDatabaseConsumer):
    """One spectator of one board, fed by the process's relay (live/delivery/feed.py).

    A logged-in user's spectator is also a member socket (live/delivery/members.py): it gets
    the user's member frames, and is closed with 4403 if its access to private boards ends
    while it watches one.
    """

    board_id: int | None = None
    may_view_private = False
    counted = False
    # A member socket's (user id, session key); None for an anonymous spectator.
    user_id: int | None = None
    session_key: str | None = None
    private_access_lost = False

    async def connect(self) -> None:
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
        slug = self.scope["url_route"]["kwargs"]["slug"]
        identity = member_identity(self.scope)
        if identity is not None:
            self.user_id, self.session_key = identity
            # Before reading its access, so that no change of it slips between.
            if not await self.relayed(get_relay().join_member(self)):
                return
        try:
            board_id, may_view_private = await get_relay().find_board(
                slug=slug, user=self.scope.get("user"), session_key=self.session_key
            )
        except BoardUnavailable as refusal:
            await self.close(code=close_code_for(refusal))
            return
        # An access change handled while that read ran wins over it.
        self.may_view_private = may_view_private and not self.private_access_lost
        self.board_id = board_id  # set first: a disconnect during the snapshot still leaves
        if not await self.relayed(get_relay().watch(board_id, self)):
            self.board_id = None

    async def relayed(self, joining) -> bool:
        """Await the relay's joining of a group; False (and close 1013) if the broker is down."""
        try:
            await joining
        except Exception as exc:  # noqa: BLE001 - the broker is down; let the client retry
            logger.warning("spectator refused, channel layer unavailable: %s", exc)
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return False
        return True

    async def disconnect(self, code: int) -> None:
        if self.counted:
            metrics.CONNECTIONS.dec()
        if self.board_id is not None:
            await get_relay().leave(self.board_id, self)
        if self.user_id is not None:
            await get_relay().leave_member(self)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.board_id is None:
            return
        try:
            message = parse_client_frame(text_data, bytes_data, flood_guard=self.flood_guard)
        except ClientError as error:
            if error.close_code:
                await self.close(code=error.close_code)
            else:
                await self.send(text_data=error.frame())
            return
        if message["type"] == "ping":
            await self.send(text_data=PONG)
        else:
            await get_relay().resync(self.board_id, self)

    async def send_frame(self, text: str) -> None:
        await self.send(text_data=text)

    async def close_with(self, code: int) -> None:
        await self.close(code=code)

    def lose_private_access(self) -> list[tuple[int, "SpectatorConsumer"]]:
        self.private_access_lost = True
        self.may_view_private = False
        return [] if self.board_id is None else [(self.board_id, self)]


class NotFoundConsumer(NoDatabaseConsumer):
    """Any other WebSocket path: accept, then close with 4404 so clients stop retrying."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_BOARD_NOT_FOUND)
