"""Let Daphne send the RFC 6455 close codes our protocol uses (1001, 1003, 1008, 1009, ...).

Autobahn's public `sendClose()` accepts only 1000 and 3000-4999 (django/daphne#374,
crossbario/autobahn-python#1642), although RFC 6455 section 7.4.1 lets a server send these.
Without this, `close(code=1003)` from a consumer raises inside Daphne and the client sees
1011. Remove once Daphne passes them through.

Autobahn also answers a transport-level violation (invalid UTF-8, a frame or message over
--websocket-max-message-size) by dropping the TCP connection, which a client sees as 1006.
With `failByDrop` off it sends the close code first (1007, 1009), as our protocol documents.

`close_websockets_on_shutdown()` makes a stopping Daphne say goodbye with 1001 instead of
dropping its sockets, so clients reconnect at once to another process.
"""

import time

SERVER_CLOSE_CODES = frozenset({1001, 1003, 1007, 1008, 1009, 1011, 1012, 1013})


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
