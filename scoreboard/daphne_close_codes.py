"""Let Daphne send the RFC 6455 close codes our protocol uses (1001, 1003, 1008, 1009, ...).

Autobahn's public `sendClose()` accepts only 1000 and 3000-4999 (django/daphne#374,
crossbario/autobahn-python#1642), although RFC 6455 section 7.4.1 lets a server send these.
Without this, `close(code=1003)` from a consumer raises inside Daphne and the client sees
1011. Remove once Daphne passes them through.

Autobahn also answers a transport-level violation (invalid UTF-8, a frame or message over
--websocket-max-message-size) by dropping the TCP connection, which a client sees as 1006.
With `failByDrop` off it sends the close code first (1007, 1009), as our protocol documents.
"""

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
