"""The embedded default database: an SQLite file with the tables of contracts.md §1 (same semantics as
MariaDB through sinks.table)."""

from __future__ import annotations

import os
import sqlite3

from sinks.base import LINK, SinkUnusable, Task
from sinks.table import SqlDatabase


def recommendations_schema(table: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
  gelr_revision INTEGER NOT NULL PRIMARY KEY CHECK (gelr_revision >= 0),
  gelr_page INTEGER NOT NULL CHECK (gelr_page >= 0),
  gelr_data BLOB DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS {table}_page ON {table} (gelr_page);
"""


def submissions_schema(table: str) -> str:
    # index names are per database in SQLite: the link task's keeps the name it always had
    index = "gels_page_feedback_target" if table == LINK.submissions else f"{table}_page_feedback_target"
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
  gels_revision INTEGER NOT NULL, gels_target INTEGER NOT NULL, gels_anchor_offset INTEGER NOT NULL,
  gels_anchor_length INTEGER NOT NULL, gels_page INTEGER NOT NULL, gels_edit_revision INTEGER DEFAULT NULL,
  gels_user INTEGER NOT NULL, gels_feedback TEXT NOT NULL,
  PRIMARY KEY (gels_revision, gels_target, gels_anchor_offset)
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (gels_page, gels_feedback, gels_target);
"""


STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS linkrec_state (
  wiki TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (wiki, name)
);
"""


def sqlite_path(url: str) -> str:
    if not url.startswith("sqlite:///"):
        raise ValueError(f"{url!r}: expected sqlite:///path/to/file.db")
    return url[len("sqlite:///"):] or ":memory:"


class SqliteDatabase(SqlDatabase):
    mark = "?"

    def __init__(self, url: str, timeout: float = 60.0, task: Task = LINK):
        self.task = task
        path = sqlite_path(url)
        try:
            if path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self.connection = sqlite3.connect(path, timeout=timeout)
            # the link table's index keeps the name it always had
            self.connection.executescript(recommendations_schema(task.table).replace(
                f"{LINK.table}_page ON", "gelr_page ON") + submissions_schema(task.submissions) + STATE_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SinkUnusable(f"{url}: cannot open the SQLite database: {getattr(exc, 'strerror', None) or exc}") \
                from None

    def transaction(self, work):
        with self.connection:  # commits on success, rolls back on an exception
            cursor = self.connection.cursor()
            try:
                return work(cursor)
            finally:
                cursor.close()

    def finish(self) -> None:
        self.connection.close()
