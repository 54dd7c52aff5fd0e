"""Process-local fan-out: one channel-layer group member per board and server process.

Spectator consumers do not join the channel layer themselves. The relay of their process
adds one channel to the group of each board watched here, receives each update once, and
writes its pre-encoded frame to every local spectator of that board. Redis (or the
in-memory layer) carries messages between processes; the relay carries them to sockets.
"""

import asyncio
import logging
import time
import uuid
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

    async def resync(self, *, reuse: bool = False) -> None: ...

    async def board_removed(self) -> None: ...

    async def stale(self) -> None: ...


# The relay probes its own path through the broker (group_send, membership, receive) this
# often: the pubsub layer never raises from receive(), so a lost broker is otherwise silent.
HEARTBEAT_EVERY = 1.0
HEARTBEAT_TIMEOUT = 1.0
# While stale, probe often: the spectators converge as soon as one heartbeat gets through.
RECOVERY_EVERY = 0.25


class Relay:
    """Relays a board's updates from the channel layer to this process's spectators.

    A heartbeat through the broker tells whether updates can arrive. When it fails, every
    spectator is told its standings may be stale; when it answers again, the relay re-adds
    its groups (a restarted Redis has forgotten them) and resyncs every spectator.
    """

    def __init__(self, layer) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.spectators: dict[int, set[Spectator]] = {}
        self.live = True
        # Per board: the last version relayed, and the newest snapshot read since it.
        self.latest: dict[int, int] = {}
        self._snapshots: dict[int, tuple[int, str]] = {}
        self._membership = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._heartbeat_group = f"relay-{uuid.uuid4().hex}"
        self._heartbeats = 0  # the number of the last heartbeat sent
        self._heartbeat_awaited = 1  # a heartbeat numbered this or higher counts
        self._heartbeat_back = False
        # Set when an awaited heartbeat is back, or when the listener finds the broker gone.
        self._heartbeat_wake = asyncio.Event()
        self._lost_at = 0.0
        # Messages taken from the layer, and whether one is being fanned out right now: a
        # late heartbeat behind a busy fan-out or a burst is load, not a lost broker.
        self._received = 0
        self._dispatching = False

    async def join(self, board_id: int, spectator: Spectator) -> None:
        """Add a spectator; returns once the board's updates are routed to this process."""
        async with self._membership:
            if board_id not in self.spectators:
                try:
                    if self.channel is None:
                        self.channel = await self.layer.new_channel()
                        self.live = True
                        self._tasks = [
                            asyncio.create_task(self._listen()),
                            asyncio.create_task(self._watch()),
                            asyncio.create_task(self._refresh_groups()),
                        ]
                        await self.layer.group_add(self._heartbeat_group, self.channel)
                    await self.layer.group_add(Board.group_name_for(board_id), self.channel)
                except BaseException:
                    if not self.spectators:
                        self._stop()  # nobody to serve: the next join starts afresh
                    raise
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
            self._forget(board_id)
            groups = [Board.group_name_for(board_id)]
            if not self.spectators:
                groups.append(self._heartbeat_group)
            for group in groups:
                try:
                    await self.layer.group_discard(group, self.channel)
                except Exception as exc:  # noqa: BLE001 - the membership expires by itself
                    logger.warning("relay could not leave group %s: %s", group, exc)
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
            except Exception as exc:  # noqa: BLE001 - the broker went away; _watch() recovers
                await self._lost(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(RECOVERY_EVERY)  # retry back-off, not synchronisation
                continue
            self._received += 1
            if message.get("type") == "relay.heartbeat":
                if message.get("n", 0) >= self._heartbeat_awaited:
                    self._heartbeat_back = True
                    self._heartbeat_wake.set()
                continue
            self._dispatching = True
            try:
                await self.dispatch(message)
            finally:
                self._dispatching = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        members = self.spectators.get(message.get("board_id"))
        if not members:
            return
        board_id = message["board_id"]
        if message["type"] == "board.update":
            version, text = message["version"], message["text"]
            if version <= self.latest.get(board_id, 0):
                return  # a redelivery: channels-redis core delivers at least once
            self.latest[board_id] = version
            self._snapshots.pop(board_id, None)
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
            self._forget(board_id)
            for spectator in tuple(members):
                await spectator.board_removed()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY if self.live else RECOVERY_EVERY)  # a period
            if self.live:
                self._heartbeat_awaited = self._heartbeats + 1
                self._heartbeat_back = False
                received = self._received
                if not await self._heartbeat(timeout=HEARTBEAT_TIMEOUT) and not self._busy_since(received):
                    await self._lost("no heartbeat through the channel layer")
                continue
            try:
                async with self._membership:
                    await self._add_groups()
            except Exception:  # noqa: BLE001 - still down; try again next period
                continue
            # Any heartbeat sent since the loss counts, so a slow one is not wasted.
            if await self._heartbeat(timeout=RECOVERY_EVERY):
                await self._recovered()

    def _busy_since(self, received: int) -> bool:
        """True if the listener took messages from the layer since, or is fanning one out."""
        return self._dispatching or self._received != received

    async def _heartbeat(self, *, timeout: float) -> bool:
        """Send a message to ourselves through the broker; True once an awaited one is back."""
        self._heartbeats += 1
        message = {"type": "relay.heartbeat", "n": self._heartbeats}
        self._heartbeat_wake.clear()
        try:
            async with asyncio.timeout(timeout):
                try:
                    await self.layer.group_send(self._heartbeat_group, message)
                except Exception:  # noqa: BLE001 - a stale pooled connection fails once: retry
                    await self.layer.group_send(self._heartbeat_group, message)
                if not self._heartbeat_back:
                    await self._heartbeat_wake.wait()
        except Exception:  # noqa: BLE001 - any failure means updates cannot arrive either
            return False
        return self._heartbeat_back

    async def _lost(self, reason: str) -> None:
        if not self.live:
            return
        self.live = False
        self._lost_at = time.monotonic()
        self._heartbeat_awaited = self._heartbeats + 1
        self._heartbeat_back = False
        self._heartbeat_wake.set()  # ends a heartbeat in flight: it cannot come back now
        logger.warning("relay lost the channel layer (%s); %d spectators are stale", reason, self._count())
        for spectator in self._all_spectators():
            try:
                await spectator.stale()
            except Exception:
                logger.exception("relay could not tell a spectator it is stale")

    async def _recovered(self) -> None:
        self.live = True
        self.latest.clear()  # updates may have been lost meanwhile: trust only the database
        self._snapshots.clear()
        logger.warning(
            "relay reconnected after %.1fs; resyncing %d spectators",
            time.monotonic() - self._lost_at,
            self._count(),
        )
        # The first spectator of each board reads a fresh snapshot; the others reuse it.
        for spectator in self._all_spectators():
            try:
                await spectator.resync(reuse=True)
            except Exception:
                logger.exception("relay could not resync a spectator")

    async def _refresh_groups(self) -> None:
        # A group member older than the layer's group_expiry silently stops receiving.
        while True:
            await asyncio.sleep(settings.LIVE_GROUP_REFRESH)
            try:
                async with self._membership:
                    await self._add_groups()
            except Exception as exc:  # noqa: BLE001 - _watch() handles outages
                logger.warning("relay could not refresh its groups: %s", exc)

    async def _add_groups(self) -> None:
        await self.layer.group_add(self._heartbeat_group, self.channel)
        for board_id in list(self.spectators):
            await self.layer.group_add(Board.group_name_for(board_id), self.channel)

    def _all_spectators(self) -> list[Spectator]:
        return [spectator for members in self.spectators.values() for spectator in members]

    def cached_snapshot(self, board_id: int) -> tuple[int, str] | None:
        """(version, frame) of a snapshot still current for a spectator that has joined.

        Valid while no newer update has passed through this relay: every later update then
        reaches the joined spectator, so snapshot + updates is complete. Spares the database
        one read per connecting spectator. None while the broker is lost: updates may be too.
        """
        return self._snapshots.get(board_id) if self.live else None

    def remember_snapshot(self, board_id: int, version: int, text: str) -> None:
        """Keep a snapshot read by a joined spectator, unless an update has overtaken it."""
        if self.live and board_id in self.spectators and version >= self.latest.get(board_id, 0):
            self._snapshots[board_id] = (version, text)

    def _forget(self, board_id: int) -> None:
        self.latest.pop(board_id, None)
        self._snapshots.pop(board_id, None)

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
