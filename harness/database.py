"""The committed truth, read straight from SQLite or PostgreSQL."""

import sqlite3


class Database:
    """Reads the committed standings straight from SQLite or PostgreSQL, as the truth."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, sql: str, *params) -> list[tuple]:
        if self.url.startswith("sqlite:"):
            with sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=20) as connection:
                return connection.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(self.url.replace("postgres://", "postgresql://")) as connection:
            return connection.execute(sql, params).fetchall()

    def board(self, slug: str = "demo") -> tuple[int, int]:
        """(id, version) of a board."""
        return self.query("select id, version from live_board where slug = %s", slug)[0]

    def players(self, board_id: int) -> list[dict]:
        rows = self.query("select id, board_id, name, score from live_player where board_id = %s", board_id)
        return [dict(zip(("id", "board_id", "name", "score"), row, strict=True)) for row in rows]

    def standings(self, board_id: int) -> tuple[int, dict[int, int]]:
        """(version, {player id: score}) as committed."""
        version = self.query("select version from live_board where id = %s", board_id)[0][0]
        scores = dict(self.query("select id, score from live_player where board_id = %s", board_id))
        return version, scores
