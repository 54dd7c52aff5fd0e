"""The reference: a minimal broadcast server written with the `websockets` package alone.

Spectators get a snapshot line, then every frame a publisher sends to /publish. It does
nothing our server does not have to do, so its latency is the floor we compare against.
"""

import asyncio
import json
import sys

from websockets.asyncio.server import broadcast, serve

spectators: set = set()
snapshot = '{"type":"snapshot","version":0,"players":[]}'


async def handler(websocket) -> None:
    global snapshot
    if websocket.request.path == "/publish":
        async for frame in websocket:
            snapshot = json.dumps(
                {"type": "snapshot", "version": json.loads(frame)["version"], "players": []}
            )
            broadcast(spectators, frame)
        return
    await websocket.send(snapshot)
    spectators.add(websocket)
    try:
        await websocket.wait_closed()
    finally:
        spectators.discard(websocket)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, backlog=4096, ping_interval=None) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
