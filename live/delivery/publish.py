"""The one module that sends to the channel layer.

A committed change-set becomes one pre-encoded update frame, sent once to the board's
group. A send is bounded by `settings.LIVE_PUBLISH_TIMEOUT`: a frozen or unreachable broker
never holds a save longer than that. What could not be sent reaches spectators anyway,
through each relay's comparison of its versions with the database (live/delivery/freshness.py).

Messages to one user (`relay_to_member`, and the access events of live/delivery/access.py)
go to that user's group, which each relay holding one of the user's sockets has joined once.
"""

import asyncio
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from live.delivery.frames import member_frame
from live.models import Board, member_group_name
from live.scores.selectors import BoardUnavailable, updates_since

logger = logging.getLogger(__name__)

UPDATE = "board.update"
REMOVED = "board.removed"
MEMBER = "member.message"
ACCESS = "member.access"


def publish_change_set(*, board_id: int, version: int) -> None:
    """Send committed change-set `version` of a board as one update frame, from its record."""
    try:
        frames = updates_since(board_id=board_id, after=version - 1, until=version)
    except BoardUnavailable:
        return  # deleted since: publish_board_removed() tells its spectators
    if not frames:
        logger.error("change-set board=%s version=%s has no record; relays will resync", board_id, version)
        return
    frame = frames[0]
    send_to_board(
        board_id=board_id,
        message={
            "type": UPDATE,
            "board_id": board_id,
            "version": frame.version,
            "text": frame.text,
            "public": frame.public,
            "slug": frame.slug,
        },
    )


def publish_board_removed(*, board_id: int) -> None:
    send_to_board(board_id=board_id, message={"type": REMOVED, "board_id": board_id})


def send_to_board(*, board_id: int, message: dict[str, Any]) -> None:
    """Send one message to a board's group; a failure is logged, never raised."""
    _send(
        Board.group_name_for(board_id),
        message,
        unsent=f"board={board_id} version={message.get('version')} not sent",
        meanwhile="relays will read it from the database",
    )


def relay_to_member(*, user_id: int, event: str, payload: dict[str, Any]) -> bool:
    """Send `{"type": "member", "event": event, "payload": payload}` to every open socket of
    the user, in every server process (Pusher's relayToMember), from synchronous code.

    The frame is validated and encoded once here (InvalidMemberMessage says what is wrong).
    Returns whether the channel layer took it; a failure is logged, never raised.
    """
    text = member_frame(event=event, payload=payload)
    message = {"type": MEMBER, "user_id": user_id, "text": text}
    return _send(member_group_name(user_id), message, unsent=f"member={user_id} event={event} not sent")


def relay_access_changed(*, user_ids: Iterable[int], moved: dict[str, str] | None = None) -> None:
    """Tell the relays holding sockets of these users to check their access to private boards
    again; `moved` maps session keys to the new keys of the same sessions (a password change)."""
    for user_id in sorted(set(user_ids)):
        _send(
            member_group_name(user_id),
            {"type": ACCESS, "user_id": user_id, "moved": moved or {}},
            unsent=f"access change of member={user_id} not sent",
            meanwhile="relays check their members again after an outage they notice",
        )


def reaches_other_processes() -> bool:
    """Whether a message sent from this process can reach a server process's sockets."""
    return not isinstance(get_channel_layer(), InMemoryChannelLayer)


def _send(group: str, message: dict[str, Any], *, unsent: str, meanwhile: str = "") -> bool:
    """Send one message to a group (True); a failure is logged on one line, never raised."""
    try:
        _run(_group_send, get_channel_layer(), group, message)
    except Exception as exc:  # noqa: BLE001 - any broker failure must not fail the save
        logger.error(
            "channel layer unavailable: %s (%s: %s)%s",
            unsent,
            type(exc).__name__,
            exc or "timed out",
            f"; {meanwhile}" if meanwhile else "",
        )
        return False
    return True


def _run(send, *args) -> None:
    """Run a send from synchronous code: on the server's event loop within a request (as
    `async_to_sync` does), else on this process's one publishing loop.

    `async_to_sync` outside a server makes a new event loop per call, and channels-redis a
    new Redis connection per loop: every change a writer process (`manage.py simulate`, a
    script, a cron job) published cost a connection to Redis and about 2 ms more.
    """
    local = SyncToAsync.threadlocal
    server_loop = getattr(local, "main_event_loop", None)  # left set by asgiref once its call ended
    if (
        server_loop is not None
        and server_loop.is_running()
        and getattr(local, "main_event_loop_pid", None) == os.getpid()
    ):
        async_to_sync(send)(*args)
    else:
        asyncio.run_coroutine_threadsafe(send(*args), _publishing_loop()).result()


_publishing: tuple[int, asyncio.AbstractEventLoop, threading.Thread] | None = None
_publishing_lock = threading.Lock()


def _publishing_loop() -> asyncio.AbstractEventLoop:
    """This process's publishing loop, in a daemon thread of its own (made again after a fork)."""
    global _publishing
    with _publishing_lock:
        if _publishing is None or _publishing[0] != os.getpid() or not _publishing[2].is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="channel-layer publisher", daemon=True)
            thread.start()
            _publishing = (os.getpid(), loop, thread)
        return _publishing[1]


async def _group_send(layer, group: str, message: dict[str, Any]) -> None:
    async with asyncio.timeout(settings.LIVE_PUBLISH_TIMEOUT):
        try:
            await layer.group_send(group, message)
        except Exception:  # noqa: BLE001
            # A pooled connection from before a Redis restart fails once, then is replaced.
            # A message sent twice is harmless: relays drop versions they already have.
            await layer.group_send(group, message)
