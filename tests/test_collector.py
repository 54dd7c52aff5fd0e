"""Full garbage collections paced by closed connections (live/delivery/collector.py)."""

import asyncio
import gc

import pytest

from live.delivery import collector
from live.delivery.collector import Collector


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def paced():
    """A collector with its own clock and a collect() that only counts."""
    runs: list[float] = []
    clock = Clock()
    pacer = Collector(
        at_least=10,
        share=0.25,
        interval=10.0,
        settle=0.01,
        collect=lambda: runs.append(clock.now) or 0,
        clock=clock,
    )
    pacer.runs, pacer.clock = runs, clock
    return pacer


async def settled(pacer: Collector) -> None:
    """Wait for a scheduled collection to run (each wait bounded)."""
    async with asyncio.timeout(2):
        while pacer.scheduled is not None:
            await asyncio.sleep(0.005)


async def test_a_crowd_joining_causes_no_full_collection(paced):
    for _ in range(10_000):
        paced.opened()
    await asyncio.sleep(0.05)
    assert paced.runs == [] and paced.scheduled is None


async def test_a_quarter_of_those_open_closing_causes_one_collection_after_they_settle(paced):
    for _ in range(100):
        paced.opened()
    for _ in range(10):  # at least 10 (`at_least`): the first collection
        paced.closed()
    await settled(paced)
    assert paced.runs == [100.0] and paced.open_at_last == 90
    paced.clock.now += 60
    for _ in range(21):  # a quarter of 90 is 22
        paced.closed()
    assert paced.scheduled is None
    paced.closed()
    await settled(paced)
    assert paced.runs == [100.0, 160.0] and paced.closed_since == 0


async def test_a_crowd_dropping_at_once_is_collected_once(paced):
    for _ in range(1000):
        paced.opened()
    for _ in range(1000):
        paced.closed()
    await settled(paced)
    assert len(paced.runs) == 1


async def test_collections_are_at_least_an_interval_apart(paced):
    for _ in range(100):
        paced.opened()
    for _ in range(10):
        paced.closed()
    await settled(paced)
    for _ in range(22):  # due again: a quarter of the 90 open at the first
        paced.closed()
    assert paced.scheduled is not None
    assert paced.scheduled.when() - asyncio.get_running_loop().time() > 9  # 10 s after the first
    paced.scheduled.cancel()


def test_configure_freezes_start_up_and_raises_the_oldest_threshold():
    thresholds = gc.get_threshold()
    try:
        collector.configure()
        assert gc.get_threshold() == collector.THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
