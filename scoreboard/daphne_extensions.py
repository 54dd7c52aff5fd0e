"""Small extensions to Daphne: RFC 6455 close codes, 1001 on shutdown, a send-buffer cap,
and an inbound-only message size limit.

Our protocol closes with 1001, 1003, 1008, 1009, ... Autobahn's public `sendClose()`
accepts only 1000 and 3000-4999 (django/daphne#374, crossbario/autobahn-python#1642),
although RFC 6455 section 7.4.1 lets a server send these.
Without this, `close(code=1003)` from a consumer raises inside Daphne and the client sees
1011. Remove once Daphne passes them through.

Autobahn also answers a transport-level violation (invalid UTF-8, a frame or message over
--websocket-max-message-size) by dropping the TCP connection, which a client sees as 1006.
With `failByDrop` off it sends the close code first (1007, 1009), as our protocol documents.

`close_websockets_on_shutdown()` makes a stopping Daphne say goodbye with 1001 instead of
dropping its sockets, so clients reconnect at once to another process.

Daphne never applies back-pressure to WebSocket sends: a spectator that stops reading makes
Twisted buffer every later frame for it in the server's memory. `cap_send_buffer()` closes
such a laggard instead, once its unsent bytes pass a limit (docs/BENCHMARKS.md); a single
message larger than the limit (a big board's snapshot) raises that socket's limit by its size.

Daphne's `--websocket-max-message-size` becomes autobahn's `maxMessagePayloadSize`, which
autobahn checks in `sendMessage()` too: with the 4 KiB we allow spectators, every snapshot of
a board over about 80 players failed with PayloadExceededError (the client saw 1011).
`limit_inbound_messages_only()` lifts the limit for the duration of each send, so it keeps
guarding what clients send and no longer caps what the server sends.
"""

import functools
import logging
import time

from zope.interface import implementer

logger = logging.getLogger(__name__)

SERVER_CLOSE_CODES = frozenset({1001, 1003, 1007, 1008, 1009, 1011, 1012, 1013})
CLOSE_TRY_AGAIN_LATER = 1013


def allow_rfc6455_close_codes() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # served by another ASGI server
        return
    if getattr(WebSocketProtocol, "rfc6455_close_codes", False):
        return
    server_close = WebSocketProtocol.serverClose

    def serverClose(self, code=None):  # noqa: N802 - Daphne's name
        if code in SERVER_CLOSE_CODES and self.state == self.STATE_OPEN:
            # What sendClose() itself does once it has validated the code.
            self.sendCloseFrame(code=code, isReply=False)
        else:
            server_close(self, code)

    WebSocketProtocol.serverClose = serverClose
    WebSocketProtocol.rfc6455_close_codes = True

    from daphne.ws_protocol import WebSocketFactory

    factory_init = WebSocketFactory.__init__

    def __init__(self, *args, **kwargs):  # noqa: N807 - wraps the factory's own
        factory_init(self, *args, **kwargs)
        self.failByDrop = False

    WebSocketFactory.__init__ = __init__


GOING_AWAY = 1001
# How long a stopping server waits for clients to answer its close frames.
SHUTDOWN_GRACE = 2.0


def close_websockets_on_shutdown(grace: float = SHUTDOWN_GRACE) -> None:
    """On SIGTERM, close every open WebSocket with 1001 (going away) before Daphne exits.

    Daphne has no lifespan and just drops its sockets when it stops, which clients see as
    1006. This adds a "before shutdown" trigger to Twisted's reactor, registered on the
    first WebSocket so that nothing here touches the reactor outside a running Daphne.
    """
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # served by another ASGI server
        return
    if getattr(WebSocketProtocol, "closes_on_shutdown", False):
        return
    allow_rfc6455_close_codes()
    on_open = WebSocketProtocol.onOpen
    servers: list = []

    def onOpen(self):  # noqa: N802 - Daphne's name
        on_open(self)
        if self.server not in servers:
            from twisted.internet import reactor

            servers.append(self.server)
            reactor.addSystemEventTrigger("before", "shutdown", _going_away, self.server, grace)
        if getattr(self.server, "going_away", False):
            self.serverClose(code=GOING_AWAY)  # opened while the server stops

    WebSocketProtocol.onOpen = onOpen
    WebSocketProtocol.closes_on_shutdown = True


def _going_away(server, grace: float):
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet import defer, reactor

    server.going_away = True
    sockets = [p for p in list(server.connections) if isinstance(p, WebSocketProtocol)]
    for socket in sockets:
        if socket.state == socket.STATE_OPEN:
            socket.serverClose(code=GOING_AWAY)
    closed = defer.Deferred()
    deadline = time.monotonic() + grace

    def check() -> None:
        if all(s.state == s.STATE_CLOSED for s in sockets) or time.monotonic() > deadline:
            closed.callback(None)
        else:
            reactor.callLater(0.05, check)  # the shutdown waits on this Deferred

    check()
    return closed


def cap_send_buffer(limit: int) -> None:
    """Close (1013) any WebSocket whose unsent bytes in Twisted's buffer exceed `limit`
    plus the size of the largest message it was sent (when that one is over `limit`).

    Twisted's public producer API does the measuring: a transport pauses its registered
    streaming producer once more than `transport.bufferSize` bytes wait for the kernel, which
    happens only after the kernel's own socket buffer is full. 0 disables the cap.
    """
    try:
        from daphne.ws_protocol import WebSocketProtocol
        from twisted.internet.interfaces import IPushProducer
    except ImportError:
        return
    if limit <= 0 or getattr(WebSocketProtocol, "send_buffer_limit", None) is not None:
        return

    @implementer(IPushProducer)
    class SendBufferGuard:
        def __init__(self, protocol: WebSocketProtocol) -> None:
            self.protocol = protocol

        def pauseProducing(self) -> None:  # noqa: N802 - Twisted's name
            protocol = self.protocol
            if protocol.lagging or protocol.state != protocol.STATE_OPEN:
                return
            protocol.lagging = True
            logger.warning("closing a spectator that stopped reading (%s)", protocol.client_addr)
            # Queued behind the backlog: a slow reader still gets 1013 and reconnects; a
            # stalled one is dropped by autobahn's close-handshake timeout (1 s), buffer and all.
            protocol.sendCloseFrame(code=CLOSE_TRY_AGAIN_LATER, isReply=False)

        def resumeProducing(self) -> None:  # noqa: N802
            pass

        def stopProducing(self) -> None:  # noqa: N802
            pass

    on_open = WebSocketProtocol.onOpen
    server_send = WebSocketProtocol.serverSend

    def onOpen(self):  # noqa: N802
        transport = self.transport
        if transport.producer is not None:
            # Twisted's HTTP channel registered itself before the upgrade handed the socket
            # over to the WebSocket protocol; it has nothing left to produce.
            transport.unregisterProducer()
        transport.bufferSize = limit
        transport.registerProducer(SendBufferGuard(self), True)
        return on_open(self)

    def serverSend(self, content, binary=False):  # noqa: N802
        if self.lagging:
            return  # closing it; frames for it would only fill memory again
        if len(content) * 4 > limit:  # perhaps over the limit once encoded (UTF-8: <= 4 bytes each)
            size = len(content) if binary else len(content.encode())
            # One message bigger than the limit (a big board's snapshot) is not a backlog:
            # the cap counts the unsent bytes beyond the largest message sent on this socket.
            transport = self.transport
            transport.bufferSize = max(transport.bufferSize, limit + size)
        return server_send(self, content, binary)

    WebSocketProtocol.lagging = False
    WebSocketProtocol.onOpen = onOpen
    WebSocketProtocol.serverSend = serverSend
    WebSocketProtocol.send_buffer_limit = limit


def limit_inbound_messages_only() -> None:
    """Apply `--websocket-max-message-size` to received messages only, never to sent ones.

    autobahn keeps one attribute for both directions; sends are synchronous on the reactor
    thread, so setting it to 0 (no limit) while `sendMessage()` runs cannot let a received
    frame through. `--websocket-max-frame-size` needs nothing: autobahn checks it on receipt only.
    Remove once autobahn (or Daphne) limits sent messages separately.
    """
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # served by another ASGI server
        return
    if getattr(WebSocketProtocol, "inbound_only_message_limit", False):
        return
    if "maxMessagePayloadSize" not in getattr(WebSocketProtocol, "CONFIG_ATTRS", ()):
        logger.warning("autobahn has no maxMessagePayloadSize any more: check its send limit")
        return
    send_message = WebSocketProtocol.sendMessage

    @functools.wraps(send_message)
    def sendMessage(self, *args, **kwargs):  # noqa: N802 - autobahn's name
        inbound_limit, self.maxMessagePayloadSize = self.maxMessagePayloadSize, 0
        try:
            return send_message(self, *args, **kwargs)
        finally:
            self.maxMessagePayloadSize = inbound_limit

    WebSocketProtocol.sendMessage = sendMessage
    WebSocketProtocol.inbound_only_message_limit = True
