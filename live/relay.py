"""Process-local fan-out: one channel-layer group member per board and server process.

Spectator consumers do not join the channel layer themselves. The relay of their process
adds one channel to the group of each board watched here, receives each update once, and
writes its pre-encoded frame to every local spectator of that board. Redis (or the
in-memory layer) carries messages between processes; the relay carries them to sockets.
"""

import asyncio
import logging
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from live.models import Board

logger = logging.getLogger(__name__)


class Spectator(Protocol):
    may_view_private: bool

    async def deliver(self, version: int, text: str) -> None: ...

    async def forbidden(self) -> None: ...

    async def resync(self) -> None: ...

    async def board_removed(self) -> None: ...


class Relay:
    """Relays a board's updates from the channel layer to this process's spectators."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.spectators: dict[int, set[Spectator]] = {}
        self._membership = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []

    async def join(self, board_id: int, spectator: Spectator) -> None:
        """Add a spectator; returns once the board's updates are routed to this process."""
        async with self._membership:
            if board_id not in self.spectators:
                if self.channel is None:
                    self.channel = await self.layer.new_channel()
                    self._tasks = [
                        asyncio.create_task(self._listen()),
                        asyncio.create_task(self._refresh_groups()),
                    ]
                await self.layer.group_add(Board.group_name_for(board_id), self.channel)
                self.spectators[board_id] = set()
            self.spectators[board_id].add(spectator)

    async def leave(self, board_id: int, spectator: Spectator) -> None:
        async with self._membership:
            members = self.spectators.get(board_id)
            if members is None:
                return
            members.discard(spectator)
            if members:
                return
            del self.spectators[board_id]
            try:
                await self.layer.group_discard(Board.group_name_for(board_id), self.channel)
            except Exception as exc:  # noqa: BLE001 - the membership expires by itself
                logger.warning("relay could not leave board=%s: %s", board_id, exc)
            if not self.spectators:
                self._stop()

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
            except Exception as exc:  # noqa: BLE001 - the broker went away; wait for it
                logger.warning("relay lost the channel layer (%s: %s)", type(exc).__name__, exc)
                await self._recover()
                continue
            await self.dispatch(message)

    async def dispatch(self, message: dict[str, Any]) -> None:
        members = self.spectators.get(message.get("board_id"))
        if not members:
            return
        if message["type"] == "board.update":
            version, text = message["version"], message["text"]
            public = message.get("public", True)
            for spectator in tuple(members):
                try:
                    if public or spectator.may_view_private:
                        await spectator.deliver(version, text)
                    else:  # the board was made private while this outsider watched
                        await spectator.forbidden()
                except Exception:
                    logger.exception("relay could not deliver to a spectator")
        elif message["type"] == "board.removed":
            for spectator in tuple(members):
                await spectator.board_removed()

    async def _recover(self) -> None:
        """Re-join every group once the broker answers, then resync every spectator."""
        delay = 0.5
        while True:
            await asyncio.sleep(delay)  # retry back-off, not synchronisation
            try:
                await self._add_groups()
            except Exception:  # noqa: BLE001
                delay = min(delay * 2, 5.0)
                continue
            break
        logger.warning("relay reconnected; resyncing %d spectators", self._count())
        for members in list(self.spectators.values()):
            for spectator in tuple(members):
                await spectator.resync()

    async def _refresh_groups(self) -> None:
        # A group member older than the layer's group_expiry silently stops receiving.
        while True:
            await asyncio.sleep(settings.LIVE_GROUP_REFRESH)
            try:
                await self._add_groups()
            except Exception as exc:  # noqa: BLE001 - _listen() handles outages
                logger.warning("relay could not refresh its groups: %s", exc)

    async def _add_groups(self) -> None:
        for board_id in list(self.spectators):
            await self.layer.group_add(Board.group_name_for(board_id), self.channel)

    def _count(self) -> int:
        return sum(len(members) for members in self.spectators.values())


_relays: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Relay]" = weakref.WeakKeyDictionary()


def get_relay() -> Relay:
    """The relay of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    relay = _relays.get(loop)
    if relay is None:
        relay = _relays[loop] = Relay(get_channel_layer())
    return relay
