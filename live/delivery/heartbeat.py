"""Broker health: is the relay's path through the channel layer working?

The pubsub layer never raises from receive() when Redis goes away, so a lost broker is
otherwise silent. The heartbeat sends a message to the relay's own group every
`HEARTBEAT_EVERY` seconds and waits for it to come back through the listener. A heartbeat
missing for `HEARTBEAT_TIMEOUT` while nothing else arrived, nothing was being fanned out and
the event loop kept its timers (a busy loop is load, not loss) means the broker is lost; then
it probes more often and reports the recovery once a heartbeat gets through again.
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

HEARTBEAT_EVERY = 1.0
HEARTBEAT_TIMEOUT = 1.0
# While lost, probe often: the spectators converge as soon as one heartbeat gets through.
RECOVERY_EVERY = 0.25

HEARTBEAT = "relay.heartbeat"
# A timer of the heartbeat's that fired this late shows a saturated event loop (a flood of
# client frames, say): the heartbeat could not come back in time, whatever the broker did.
BUSY_LOOP_LAG = 0.25


class BrokerHeartbeat:
    def __init__(
        self,
        layer,
        *,
        on_lost: Callable[[str], Awaitable[None]],
        on_recovered: Callable[[float], Awaitable[None]],
        rejoin: Callable[[], Awaitable[None]],
    ) -> None:
        self.layer = layer
        self.group = f"relay-{uuid.uuid4().hex}"
        self.live = True
        self._on_lost = on_lost
        self._on_recovered = on_recovered
        self._rejoin = rejoin  # re-add the relay's groups (a restarted Redis forgot them)
        self._sent = 0  # the number of the last heartbeat sent
        self._awaited = 1  # a heartbeat numbered this or higher counts
        self._back = False
        self._wake = asyncio.Event()
        self._lost_at = 0.0
        # Messages the listener took from the layer, and whether one is being fanned out.
        self.received = 0
        self.dispatching = False

    def heard(self, message: dict) -> None:
        """The listener took one of our heartbeats from the layer."""
        if message.get("n", 0) >= self._awaited:
            self._back = True
            self._wake.set()

    async def run(self) -> None:
        while True:
            period, started = HEARTBEAT_EVERY if self.live else RECOVERY_EVERY, time.monotonic()
            await asyncio.sleep(period)  # a period, not synchronisation
            lag = _late(started, period)
            if self.live:
                self._awaited = self._sent + 1
                self._back = False
                received, started = self.received, time.monotonic()
                back = await self._beat(timeout=HEARTBEAT_TIMEOUT)
                lag = max(lag, _late(started, HEARTBEAT_TIMEOUT))
                if not back and not self._busy_since(received) and lag <= BUSY_LOOP_LAG:
                    await self.lost("no heartbeat through the channel layer")
                continue
            try:
                await self._rejoin()
            except Exception:  # noqa: BLE001 - still down; try again next period
                continue
            # Any heartbeat sent since the loss counts, so a slow one is not wasted.
            if await self._beat(timeout=RECOVERY_EVERY):
                self.live = True
                await self._on_recovered(time.monotonic() - self._lost_at)

    async def lost(self, reason: str) -> None:
        if not self.live:
            return
        self.live = False
        self._lost_at = time.monotonic()
        self._awaited = self._sent + 1
        self._back = False
        self._wake.set()  # ends a heartbeat in flight: it cannot come back now
        await self._on_lost(reason)

    def _busy_since(self, received: int) -> bool:
        return self.dispatching or self.received != received

    async def _beat(self, *, timeout: float) -> bool:
        """Send a message to ourselves through the broker; True once an awaited one is back."""
        self._sent += 1
        message = {"type": HEARTBEAT, "n": self._sent}
        self._wake.clear()
        try:
            async with asyncio.timeout(timeout):
                try:
                    await self.layer.group_send(self.group, message)
                except Exception:  # noqa: BLE001 - a stale pooled connection fails once: retry
                    await self.layer.group_send(self.group, message)
                if not self._back:
                    await self._wake.wait()
        except Exception:  # noqa: BLE001 - any failure means updates cannot arrive either
            return False
        return self._back


def _late(started: float, period: float) -> float:
    """How much longer than `period` the loop took since `started` (0 if it took less)."""
    return max(0.0, time.monotonic() - started - period)
