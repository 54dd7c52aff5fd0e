"""A database too busy to take a write answers "not saved, try again" (503), not a bare 500.

A write waits `DATABASE_LOCK_WAIT` seconds for another writer's lock (SQLite's busy timeout,
PostgreSQL's lock_timeout); past that it fails with OperationalError. Views that write run in
one transaction (the admin's do), so the refused request has written nothing: this middleware
only turns the error into templates/503.html with a Retry-After header. Other database errors
stay errors.
"""

import logging

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.deprecation import MiddlewareMixin

logger = logging.getLogger(__name__)

SQLITE_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)
# lock_not_available (lock_timeout), deadlock_detected, serialization_failure
POSTGRESQL_BUSY = {"55P03", "40P01", "40001"}
RETRY_AFTER = 5  # seconds, a hint for the person saving


def is_busy(error: BaseException) -> bool:
    """Did this error come from a lock the database could not get in time?"""
    if not isinstance(error, OperationalError):
        return False
    cause = error.__cause__
    code = getattr(cause, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in SQLITE_BUSY
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in POSTGRESQL_BUSY
    return "database is locked" in str(error)


class BusyDatabaseMiddleware(MiddlewareMixin):
    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_busy(exception):
            return None
        logger.warning("%s %s not done, the database is busy: %s", request.method, request.path, exception)
        response = render(request, "503.html", {"retry_after": RETRY_AFTER}, status=503)
        response["Retry-After"] = str(RETRY_AFTER)
        return response
