"""The logged-in users' sockets in this process, by user: messages to one member, and access
to private boards that ends while they watch (docs/PROTOCOL.md).

The relay (live/delivery/relay.py) joins one channel-layer group per user, `member-<id>`,
when that user's first socket here opens and leaves it when the last one closes; what
arrives there is handed to `Members`. An access event (live/delivery/access.py sends one
after a user is deactivated, loses a permission, is deleted, changes password or logs out)
makes it read, once, which of the user's sessions may still view private boards; the
sockets of the others lose private access for good, and their private subscriptions end.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from live.delivery.feed import Spectator

logger = logging.getLogger(__name__)


class MemberSocket(Protocol):
    """What the relay needs of a logged-in user's connection (any endpoint)."""

    user_id: int
    # The relay follows a session to its new key (Django gives the session that changes its
    # password a new one, and that session stays logged in).
    session_key: str

    async def send_frame(self, text: str) -> None: ...

    def lose_private_access(self) -> list[tuple[int, Spectator]]:
        """Never view a private board again: `may_view_private` False on the connection and
        on every subscription, now and for any later one. Returns each open subscription as
        (board id, spectator); the relay ends those of private boards."""
        ...


class AccessReads(Protocol):
    """The read of live/delivery/reads.py: of each user's sessions, those still allowed."""

    read_private_access: Callable[[dict[int, set[str]]], Awaitable[dict[int, set[str]]]]


class Members:
    """This process's sockets of logged-in users, by user id."""

    def __init__(
        self, reads: AccessReads, *, end_private: Callable[[int, Spectator], Awaitable[None]]
    ) -> None:
        self.reads = reads
        self.by_user: dict[int, set[MemberSocket]] = {}
        self._end_private = end_private  # the relay: leave a private board's feed, close with 4403
        self._checks: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return sum(len(sockets) for sockets in self.by_user.values())

    def __contains__(self, user_id: int) -> bool:
        return user_id in self.by_user

    def add(self, socket: MemberSocket) -> None:
        self.by_user.setdefault(socket.user_id, set()).add(socket)

    def discard(self, socket: MemberSocket) -> bool:
        """Forget the socket; True when it was its user's last one here."""
        sockets = self.by_user.get(socket.user_id)
        if sockets is None or socket not in sockets:
            return False
        sockets.discard(socket)
        if sockets:
            return False
        del self.by_user[socket.user_id]
        return True

    async def deliver(self, user_id: int, text: str) -> None:
        """A member frame (encoded once by its sender) to each of the user's sockets here."""
        for socket in list(self.by_user.get(user_id, ())):
            try:
                await socket.send_frame(text)
            except Exception:
                logger.exception("could not deliver a member frame to member=%s", user_id)

    def access_changed(self, user_id: int, moved: dict[str, str]) -> asyncio.Task | None:
        """Check the user's sockets again, in the background (the relay's listener moves on)."""
        sockets = self.by_user.get(user_id)
        if not sockets:
            return None
        for socket in sockets:
            socket.session_key = moved.get(socket.session_key, socket.session_key)
        return self._spawn([user_id])

    async def check_everyone(self) -> None:
        """After a broker outage: an access event may have been lost, so check every socket."""
        if self.by_user:
            await self.check(list(self.by_user))

    def _spawn(self, user_ids: list[int]) -> asyncio.Task:
        task = asyncio.create_task(self.check(user_ids))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)
        return task

    async def check(self, user_ids: list[int]) -> None:
        """One database read for all these users' sockets; those not allowed lose private access.

        A socket that joins meanwhile read its own access after it joined, so after the change.
        """
        sockets = {user_id: list(self.by_user.get(user_id, ())) for user_id in user_ids}
        try:
            allowed = await self.reads.read_private_access(
                {user_id: {s.session_key for s in found} for user_id, found in sockets.items() if found}
            )
        except Exception:
            logger.exception("could not check the access of members %s; they keep it", user_ids)
            return
        lost = 0
        for user_id, found in sockets.items():
            for socket in found:
                if socket.session_key in allowed.get(user_id, ()):
                    continue
                lost += 1
                for board_id, spectator in socket.lose_private_access():
                    try:
                        await self._end_private(board_id, spectator)
                    except Exception:
                        logger.exception("could not end a private subscription of member=%s", user_id)
        if lost:
            logger.info("access to private boards ended for %d sockets of members %s", lost, user_ids)
