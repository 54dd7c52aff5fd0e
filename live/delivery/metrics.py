"""Prometheus metrics of the delivery side, served at /metrics (live/views.py).

Each server process counts its own. With `PROMETHEUS_MULTIPROC_DIR` set (deploy/systemd),
prometheus_client's multiprocess mode adds up the processes of a host in one scrape.
"""

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge("scoreboard_connections_open", "Open spectator WebSockets.", multiprocess_mode="livesum")
CONNECTS = Counter("scoreboard_connects", "Spectator WebSockets accepted.")
SPECTATORS = Gauge(
    "scoreboard_spectators", "Spectators per board in this process.", ["board"], multiprocess_mode="livesum"
)
WATCHING = Gauge(
    "scoreboard_watching",
    "Spectators of a board across all server processes, as this process last counted them.",
    ["board"],
    multiprocess_mode="livemax",
)
# kind: "snapshot", "update" or "watching"; path: "direct" when framed once and written
# straight to Daphne's socket, else "asgi".
FRAMES = Counter("scoreboard_frames_sent", "Frames written to spectators.", ["kind", "path"])
FANOUT = Histogram(
    "scoreboard_fanout_seconds",
    "From an update's receipt by the relay to its last socket written.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
RESYNCS = Counter("scoreboard_resyncs", "Snapshots sent after the first one.", ["reason"])
CATCH_UPS = Counter("scoreboard_catch_ups", "Missed versions read from the change records.")
BROKER_UP = Gauge(
    "scoreboard_broker_up",
    "1 while the relay's heartbeat gets through the channel layer.",
    multiprocess_mode="min",
)
