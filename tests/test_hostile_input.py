"""Hostile spectators: floods, and thousands of random frames, each answered by the protocol."""

import asyncio
import json
from collections import Counter

import hypothesis
import pytest
from hypothesis import strategies as st

from live.delivery.protocol import MAX_CLIENT_MESSAGE_BYTES, MAX_CLIENT_MESSAGES_PER_SECOND, FloodGuard
from live.scores.services import award_points
from tests.conftest import TIMEOUT, FakeClock, expect_close, in_thread, receive, spectate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """Freezes the flood guard's clock: frames sent in a test then share one window."""
    clock = FakeClock()
    monkeypatch.setattr(FloodGuard, "clock", clock)
    return clock


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


# --- Fuzzing: every frame gets the protocol's answer -------------------------------------

FUZZ_EXAMPLES = 400  # connections; each sends up to MAX_FRAMES_PER_CONNECTION frames
MAX_FRAMES_PER_CONNECTION = 2 * MAX_CLIENT_MESSAGES_PER_SECOND
MIN_FRAMES_FUZZED = 2000

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
any_text = st.text(st.characters(exclude_categories=()) | st.sampled_from(["\ud800", "\udfff", "\x00"]))
type_values = st.sampled_from(["ping", "resync", "PING", "subscribe", ""]) | json_values


SHALLOW = 100


def nested(depth: int, opener: str, closer: str) -> str:
    return opener * depth + "1" + closer * depth


text_frames = st.one_of(
    st.just('{"type": "ping"}'),
    st.just('{"type": "resync"}'),
    st.builds(
        lambda t, extra: json.dumps({**extra, "type": t}),
        type_values,
        st.dictionaries(st.text(), json_values),
    ),
    json_values.map(json.dumps),  # wrong types: arrays, strings, numbers, null
    any_text,  # random text, lone surrogates (invalid UTF-8 on the wire) included
    # Shallow here: Hypothesis raises the interpreter's recursion limit (one for all threads)
    # while it runs an example, so whether a frame nested hundreds deep parses would depend
    # on the moment. Deep nesting has its own test below, at the fixed limit.
    st.integers(1, SHALLOW).map(lambda n: nested(n, "[", "]")),
    st.integers(1, SHALLOW).map(lambda n: nested(n, '{"a":', "}")),
).map(lambda text: ("text", text))
# Frames that end a connection, sent last (if at all) so that most batches also flood.
last_frames = st.one_of(
    st.none(),
    st.binary(max_size=5000).map(lambda data: ("bytes", data)),
    st.builds(
        lambda n, c: ("text", c * n), st.integers(1000, 100_000), st.sampled_from(["x", "é", "😀", "\u202e"])
    ),
)
batches = st.builds(
    lambda body, last: body + [last] if last else body,
    st.lists(text_frames, min_size=MAX_CLIENT_MESSAGES_PER_SECOND // 2, max_size=MAX_FRAMES_PER_CONNECTION),
    last_frames,
).filter(bool)


def expected_answer(kind: str, data: str | bytes, position: int) -> tuple[str, object]:
    """The protocol (docs/PROTOCOL.md), stated independently of the consumer's code."""
    if position > MAX_CLIENT_MESSAGES_PER_SECOND:
        return ("close", 1008)
    if kind == "bytes":
        return ("close", 1003)
    if len(data.encode("utf-8", "surrogatepass")) > MAX_CLIENT_MESSAGE_BYTES:
        return ("close", 1009)
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):
        return ("error", "invalid_json")
    if not isinstance(message, dict):
        return ("error", "invalid_message")
    if message.get("type") == "ping":
        return ("pong", None)
    if message.get("type") == "resync":
        return ("snapshot", None)
    return ("error", "unknown_type")


def actual_answer(output: dict) -> tuple[str, object]:
    if output["type"] == "websocket.close":
        return ("close", output["code"])
    assert output["type"] == "websocket.send" and set(output) == {"type", "text"}, output
    frame = json.loads(output["text"])
    if frame["type"] == "error":
        assert isinstance(frame["message"], str) and frame["message"]
        return ("error", frame["code"])
    return (frame["type"], None)


ANSWERS: Counter = Counter()


async def fuzz_one_connection(batch: list[tuple[str, str | bytes]]) -> int:
    """Send a batch of frames on a fresh connection; returns how many were sent."""
    async with spectate("finals") as ws:
        assert (await receive(ws))["type"] == "snapshot"
        for position, (kind, data) in enumerate(batch, start=1):
            await ws.send_input({"type": "websocket.receive", kind: data})  # send_to() refuses ""
            expected = expected_answer(kind, data, position)
            assert actual_answer(await ws.receive_output(timeout=TIMEOUT)) == expected, (position, kind, data)
            ANSWERS[expected] += 1
            if expected[0] == "close":
                return position
        assert ws.output_queue.empty()
        return len(batch)


async def test_thousands_of_random_frames_each_get_the_protocols_answer(players, clock):
    """Hypothesis drives random connections while a bystander keeps receiving every update."""
    loop = asyncio.get_running_loop()
    sent: list[int] = []
    bystander_versions: list[int] = []

    async with spectate("finals") as bystander:
        version = (await receive(bystander))["version"]

        async def one_example(batch):
            sent.append(await fuzz_one_connection(batch))
            await in_thread(award_points, player_ids=[players[0].pk], points=1)
            update = await receive(bystander)
            bystander_versions.append(update["version"])

        @hypothesis.settings(
            max_examples=FUZZ_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(batches)
        def fuzz(batch):
            asyncio.run_coroutine_threadsafe(one_example(batch), loop).result(timeout=60)

        await asyncio.to_thread(fuzz)

    assert sum(sent) >= MIN_FRAMES_FUZZED, f"only {sum(sent)} frames fuzzed"
    assert bystander_versions == list(range(version + 1, version + 1 + len(bystander_versions)))
    print(f"fuzzed {sum(sent)} frames on {len(sent)} connections; {len(bystander_versions)} updates seen")
    print(dict(ANSWERS))


@pytest.mark.parametrize("opener,closer", [("[", "]"), ('{"a":', "}")])
async def test_frames_nested_deeper_than_python_recurses_are_invalid_json_and_harm_nothing(
    board, opener, closer
):
    """Nested up to what fits in a frame: answered as the oracle parses it, the socket open."""
    depth = (MAX_CLIENT_MESSAGE_BYTES - 1) // (len(opener) + len(closer))
    async with spectate("finals") as ws:
        await receive(ws)
        for n in (SHALLOW, 500, depth):
            text = nested(n, opener, closer)
            await ws.send_to(text_data=text)
            assert actual_answer(await ws.receive_output(timeout=TIMEOUT)) == expected_answer("text", text, 1)
        await ws.send_json_to({"type": "ping"})
        assert await receive(ws) == {"type": "pong"}
