"""Broker outages stay a few readable log lines (scoreboard/log_filters.py)."""

import logging

from scoreboard.log_filters import QuietRepeats


def record(name: str, message: str, error: Exception | None = None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, exc_info)


def test_a_channels_redis_traceback_becomes_one_line():
    line = record("channels_redis.pubsub", "Unexpected exception in receive task", ConnectionError("refused"))
    assert QuietRepeats().filter(line)
    assert line.getMessage() == "Unexpected exception in receive task (ConnectionError: refused)"
    assert line.exc_info is None


def test_a_repeat_within_the_interval_is_dropped_and_logged_again_after_it():
    quiet = QuietRepeats(interval=60)
    assert quiet.filter(record("channels_redis.pubsub", "lost"))
    assert not quiet.filter(record("channels_redis.pubsub", "lost"))
    assert quiet.filter(record("channels_redis.pubsub", "another message"))
    quiet.last_seen = {key: seen - 61 for key, seen in quiet.last_seen.items()}
    assert quiet.filter(record("channels_redis.pubsub", "lost"))


def test_other_loggers_pass_untouched():
    quiet = QuietRepeats()
    for _ in range(3):
        line = record("live.delivery.publish", "channel layer unavailable", ConnectionError("refused"))
        assert quiet.filter(line) and line.exc_info is not None
