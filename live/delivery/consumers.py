"""The spectator WebSocket: a snapshot first, then every update of the board, in order."""

import logging

from channels.generic.websocket import AsyncWebsocketConsumer

from live.delivery import reads
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


class SpectatorConsumer(AsyncWebsocketConsumer):
    """One spectator of one board, fed by the process's relay (live/delivery/feed.py)."""

    # Spectators are reached through the relay, not through a layer channel each.
    channel_layer_alias = None

    board_id: int | None = None
    may_view_private = False

    async def connect(self) -> None:
        self.flood_guard = FloodGuard()
        # Accept before any close: a close before accept reaches a browser only as 1006.
        await self.accept()
        slug = self.scope["url_route"]["kwargs"]["slug"]
        try:
            board_id, self.may_view_private = await reads.find_board(slug=slug, user=self.scope.get("user"))
        except BoardUnavailable as refusal:
            await self.close(code=close_code_for(refusal))
            return
        self.board_id = board_id  # set first: a disconnect during the snapshot still leaves
        try:
            await get_relay().watch(board_id, self)
        except Exception as exc:  # noqa: BLE001 - the broker is down; let the client retry
            logger.warning("spectator refused, channel layer unavailable: %s", exc)
            self.board_id = None
            await self.close(code=CLOSE_TRY_AGAIN_LATER)

    async def dispatch(self, message) -> None:
        # Channels hops to the database thread before every message to close stale connections.
        # A spectator's frames are answered from memory (a pong, the feed's current snapshot),
        # yet a flood of frames queued every other client's database work (a connect's session
        # and board lookups) behind one hop each (docs/RELIABILITY.md, "Hostile clients").
        # A real read still hops, and closes stale connections there.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    async def disconnect(self, code: int) -> None:
        if self.board_id is not None:
            await get_relay().leave(self.board_id, self)

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


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: accept, then close with 4404 so clients stop retrying."""

    channel_layer_alias = None

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_BOARD_NOT_FOUND)
