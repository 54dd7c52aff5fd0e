"""BoardFeed on its own: fake reads, fake spectators, no database and no server."""

import asyncio

from live.delivery.feed import BoardFeed
from live.delivery.frames import Frame


class Spectator:
    may_view_private = True
    socket = None

    def __init__(self) -> None:
        self.frames: list[str] = []

    async def send_frame(self, text: str) -> None:
        self.frames.append(text)

    async def close_with(self, code: int) -> None:
        raise AssertionError(f"closed with {code}")


class Reads:
    def __init__(self) -> None:
        self.snapshot_reads = 0
        self.release = asyncio.Event()

    async def read_snapshot(self, board_id: int) -> Frame:
        self.snapshot_reads += 1
        await self.release.wait()
        return Frame(version=7, text='{"type":"snapshot"}', public=True, snapshot=True, slug="demo")

    async def read_updates(self, board_id: int, after: int) -> list[Frame]:
        return []


async def test_a_spectator_joining_as_a_read_ends_on_a_busy_loop_reads_nothing_more():
    """The read is done but its readers have not resumed yet: the next joiner takes its result."""
    reads = Reads()
    feed = BoardFeed(1, reads)
    first = asyncio.create_task(feed.send_snapshot(Spectator()))
    async with asyncio.timeout(5):
        while feed._snapshot_read is None:
            await asyncio.sleep(0)
        reads.release.set()
        while not feed._snapshot_read.done():
            await asyncio.sleep(0)
    # Here, on a loop this busy, thousands of callbacks may run before `first` resumes.
    second = Spectator()
    await asyncio.wait_for(feed.send_snapshot(second), 5)
    await asyncio.wait_for(first, 5)
    assert reads.snapshot_reads == 1
    assert second.frames == ['{"type":"snapshot","watching":0}']  # nobody counted it yet


class ClosingSocket:
    """Daphne's socket of a connection that is closing (or was closed for not reading)."""

    open = False

    def prepare(self, text: str):
        raise AssertionError("framed for a closing socket")

    def send(self, prepared) -> None:
        raise AssertionError("written to a closing socket")


class Closing(Spectator):
    socket = ClosingSocket()

    async def send_frame(self, text: str) -> None:
        raise AssertionError("sent through ASGI on a closed protocol")  # what Daphne then logged


async def test_a_closing_socket_gets_nothing_more_through_any_path():
    reads = Reads()
    reads.release.set()
    feed = BoardFeed(1, reads)
    closing, other = Closing(), Spectator()
    await asyncio.wait_for(feed.send_snapshot(closing), 5)  # a resync answered as it closes
    await asyncio.wait_for(feed.send_snapshot(other), 5)
    await asyncio.wait_for(feed.announce_watching(2), 5)  # to every spectator with a snapshot
    assert other.frames[-1] == '{"type":"watching","slug":"demo","count":2}'
