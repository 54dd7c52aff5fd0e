"""A database that stays locked past DATABASE_LOCK_WAIT: a 503 "not saved" page, not a 500."""

import sqlite3
from contextlib import closing

import pytest
from django.db import IntegrityError, OperationalError
from django.test import RequestFactory

from scoreboard.busy_database import BusyDatabaseMiddleware, is_busy


def sqlite_lock_error(tmp_path) -> OperationalError:
    """The error Django raises when another connection holds SQLite's write lock."""
    path = tmp_path / "busy.sqlite3"
    with closing(sqlite3.connect(path)) as holder, closing(sqlite3.connect(path, timeout=0)) as writer:
        holder.execute("create table t (x)")
        holder.execute("begin immediate")
        try:
            writer.execute("begin immediate")
        except sqlite3.OperationalError as locked:
            try:
                raise OperationalError(*locked.args) from locked
            except OperationalError as wrapped:
                return wrapped
    raise AssertionError("the second writer was not refused")


class PostgresqlError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def postgresql_error(sqlstate: str) -> OperationalError:
    try:
        raise OperationalError("canceling statement") from PostgresqlError(sqlstate)
    except OperationalError as wrapped:
        return wrapped


def test_a_locked_sqlite_database_is_busy(tmp_path):
    assert is_busy(sqlite_lock_error(tmp_path))


@pytest.mark.parametrize("sqlstate", ["55P03", "40P01", "40001"])
def test_postgresql_lock_timeouts_and_deadlocks_are_busy(sqlstate):
    assert is_busy(postgresql_error(sqlstate))


@pytest.mark.parametrize(
    "error",
    [postgresql_error("57P01"), OperationalError("no such table: live_board"), IntegrityError("unique")],
    ids=["admin shutdown", "missing table", "integrity"],
)
def test_other_database_errors_are_not_busy(error):
    assert not is_busy(error)


def test_a_busy_database_answers_503_with_our_page(tmp_path):
    request = RequestFactory().post("/admin/live/player/1/change/")
    middleware = BusyDatabaseMiddleware(lambda request: None)
    response = middleware.process_exception(request, sqlite_lock_error(tmp_path))
    assert response.status_code == 503 and response["Retry-After"] == "5"
    body = response.content.decode()
    assert "Not saved: the database is busy" in body and "try again" in body


def test_other_errors_are_left_alone():
    request = RequestFactory().get("/")
    assert BusyDatabaseMiddleware(lambda request: None).process_exception(request, ValueError()) is None
