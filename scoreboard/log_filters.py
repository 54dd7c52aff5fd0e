"""Logging filters that keep a broker outage to a few readable lines."""

import logging
import time


class QuietRepeats(logging.Filter):
    """One line per distinct message and interval, without the traceback.

    channels-redis' pubsub receive loop logs a full traceback every second while Redis is
    down; the relay already logs the outage and the recovery once each.
    """

    def __init__(self, loggers: tuple[str, ...] = ("channels_redis",), interval: float = 60.0) -> None:
        super().__init__()
        self.loggers, self.interval = tuple(loggers), interval
        self.last_seen: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        # On the handler, since a logger's own filters do not see its children's records.
        if not record.name.startswith(self.loggers):
            return True
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
            record.args = None
            record.exc_info = record.exc_text = None
        key = (record.name, record.getMessage())
        now = time.monotonic()
        if now - self.last_seen.get(key, -self.interval) < self.interval:
            return False
        self.last_seen[key] = now
        return True
