"""The production database: MariaDB / MySQL through pymysql, with the exact schema of contracts.md §1.

A batch is one transaction, retried whole (with a new connection) after a lost connection or a
deadlock; a named lock per wiki keeps two runs from overlapping. Credentials come from the URL, the
environment (LINKREC_DB_USER / LINKREC_DB_PASSWORD) or a MySQL option file, and are never printed."""

from __future__ import annotations

import logging
import os
from urllib.parse import parse_qs, unquote

import pymysql

from sinks.base import LINK, SinkError, SinkUnusable, Task, backoff, parse_url, redact
from sinks.table import STATE, SUBMISSIONS, SqlDatabase

log = logging.getLogger(__name__)



def recommendations_schema(table: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {table} (
  gelr_revision INT UNSIGNED NOT NULL,
  gelr_page INT UNSIGNED NOT NULL,
  gelr_data MEDIUMBLOB DEFAULT NULL,
  PRIMARY KEY (gelr_revision),
  INDEX gelr_page (gelr_page)
)"""


SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS {SUBMISSIONS} (
  gels_revision INT UNSIGNED NOT NULL,
  gels_target INT UNSIGNED NOT NULL,
  gels_anchor_offset INT UNSIGNED NOT NULL,
  gels_anchor_length INT UNSIGNED NOT NULL,
  gels_page INT UNSIGNED NOT NULL,
  gels_edit_revision INT UNSIGNED DEFAULT NULL,
  gels_user INT UNSIGNED NOT NULL,
  gels_feedback VARCHAR(1) NOT NULL,
  PRIMARY KEY (gels_revision, gels_target, gels_anchor_offset),
  INDEX gels_page_feedback_target (gels_page, gels_feedback, gels_target)
)""",
    f"""CREATE TABLE IF NOT EXISTS {STATE} (
  wiki VARBINARY(64) NOT NULL,
  name VARBINARY(64) NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (wiki, name)
)""",
]
# Lost connection, server gone, connection killed, cannot connect, deadlock, lock wait timeout,
# statement timeout (max_statement_time).
RETRYABLE = {1205, 1213, 1927, 1969, 2003, 2006, 2013, 2055, 4031}
LOCKED = {1205, 1969}
# Wrong user or password, no access to the database, unknown database, unknown host: a re-run fails alike.
UNUSABLE = {1044, 1045, 1049, 2005}


def is_mysql_url(url: str) -> bool:
    return url.split("://", 1)[0] in ("mysql", "mariadb")


def connection_options(url: str) -> dict:
    """pymysql.connect arguments from mysql://[user[:password]@]host[:port]/database[?read_default_file=…]
    (the password raw or percent-encoded, any character allowed)."""
    parts = parse_url(url)
    if not is_mysql_url(url) or not parts.path.strip("/"):
        raise SinkUnusable(f"database URL {redact(url)!r}: expected mysql://[user[:password]@]host[:port]/database")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    options = {"database": unquote(parts.path.strip("/")), "autocommit": False, "charset": "utf8mb4",
               "connect_timeout": 10}
    if parts.host:
        options["host"] = parts.host.strip("[]")
    if parts.port:
        options["port"] = parts.port
    user = parts.user or os.environ.get("LINKREC_DB_USER")
    password = parts.password if parts.password is not None else os.environ.get("LINKREC_DB_PASSWORD")
    if user:
        options["user"] = user
    if password is not None:
        options["password"] = password
    if "read_default_file" in query:
        options["read_default_file"] = os.path.expanduser(query["read_default_file"])
    if "unix_socket" in query:
        options["unix_socket"] = query["unix_socket"]
    return options


def _code(exc: Exception) -> int | None:
    if isinstance(exc, pymysql.err.InterfaceError):
        return 2013  # pymysql's "connection already closed"
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


class MariaDbDatabase(SqlDatabase):
    mark = "%s"

    def __init__(self, url: str, wiki: str, retries: int = 5, backoff_seconds: float = 0.5, lock: bool = True,
                 timeout: float = 60.0, task: Task = LINK):
        self.task = task
        self.url = url
        self.lock = lock
        self.timeout = timeout
        # a read that hangs longer than any statement may run is a lost connection
        wait = int(timeout) + 30
        self.options = {**connection_options(url), "read_timeout": wait, "write_timeout": wait}
        # one lock per wiki and task: the orphan task's run does not wait for the link task's
        self.lock_name = f"linkrec:{self.options['database']}:{wiki}" + ("" if task == LINK else f":{task.name}")
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.retried = 0
        self.connection = None
        self._with_retries(self._connect)
        if lock:
            self.transaction(lambda cursor: [cursor.execute(statement)
                                             for statement in [recommendations_schema(task.table), *SCHEMA]])

    def _connect(self):
        if self.connection is not None:
            try:
                self.connection.close()
            except pymysql.err.Error:
                pass
            self.connection = None
        try:
            connection = pymysql.connect(**self.options)
        except pymysql.err.OperationalError as exc:
            if _code(exc) in RETRYABLE:
                raise
            kind = SinkUnusable if _code(exc) in UNUSABLE else SinkError
            raise kind(f"{redact(self.url)}: cannot connect: {exc.args[-1]}") from None
        self._limit_waits(connection)
        granted = 1
        if self.lock:
            with connection.cursor() as cursor:
                cursor.execute("SELECT GET_LOCK(%s, 0)", (self.lock_name,))
                (granted,) = cursor.fetchone()
        if granted != 1:
            connection.close()
            raise SinkError(f"{redact(self.url)}: another linkrec run holds the lock {self.lock_name!r}; "
                            "two runs for the same wiki must not overlap")
        self.connection = connection

    def _limit_waits(self, connection) -> None:
        """Lock waits and statements end after `timeout` seconds (the server's default lock wait is a day)."""
        seconds = max(1, int(self.timeout))
        with connection.cursor() as cursor:
            cursor.execute(f"SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds}")
            try:
                cursor.execute(f"SET SESSION max_statement_time = {seconds}")  # MariaDB only
            except pymysql.err.Error:
                pass

    def _with_retries(self, step):
        for attempt in range(self.retries + 1):
            try:
                return step()
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError, ConnectionError) as exc:
                code = _code(exc) or 2013
                if code not in RETRYABLE or attempt == self.retries:
                    what = exc.args[-1] if exc.args else exc
                    if code in LOCKED:
                        what = (f"a table stayed locked by another session for more than {self.timeout:g} s "
                                f"(sinks.timeout_seconds): {what}")
                    raise SinkError(f"{redact(self.url)}: {what} (after {attempt + 1} attempts)") from None
                log.warning("database error %s, retrying (%d/%d)", code, attempt + 1, self.retries)
                self.retried += 1
                backoff(attempt, self.backoff_seconds)
                if code not in (1205, 1213):  # a deadlock keeps the connection; anything else gets a new one
                    self._reconnect_safely()

    def _reconnect_safely(self):
        try:
            self._connect()
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError, ConnectionError):
            self.connection = None  # the next attempt connects again

    def transaction(self, work):
        def attempt():
            if self.connection is None:
                self._connect()
            try:
                with self.connection.cursor() as cursor:
                    value = work(cursor)
                self.connection.commit()
                return value
            except BaseException:
                try:
                    self.connection.rollback()
                except pymysql.err.Error:
                    pass
                raise
        return self._with_retries(attempt)

    def write(self, results, force=False):
        before = self.retried
        counts, changes = super().write(results, force)
        counts.retries = self.retried - before
        return counts, changes

    def finish(self) -> None:
        if self.connection is not None:
            try:
                if self.lock:
                    with self.connection.cursor() as cursor:
                        cursor.execute("SELECT RELEASE_LOCK(%s)", (self.lock_name,))
                self.connection.close()
            except pymysql.err.Error:
                pass  # a closed connection has released its lock
            self.connection = None
