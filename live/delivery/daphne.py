"""What we add to Daphne, installed once by `install()` from scoreboard/asgi.py.

Under another ASGI server `install()` does nothing and the app runs as it is. Each addition
says when it can go:

- **RFC 6455 close codes.** Our protocol closes with 1001, 1003, 1008, 1009, 1013.
  Autobahn's public `sendClose()` accepts only 1000 and 3000-4999 (django/daphne#374,
  crossbario/autobahn-python#1642), so `close(code=1003)` raised inside Daphne and the client
  saw 1011. With `failByDrop` off, autobahn also sends 1007/1009 before dropping a peer that
  broke the transport rules, instead of a bare 1006. Remove once Daphne passes them through.
- **1001 on shutdown.** Daphne has no lifespan and drops its sockets when it stops; on
  SIGTERM every WebSocket is closed with 1001 first, so clients reconnect at once elsewhere.
- **A send-buffer cap.** Daphne never applies back-pressure to WebSocket sends: a spectator
  that stops reading makes Twisted buffer every later frame in the server's memory. Once a
  socket's unsent bytes pass `limit` (plus its largest single message, e.g. a big board's
  snapshot) it is closed with 1013 (docs/BENCHMARKS.md).
- **The same cap for event streams.** A Server-Sent Events response (live/delivery/events.py)
  is written through Daphne's HTTP protocol, which has no back-pressure either: a stream
  whose unsent bytes pass the same limit is dropped (the client resumes with Last-Event-ID).
- **Inbound-only message size.** `--websocket-max-message-size` becomes autobahn's
  `maxMessagePayloadSize`, which autobahn checks in `sendMessage()` too: the 4 KiB we allow
  spectators capped every snapshot at about 80 players. The limit is lifted while a send
  runs (sends are synchronous on the reactor thread, so no received frame slips through).
  Remove once autobahn limits sent messages separately.
"""

import functools
import logging
import time

from zope.interface import implementer

from live.delivery.protocol import CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER, SERVER_CLOSE_CODES

logger = logging.getLogger(__name__)

# How long a stopping server waits for clients to answer its close frames.
SHUTDOWN_GRACE = 2.0


def install(*, send_buffer_limit: int, shutdown_grace: float = SHUTDOWN_GRACE) -> None:
    """Patch Daphne's WebSocket protocol and factory, once; 0 disables the send-buffer cap."""
    try:
        from daphne.http_protocol import WebRequest
        from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
        from twisted.internet import reactor
        from twisted.internet.interfaces import IPushProducer
    except ImportError:  # served by another ASGI server
        return
    if getattr(WebSocketProtocol, "scoreboard_installed", False):
        return

    @implementer(IPushProducer)
    class SendBufferGuard:
        """Twisted pauses a transport's producer once `bufferSize` bytes wait for the kernel."""

        def __init__(self, protocol) -> None:
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

    @implementer(IPushProducer)
    class StreamGuard:
        """The SendBufferGuard of an event stream: the request's producer, paused by Twisted's
        HTTP channel when the transport holds more than `bufferSize` unsent bytes."""

        def __init__(self, request) -> None:
            self.request = request
            self.dropped = False

        def pauseProducing(self) -> None:  # noqa: N802 - Twisted's name
            channel = self.request.channel
            if self.dropped or channel is None or channel.transport is None:
                return
            self.dropped = True
            logger.warning("closing an event stream that stopped reading (%s)", self.request.client_addr)
            # Its backlog goes with it; the client reconnects and resumes from its last event.
            channel.transport.abortConnection()

        def resumeProducing(self) -> None:  # noqa: N802
            pass

        def stopProducing(self) -> None:  # noqa: N802
            pass

    servers: list = []
    handle_reply = WebRequest.handle_reply
    factory_init = WebSocketFactory.__init__
    on_open = WebSocketProtocol.onOpen
    server_close = WebSocketProtocol.serverClose
    server_send = WebSocketProtocol.serverSend
    send_message = WebSocketProtocol.sendMessage

    def __init__(self, *args, **kwargs):  # noqa: N807 - wraps the factory's own
        factory_init(self, *args, **kwargs)
        self.failByDrop = False

    def onOpen(self):  # noqa: N802 - Daphne's name
        if send_buffer_limit > 0:
            transport = self.transport
            if transport.producer is not None:
                # Twisted's HTTP channel registered itself before the upgrade handed the
                # socket over to the WebSocket protocol; it has nothing left to produce.
                transport.unregisterProducer()
            transport.bufferSize = send_buffer_limit
            transport.registerProducer(SendBufferGuard(self), True)
        if self.server not in servers:
            servers.append(self.server)
            reactor.addSystemEventTrigger("before", "shutdown", _going_away, self.server, shutdown_grace)
        on_open(self)
        if getattr(self.server, "going_away", False):
            self.serverClose(code=CLOSE_GOING_AWAY)  # opened while the server stops

    def serverClose(self, code=None):  # noqa: N802
        if code in SERVER_CLOSE_CODES and self.state == self.STATE_OPEN:
            # What sendClose() itself does once it has validated the code.
            self.sendCloseFrame(code=code, isReply=False)
        else:
            server_close(self, code)

    def serverSend(self, content, binary=False):  # noqa: N802
        if self.lagging:
            return  # closing it; frames for it would only fill memory again
        if send_buffer_limit > 0 and len(content) * 4 > send_buffer_limit:
            # Perhaps over the limit once encoded (UTF-8: up to 4 bytes a character). One
            # message bigger than the limit is not a backlog: count the bytes beyond it.
            size = len(content) if binary else len(content.encode())
            self.transport.bufferSize = max(self.transport.bufferSize, send_buffer_limit + size)
        return server_send(self, content, binary)

    def guarded_reply(self, message):
        if send_buffer_limit > 0 and self.channel is not None and not self.finished:
            if message["type"] == "http.response.start" and _is_event_stream(message):
                self.channel.transport.bufferSize = send_buffer_limit
                self.registerProducer(StreamGuard(self), True)
                self.stream_guarded = True
            elif message["type"] == "http.response.body" and self.stream_guarded:
                size = len(message.get("body", b""))
                if size > send_buffer_limit:  # one big event (a snapshot) is not a backlog
                    transport = self.channel.transport
                    transport.bufferSize = max(transport.bufferSize, send_buffer_limit + size)
                if not message.get("more_body", False):
                    self.unregisterProducer()
                    self.stream_guarded = False
        return handle_reply(self, message)

    @functools.wraps(send_message)
    def sendMessage(self, *args, **kwargs):  # noqa: N802 - autobahn's name
        inbound_limit, self.maxMessagePayloadSize = self.maxMessagePayloadSize, 0
        try:
            return send_message(self, *args, **kwargs)
        finally:
            self.maxMessagePayloadSize = inbound_limit

    if "maxMessagePayloadSize" not in getattr(WebSocketProtocol, "CONFIG_ATTRS", ()):
        logger.warning("autobahn has no maxMessagePayloadSize any more: check its send limit")
    WebRequest.handle_reply = guarded_reply
    WebRequest.stream_guarded = False
    WebSocketFactory.__init__ = __init__
    WebSocketProtocol.onOpen = onOpen
    WebSocketProtocol.serverClose = serverClose
    WebSocketProtocol.serverSend = serverSend
    WebSocketProtocol.sendMessage = sendMessage
    WebSocketProtocol.lagging = False
    WebSocketProtocol.send_buffer_limit = send_buffer_limit
    WebSocketProtocol.scoreboard_installed = True


def _is_event_stream(message: dict) -> bool:
    return any(
        name.lower() == b"content-type" and value.startswith(b"text/event-stream")
        for name, value in message.get("headers", [])
    )


def _going_away(server, grace: float):
    """Close every open WebSocket with 1001; the shutdown waits (up to `grace`) for answers."""
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet import defer, reactor

    server.going_away = True
    sockets = [p for p in list(server.connections) if isinstance(p, WebSocketProtocol)]
    for socket in sockets:
        if socket.state == socket.STATE_OPEN:
            socket.serverClose(code=CLOSE_GOING_AWAY)
    closed = defer.Deferred()
    deadline = time.monotonic() + grace

    def check() -> None:
        if all(s.state == s.STATE_CLOSED for s in sockets) or time.monotonic() > deadline:
            closed.callback(None)
        else:
            reactor.callLater(0.05, check)  # the shutdown waits on this Deferred

    check()
    return closed
