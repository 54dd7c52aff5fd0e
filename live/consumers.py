"""The spectator WebSocket: a snapshot first, then every update of the board, in order."""

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from live.models import Board, can_view_private_boards
from live.protocol import (
    CLOSE_BOARD_NOT_FOUND,
    CLOSE_FORBIDDEN,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNSUPPORTED_DATA,
    MAX_CLIENT_MESSAGE_BYTES,
    PONG,
    STALE,
    ClientError,
    FloodGuard,
    message_size,
    parse_client_message,
)
from live.relay import get_relay
from live.serializers import board_snapshot, encode

logger = logging.getLogger(__name__)


@database_sync_to_async
def find_board(slug: str) -> Board | None:
    return Board.objects.filter(slug=slug).first()


@database_sync_to_async
def may_view_private(user) -> bool:
    return can_view_private_boards(user)


class Forbidden(Exception):
    """The board was made private and this spectator may not view it."""


@database_sync_to_async
def fetch_snapshot(board: Board, *, may_view_private: bool) -> dict | None:
    try:
        if not may_view_private and not Board.objects.get(pk=board.pk).is_public:
            raise Forbidden
        return board_snapshot(board=board)
    except Board.DoesNotExist:
        return None


class SpectatorConsumer(AsyncWebsocketConsumer):
    """One spectator of one board, fed by the process's relay."""

    # Spectators are reached through the relay, not through a layer channel each.
    channel_layer_alias = None

    board: Board | None = None

    async def connect(self) -> None:
        self.flood_guard = FloodGuard()
        # Accept before any close: a close before accept reaches a browser only as 1006.
        await self.accept()
        self.board = await find_board(self.scope["url_route"]["kwargs"]["slug"])
        if self.board is None:
            await self.close(code=CLOSE_BOARD_NOT_FOUND)
            return
        self.may_view_private = await may_view_private(self.scope.get("user"))
        if not (self.board.is_public or self.may_view_private):
            # Never joined, so none of the board's updates can reach this socket.
            self.board = None
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # Updates that arrive while the snapshot is read wait here (None: send directly).
        self.buffer: list[tuple[int, str]] | None = []
        # The version this spectator already has: an update still in flight when the
        # snapshot read its version is included in it and must not follow it.
        self.sent_version = 0
        self.snapshot_lock = asyncio.Lock()
        try:
            await get_relay().join(self.board.pk, self)
        except Exception as exc:  # noqa: BLE001 - the broker is down; let the client retry
            logger.warning("spectator refused, channel layer unavailable: %s", exc)
            self.board = None
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        await self.resync(reuse=True)
        if not get_relay().live:
            await self.stale()

    async def disconnect(self, code: int) -> None:
        if self.board is not None:
            await get_relay().leave(self.board.pk, self)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.board is None:
            return
        if not self.flood_guard.allow():
            await self.close(code=CLOSE_POLICY_VIOLATION)
            return
        if text_data is None:
            await self.close(code=CLOSE_UNSUPPORTED_DATA)
            return
        if message_size(text_data) > MAX_CLIENT_MESSAGE_BYTES:
            await self.close(code=CLOSE_MESSAGE_TOO_BIG)
            return
        try:
            message = parse_client_message(text_data)
        except ClientError as error:
            await self.send(text_data=error.frame())
            return
        if message["type"] == "ping":
            await self.send(text_data=PONG)
        else:
            await self.resync()

    async def resync(self, *, reuse: bool = False) -> None:
        """Send a snapshot, then any update newer than it that arrived meanwhile.

        With `reuse`, a snapshot the relay holds for this board may stand in for a database
        read; a resync the spectator asks for always reads the database.
        """
        async with self.snapshot_lock:
            self.buffer = []
            relay = get_relay()
            cached = relay.cached_snapshot(self.board.pk) if reuse else None
            if cached is None:
                try:
                    snapshot = await fetch_snapshot(self.board, may_view_private=self.may_view_private)
                except Forbidden:
                    await self.forbidden()
                    return
                if snapshot is None:
                    await self.board_removed()
                    return
                cached = (snapshot["version"], encode(snapshot))
                if not self.may_view_private:  # proven public when read: fit for anyone
                    relay.remember_snapshot(self.board.pk, *cached)
            self.sent_version, text = cached
            await self.send(text_data=text)
            buffered, self.buffer = self.buffer, None
            for version, update in buffered:
                await self.send_update(version, update)

    async def deliver(self, version: int, text: str) -> None:
        if self.buffer is not None:
            self.buffer.append((version, text))
        else:
            await self.send_update(version, text)

    async def send_update(self, version: int, text: str) -> None:
        if version > self.sent_version:
            self.sent_version = version
            await self.send(text_data=text)

    async def board_removed(self) -> None:
        await self.close(code=CLOSE_BOARD_NOT_FOUND)

    async def forbidden(self) -> None:
        await self.close(code=CLOSE_FORBIDDEN)

    async def stale(self) -> None:
        await self.send(text_data=STALE)


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: accept, then close with 4404 so clients stop retrying."""

    channel_layer_alias = None

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_BOARD_NOT_FOUND)
