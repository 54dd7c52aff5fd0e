"""A deployment under test: redis-server, a prepared database and Daphne processes."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from harness.database import Database
from harness.servers import DaphneProcess, RedisServer, server_env
from harness.spectator import Spectator, converge, spectators
from harness.staff import Staff


class Deployment:
    """redis-server, a migrated database with the demo board and staff, and Daphne processes."""

    def __init__(self, tmp_path: Path, *, layer: str, database_url: str, **env: str) -> None:
        self.tmp_path = tmp_path
        self.redis = RedisServer(tmp_path).start()
        self.database_url = database_url
        self.env = server_env(database_url=database_url, redis_url=self.redis.url, layer=layer, **env)
        self.db = Database(database_url)
        self.board_id, _ = self.db.board()
        self.daphnes: list[DaphneProcess] = []

    def start_daphne(self, *options: str) -> DaphneProcess:
        daphne = DaphneProcess(env=self.env, tmp_path=self.tmp_path, options=options).start()
        self.daphnes.append(daphne)
        return daphne

    async def start_two_daphnes(self) -> tuple[DaphneProcess, DaphneProcess]:
        """Two Daphne processes sharing this Redis and database, started side by side."""
        a, b = await asyncio.gather(
            asyncio.to_thread(self.start_daphne), asyncio.to_thread(self.start_daphne)
        )
        return a, b

    async def two_daphnes_and_staff(self, *, staff_on: int = 0) -> tuple[DaphneProcess, DaphneProcess, Staff]:
        """Two Daphne processes, and staff1 logged in to the admin of one of them."""
        daphnes = await self.start_two_daphnes()
        return *daphnes, await self.staff(daphnes[staff_on])

    async def staff(self, daphne: DaphneProcess, username: str = "staff1") -> Staff:
        """A staff member logged in to the admin of one process."""
        return await asyncio.to_thread(Staff(daphne.http_url, username).log_in)

    @asynccontextmanager
    async def watching(self, count: int, *daphnes: DaphneProcess) -> AsyncIterator[list[Spectator]]:
        """`count` spectators spread over the processes, each already showing the database."""
        async with spectators([d.ws_url for d in daphnes], count) as crowd:
            await converge(crowd, self.db, self.board_id)
            yield crowd

    def restart_redis(self) -> None:
        self.redis = RedisServer(self.tmp_path, port=self.redis.port).start()

    def stop(self) -> None:
        for process in [*self.daphnes, self.redis]:
            process.stop()
