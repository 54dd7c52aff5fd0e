"""Just enough of the Socket.IO wire protocol (Engine.IO 4 over a WebSocket) for the bench.

A Socket.IO connection opens with Engine.IO's "0{...}", the client joins the default
namespace with "40" and is answered "40{...}"; events are "42[name, data]"; the server
pings with "2" and wants "3" back.
"""

import json
from urllib.parse import urlsplit


def socketio_url(url: str, **query: str) -> str:
    """`sio+ws://host:port/` -> the WebSocket URL of Engine.IO 4's websocket transport."""
    parts = urlsplit(url.removeprefix("sio+"))
    extra = "".join(f"&{key}={value}" for key, value in query.items())
    return f"{parts.scheme}://{parts.netloc}/socket.io/?EIO=4&transport=websocket{extra}"


def event(name: str, data) -> str:
    return "42" + json.dumps([name, data], separators=(",", ":"))


def message_text(packet: str) -> str | None:
    """The text of a "message" event, or None for any other packet."""
    if packet.startswith("42"):
        name, data = json.loads(packet[2:])
        if name == "message":
            return data
    return None


def handshake_sync(websocket) -> None:
    assert websocket.recv(timeout=30).startswith("0")
    websocket.send("40")
    assert websocket.recv(timeout=30).startswith("40")


async def handshake(websocket) -> None:
    assert (await websocket.recv()).startswith("0")
    await websocket.send("40")
    assert (await websocket.recv()).startswith("40")
