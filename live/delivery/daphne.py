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
- **Frames written once for all (the seam).** Each WebSocket's scope carries
  `scope["extensions"]["scoreboard.socket"]`, a `DaphneSocket`: the relay frames an update
  once (autobahn's `prepareMessage()`) and writes the same bytes to every local socket,
  straight to the kernel when nothing waits before them (one `send()` per spectator instead
  of Twisted's buffer, `add_writer`, a later write and `remove_writer`), skipping the
  per-spectator ASGI send. Under another server the extension is absent and consumers send
  through ASGI as usual (live/delivery/feed.py).
- **No debug formatting on every connect.** autobahn pretty-prints its ~30 settings for a
  debug line on every new connection, then drops the line at any other log level: 14 % of a
  connect storm's event-loop time in a profile. It now formats only while debugging.
- **Event streams: the same seam and the same cap.** Each HTTP scope carries its Daphne
  request (`scope["extensions"]["scoreboard.request"]`); a Server-Sent Events response
  (live/delivery/events.py) wraps it in a `DaphneStream`, which writes each update as an
  HTTP chunk made once for all streams from the message the WebSockets share. Daphne's
  HTTP protocol has no back-pressure either: a stream whose unsent bytes pass the same
  limit is dropped (the client resumes with Last-Event-ID).
- **Inbound-only message size.** `--websocket-max-message-size` becomes autobahn's
  `maxMessagePayloadSize`, which autobahn checks in `sendMessage()` too: the 4 KiB we allow
  spectators capped every snapshot at about 80 players. The limit is lifted while a send
  runs (sends are synchronous on the reactor thread, so no received frame slips through).
  Remove once autobahn limits sent messages separately.
- **Hostile HTTP clients** (`limit_http()`, docs/RELIABILITY.md "Hostile clients"). Twisted
  only drops a connection idle for 60 s, so a client sending one header line and nothing
  more held a descriptor for a minute, and one dripping a byte a minute for hours. A request
  whose headers are not complete `header_timeout` seconds after the connection opened (or
  its previous response was sent) is dropped. Daphne reads a whole request body before the
  application sees it (in memory up to 100 KB, then in a temporary file): a body announced
  or grown past `max_request_body` bytes is refused with 413 and its connection closed
  before the rest is read. One peer address may hold `connections_per_address` open
  connections; more are closed at accept, so one client cannot take every descriptor.
  Trusted proxies (a Unix-socket peer, or `is_trusted_proxy(host)`) are not limited here.
"""

import functools
import logging
import pprint
import time

from zope.interface import implementer

from live.delivery.protocol import CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER, SERVER_CLOSE_CODES

logger = logging.getLogger(__name__)

# How long a stopping server waits for clients to answer its close frames.
SHUTDOWN_GRACE = 2.0
SOCKET_EXTENSION = "scoreboard.socket"
REQUEST_EXTENSION = "scoreboard.request"


class DaphneSocket:
    """One connection's Daphne socket: write frames encoded and framed once for all."""

    __slots__ = ("protocol",)

    def __init__(self, protocol) -> None:
        self.protocol = protocol

    @property
    def open(self) -> bool:
        protocol = self.protocol
        return protocol.state == protocol.STATE_OPEN and not protocol.lagging

    def prepare(self, text: str):
        """Frame a message once, for every socket of this server."""
        return self.protocol.factory.prepareMessage(text.encode())

    def send(self, prepared) -> None:
        protocol = self.protocol
        if protocol._perMessageCompress is not None:  # negotiated compression frames per socket
            protocol.sendPreparedMessage(prepared)
            return
        limit = protocol.send_buffer_limit
        if 0 < limit < len(prepared.payload):
            _allow_one_large_message(protocol, len(prepared.payload))
        write_now(protocol.transport, prepared.payloadHybi)


class DaphneStream:
    """One Server-Sent Events response's connection: events written straight to it.

    `prepare()` makes the same message as DaphneSocket.prepare(), so a frame prepared for a
    WebSocket serves the streams too, and the other way round; each prepared message keeps
    its event (`encode(payload)`) and that event's HTTP chunk, made once for all streams.
    """

    __slots__ = ("encode", "last_write", "request")

    def __init__(self, request, *, encode) -> None:
        self.request = request
        self.encode = encode
        self.last_write = 0.0

    @property
    def open(self) -> bool:
        request = self.request
        return (
            request.channel is not None
            and request.startedWriting
            and not request.finished
            and not request.stream_dropped
        )

    def prepare(self, text: str):
        from autobahn.websocket.protocol import PreparedMessage

        return PreparedMessage(text.encode(), False, False, False)  # a server's: unmasked

    def send(self, prepared) -> None:
        event = getattr(prepared, "event", None)
        if event is None:
            event = prepared.event = self.encode(prepared.payload)
            prepared.event_chunk = b"%x\r\n%s\r\n" % (len(event), event)
        request = self.request
        data = prepared.event_chunk if request.chunked else event
        transport = request.channel.transport
        limit = request.send_buffer_limit
        if limit > 0 and len(data) > limit:  # one big event (a snapshot) is not a backlog
            transport.bufferSize = max(transport.bufferSize, limit + len(data))
        write_now(transport, data)
        self.last_write = time.monotonic()


def write_now(transport, data: bytes) -> None:
    """Write to the socket at once when nothing waits before it; Twisted buffers the rest.

    Twisted's `write()` never writes immediately: it buffers, registers the socket with the
    event loop and writes on the next turn. With an empty buffer one `send()` does it all.
    """
    try:
        idle = (
            transport.connected
            and not transport.disconnecting
            and not transport._writeDisconnected
            and not transport._tempDataLen
            and len(transport.dataBuffer) == transport.offset
        )
        socket = transport.socket
    except AttributeError:  # not a plain TCP transport (TLS, another reactor): the usual way
        transport.write(data)
        return
    written = 0
    if idle:
        # What Twisted's writeSomeData() does, without its wrappers (a memoryview slice and a
        # retry loop per call): Python retries EINTR by itself.
        try:
            written = socket.send(data)
        except OSError:  # would block, or the connection is lost: Twisted's own write finds out
            written = 0
    if written < len(data):
        transport.write(data[written:])


def _allow_one_large_message(protocol, size: int) -> None:
    # One message bigger than the send-buffer limit (a big board's snapshot) is not a
    # backlog: the cap counts the unsent bytes beyond the largest message sent on the socket.
    limit = protocol.send_buffer_limit
    if limit > 0 and size > limit:
        protocol.transport.bufferSize = max(protocol.transport.bufferSize, limit + size)


def install(
    *,
    send_buffer_limit: int,
    shutdown_grace: float = SHUTDOWN_GRACE,
    header_timeout: float = 0,
    max_request_body: int = 0,
    connections_per_address: int = 0,
    is_trusted_proxy=lambda host: False,
) -> None:
    """Patch Daphne's protocols and factories, once; 0 disables a limit."""
    try:
        import txaio
        from autobahn.websocket import protocol as autobahn_protocol
        from daphne.http_protocol import WebRequest
        from daphne.server import Server
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
            self.dropped = self.request.stream_dropped = True
            logger.warning("closing an event stream that stopped reading (%s)", self.request.client_addr)
            # Its backlog goes with it; the client reconnects and resumes from its last event.
            channel.transport.abortConnection()

        def resumeProducing(self) -> None:  # noqa: N802
            pass

        def stopProducing(self) -> None:  # noqa: N802
            pass

    servers: list = []
    create_application = Server.create_application
    handle_reply = WebRequest.handle_reply
    factory_init = WebSocketFactory.__init__
    on_open = WebSocketProtocol.onOpen
    server_close = WebSocketProtocol.serverClose
    server_send = WebSocketProtocol.serverSend
    send_message = WebSocketProtocol.sendMessage

    def create_application_with_socket(self, protocol, scope):
        if scope.get("type") == "websocket":
            scope.setdefault("extensions", {})[SOCKET_EXTENSION] = DaphneSocket(protocol)
        elif scope.get("type") == "http":
            scope.setdefault("extensions", {})[REQUEST_EXTENSION] = protocol
        return create_application(self, protocol, scope)

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
        if code in SERVER_CLOSE_CODES:
            # What sendClose() itself does once it has validated the code. Already closing (a
            # flood's queued frames each close again): nothing to send, as sendClose() would do.
            if self.state == self.STATE_OPEN:
                self.sendCloseFrame(code=code, isReply=False)
        else:
            server_close(self, code)

    def serverSend(self, content, binary=False):  # noqa: N802
        if self.lagging:
            return  # closing it; frames for it would only fill memory again
        if send_buffer_limit > 0 and len(content) * 4 > send_buffer_limit:
            # Perhaps over the limit once encoded (UTF-8: up to 4 bytes a character).
            _allow_one_large_message(self, len(content) if binary else len(content.encode()))
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

    def pformat_when_debugging(obj, *args, **kwargs) -> str:
        try:
            debugging = txaio.get_global_log_level() in ("debug", "trace")
        except Exception:  # noqa: BLE001 - logging not set up by txaio: format as autobahn did
            debugging = True
        return pprint.pformat(obj, *args, **kwargs) if debugging else "(formatted only when debugging)"

    if "maxMessagePayloadSize" not in getattr(WebSocketProtocol, "CONFIG_ATTRS", ()):
        logger.warning("autobahn has no maxMessagePayloadSize any more: check its send limit")
    patch(WebRequest, handle_reply=guarded_reply, stream_guarded=False, stream_dropped=False)
    patch(WebRequest, send_buffer_limit=send_buffer_limit)
    autobahn_protocol.pformat = pformat_when_debugging
    Server.create_application = create_application_with_socket
    WebSocketFactory.__init__ = __init__
    patch(WebSocketProtocol, onOpen=onOpen, serverClose=serverClose, serverSend=serverSend)
    patch(WebSocketProtocol, sendMessage=sendMessage, lagging=False, send_buffer_limit=send_buffer_limit)
    limit_http(
        header_timeout=header_timeout,
        max_request_body=max_request_body,
        connections_per_address=connections_per_address,
        is_trusted_proxy=is_trusted_proxy,
    )
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


def limit_http(
    *, header_timeout: float, max_request_body: int, connections_per_address: int, is_trusted_proxy
):
    """Header deadline, body limit and connections per peer address (see the module docstring)."""
    from daphne.http_protocol import HTTPFactory, WebRequest
    from twisted.internet import reactor

    from live.delivery.guards import RefusalLog

    refusals = RefusalLog("connection")
    build_protocol = HTTPFactory.buildProtocol
    got_length = WebRequest.gotLength
    handle_content_chunk = WebRequest.handleContentChunk
    process_request = WebRequest.process
    finish_request = WebRequest.finish
    open_by_host: dict[str, list] = {}

    def await_headers(transport) -> None:
        if header_timeout > 0:
            transport.scoreboard_headers_due = reactor.callLater(header_timeout, headers_late, transport)

    def headers_late(transport) -> None:
        if getattr(transport, "connected", False) and not getattr(transport, "disconnecting", True):
            refusals.note("slow", f"request headers not complete within {header_timeout:g} s")
            transport.abortConnection()

    def headers_done(transport) -> None:
        due = getattr(transport, "scoreboard_headers_due", None)
        if due is not None and due.active():
            due.cancel()

    sweep_at = 1000

    def too_many(host: str) -> bool:
        nonlocal sweep_at
        held = open_by_host[host] = [t for t in open_by_host.get(host, ()) if t.connected]
        if len(open_by_host) > sweep_at:  # forget peers whose connections all closed
            for other in [h for h, ts in open_by_host.items() if not any(t.connected for t in ts)]:
                del open_by_host[other]
            sweep_at = max(1000, 2 * len(open_by_host))
        return len(held) >= connections_per_address

    def buildProtocol(self, addr):  # noqa: N802 - Twisted's name
        host = getattr(addr, "host", None)  # None on a Unix socket: the peer is a local proxy
        limited = connections_per_address > 0 and host is not None and not is_trusted_proxy(host)
        if limited and too_many(host):
            refusals.note("busy", f"{host} holds {connections_per_address} open already")
            return None  # Twisted closes the socket at once
        protocol = build_protocol(self, addr)
        make_connection = protocol.makeConnection

        def makeConnection(transport):  # noqa: N802
            # Once only: this closure holds the protocol, which holds it (a reference cycle
            # that only a full collection frees; live/delivery/collector.py).
            del protocol.makeConnection
            if limited:
                open_by_host.setdefault(host, []).append(transport)
            await_headers(transport)
            make_connection(transport)

        protocol.makeConnection = makeConnection
        return protocol

    def refuse(request, why: str) -> None:
        refusals.note("body", f"request body too large ({why})")
        request.scoreboard_refused = True
        request.requestHeaders.removeHeader(b"Expect")  # no "100 Continue" after the refusal
        body = f"Request body too large: {why}, the limit is {max_request_body} bytes.\n".encode()
        request.channel.transport.write(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        request.channel.loseConnection()  # stops reading: the rest of the body is never read

    def gotLength(self, length):  # noqa: N802
        headers_done(self.channel.transport)
        if max_request_body > 0 and length is not None and length > max_request_body:
            refuse(self, f"{length} bytes announced")
        got_length(self, 0 if self.scoreboard_refused else length)

    def handleContentChunk(self, data):  # noqa: N802
        if self.scoreboard_refused:
            return
        self.scoreboard_received += len(data)
        if max_request_body > 0 and self.scoreboard_received > max_request_body:
            refuse(self, f"over {self.scoreboard_received} bytes sent")
            return
        handle_content_chunk(self, data)

    def process(self):
        if self.scoreboard_refused:
            return None
        result = process_request(self)
        channel = self.channel
        if self.transport is None and channel is not None and self in channel.requests:
            # Upgraded to a WebSocket (Daphne handed the transport over): the HTTP channel and
            # this request now only hold each other. Unlinked, both go at once instead of
            # waiting as garbage for a full collection (live/delivery/collector.py).
            channel.requests.remove(self)
        return result

    def finish(self):
        channel = self.channel
        if channel is not None and channel.transport is not None:
            await_headers(channel.transport)  # the next request on this connection; its headers cancel it
        return finish_request(self)

    HTTPFactory.buildProtocol = buildProtocol
    patch(
        WebRequest, gotLength=gotLength, handleContentChunk=handleContentChunk, process=process, finish=finish
    )
    patch(WebRequest, scoreboard_refused=False, scoreboard_received=0)


def patch(target: type, **attributes) -> None:
    """Set these attributes (methods among them) on one of Daphne's classes."""
    for name, value in attributes.items():
        setattr(target, name, value)
