"""The broker heartbeat on its own: a fake layer, the real event loop."""

import asyncio
import time

import pytest

from live.delivery import heartbeat
from live.delivery.heartbeat import BrokerHeartbeat


class SilentLayer:
    """A layer whose messages never arrive: the broker is gone, silently (as pubsub does)."""

    async def group_send(self, group, message):
        pass


@pytest.fixture(autouse=True)
def quick_heartbeat(monkeypatch):
    monkeypatch.setattr(heartbeat, "HEARTBEAT_EVERY", 0.05)
    monkeypatch.setattr(heartbeat, "HEARTBEAT_TIMEOUT", 0.2)


async def watch(block_loop_for: float) -> list[str]:
    """Losses seen by the first beat over a silent layer, the loop blocked meanwhile if asked."""
    losses: list[str] = []

    async def on_lost(reason):
        losses.append(reason)

    async def unused(*args):
        pass

    beat = BrokerHeartbeat(SilentLayer(), on_lost=on_lost, on_recovered=unused, rejoin=unused)
    task = asyncio.create_task(beat.run())
    try:
        await asyncio.sleep(0.1)  # inside the first beat's wait
        if block_loop_for:
            time.sleep(block_loop_for)  # a flood of client frames holds the loop
        async with asyncio.timeout(5):
            while beat._sent < 2:  # the first beat has its verdict
                await asyncio.sleep(0.01)
        return losses
    finally:
        task.cancel()


async def test_a_silent_broker_is_lost_when_the_loop_keeps_time():
    assert await watch(block_loop_for=0) == ["no heartbeat through the channel layer"]


async def test_a_saturated_loop_is_load_not_a_lost_broker():
    """The beat's timer fires 0.5 s late: the heartbeat could not have come back in time."""
    assert await watch(block_loop_for=heartbeat.BUSY_LOOP_LAG + 0.25) == []
