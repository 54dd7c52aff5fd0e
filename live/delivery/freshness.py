"""Every writer heard: each relay compares its boards' versions with the database.

A change committed by any process (another server, `manage.py shell`, a cron job) reaches
this process's spectators through the channel layer, except when it cannot: the
in-memory layer never leaves its process, a pubsub message published while Redis was away
is gone, a writer killed between its commit and its publish never sent one. So every
`settings.LIVE_FRESHNESS_EVERY` seconds the relay reads the versions of all the boards it
serves (one query per process, never per spectator); a board still behind the database at
the next check, with no update in between, catches up from its change records.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from django.conf import settings

from live.delivery.feed import BoardFeed

logger = logging.getLogger(__name__)


class FreshnessCheck:
    def __init__(
        self,
        feeds: dict[int, BoardFeed],
        read_versions: Callable[[list[int]], Awaitable[dict[int, int]]],
    ) -> None:
        self.feeds = feeds
        self.read_versions = read_versions
        # Board id -> the feed's version when the database was first seen ahead of it.
        self._behind: dict[int, int] = {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(settings.LIVE_FRESHNESS_EVERY)  # a period, not synchronisation
            try:
                await self.check()
            except Exception as exc:  # noqa: BLE001 - the database is busy or away: try again
                logger.warning("could not compare board versions with the database: %s", exc)

    async def check(self) -> None:
        if not self.feeds:
            return
        asked = list(self.feeds)
        versions = await self.read_versions(asked)
        for board_id in asked:
            # A board watched since the read is not in it: missing from it means deleted only
            # for the boards asked about.
            feed = self.feeds.get(board_id)
            if feed is None:
                continue
            committed = versions.get(board_id)
            if committed is None:
                await feed.board_removed()
                continue
            if committed <= feed.version:
                self._behind.pop(board_id, None)
                continue
            if self._behind.get(board_id) == feed.version:
                # Behind at two checks in a row, and no update came: it is not in flight.
                del self._behind[board_id]
                await feed.start_catch_up()
            else:
                self._behind[board_id] = feed.version
