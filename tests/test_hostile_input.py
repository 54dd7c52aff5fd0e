"""Hostile spectators: floods, and thousands of random frames, each answered by the protocol."""

import pytest

from live.protocol import MAX_CLIENT_MESSAGES_PER_SECOND, FloodGuard
from tests.conftest import TIMEOUT, receive, spectate

pytestmark = pytest.mark.django_db(transaction=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """Freezes the flood guard's clock: frames sent in a test then share one window."""
    clock = FakeClock()
    monkeypatch.setattr(FloodGuard, "clock", clock)
    return clock


async def expect_close(communicator, code: int) -> None:
    message = await communicator.receive_output(timeout=TIMEOUT)
    assert message == {"type": "websocket.close", "code": code}


async def test_more_frames_per_second_than_the_limit_close_with_1008(board, clock):
    async with spectate("finals") as ws:
        await receive(ws)
        for _ in range(MAX_CLIENT_MESSAGES_PER_SECOND):
            await ws.send_json_to({"type": "ping"})
            assert await receive(ws) == {"type": "pong"}
        await ws.send_json_to({"type": "ping"})
        await expect_close(ws, 1008)


async def test_the_limit_applies_per_second_not_per_connection(board, clock):
    async with spectate("finals") as ws:
        await receive(ws)
        for _second in range(3):
            for _ in range(MAX_CLIENT_MESSAGES_PER_SECOND):
                await ws.send_json_to({"type": "ping"})
                assert await receive(ws) == {"type": "pong"}
            clock.now += 1.0
        assert await ws.receive_nothing(timeout=0.1)


async def test_the_limit_is_per_connection(board, clock):
    async with spectate("finals") as flooder, spectate("finals") as neighbour:
        await receive(flooder)
        await receive(neighbour)
        for _ in range(MAX_CLIENT_MESSAGES_PER_SECOND + 1):
            await flooder.send_json_to({"type": "ping"})
        for _ in range(MAX_CLIENT_MESSAGES_PER_SECOND):
            await flooder.receive_json_from(timeout=TIMEOUT)
        await expect_close(flooder, 1008)
        await neighbour.send_json_to({"type": "ping"})
        assert await receive(neighbour) == {"type": "pong"}
