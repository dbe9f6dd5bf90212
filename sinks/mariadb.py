"""The production database: MariaDB / MySQL through pymysql, with the exact schema of contracts.md §1.

A batch is one transaction, retried whole (with a new connection) after a lost connection or a
deadlock; a named lock per wiki keeps two runs from overlapping. Credentials come from the URL, the
environment (LINKREC_DB_USER / LINKREC_DB_PASSWORD) or a MySQL option file, and are never printed."""

from __future__ import annotations

import logging
import os
import threading
from urllib.parse import parse_qs, unquote

import pymysql

from sinks.base import LINK, SinkError, SinkUnusable, Task, backoff, parse_url, redact
from sinks.table import STATE, SqlDatabase

log = logging.getLogger(__name__)



def recommendations_schema(table: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {table} (
  gelr_revision INT UNSIGNED NOT NULL,
  gelr_page INT UNSIGNED NOT NULL,
  gelr_data MEDIUMBLOB DEFAULT NULL,
  PRIMARY KEY (gelr_revision),
  INDEX gelr_page (gelr_page)
)"""


def submissions_schema(table: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {table} (
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
)"""


STATE_SCHEMA = f"""CREATE TABLE IF NOT EXISTS {STATE} (
  wiki VARBINARY(64) NOT NULL,
  name VARBINARY(64) NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (wiki, name)
)"""
# Lost connection, server gone, connection killed, cannot connect, deadlock, lock wait timeout.
RETRYABLE = {1205, 1213, 1927, 2003, 2006, 2013, 2055, 4031}
LOCKED = {1205}
# max_statement_time exceeded: not retried, the same statement on the same data would be slow again
SLOW = 1969
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
                 timeout: float = 60.0, task: Task = LINK, keepalive: float | None = None):
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
        self.held = False  # the lock was granted once: failing to take it again means another run took it
        self.keepalive = keepalive  # seconds between pings of the lock's idle connection (None: from wait_timeout)
        self._busy = threading.RLock()  # the connection is used by one thread at a time (the caller or the pinger)
        self._stop = threading.Event()
        self._pinger = None
        self._with_retries(self._connect)
        if lock:
            self.transaction(lambda cursor: [cursor.execute(statement)
                                             for statement in [recommendations_schema(task.table),
                                                               submissions_schema(task.submissions), STATE_SCHEMA]])
            self._pinger = threading.Thread(target=self._keep_alive, name=f"ping {self.lock_name}", daemon=True)
            self._pinger.start()

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
                cursor.execute("SELECT GET_LOCK(%s, 0), @@SESSION.wait_timeout", (self.lock_name,))
                granted, idle_limit = cursor.fetchone()
            if self.keepalive is None:
                self.keepalive = min(60.0, max(0.5, float(idle_limit) / 3))
        if granted != 1:
            connection.close()
            if self.held:
                raise SinkError(f"{redact(self.url)}: the lock {self.lock_name!r} was lost (the server closed the "
                                "connection that held it) and another linkrec run holds the wiki now; "
                                "this run writes nothing more")
            raise SinkError(f"{redact(self.url)}: another linkrec run holds the lock {self.lock_name!r}; "
                            "two runs for the same wiki must not overlap")
        self.held = self.held or self.lock
        self.connection = connection

    def _limit_waits(self, connection) -> None:
        """Lock waits end after `timeout` seconds, statements a second later (the server's default lock wait
        is a day)."""
        seconds = max(1, int(self.timeout))
        with connection.cursor() as cursor:
            cursor.execute(f"SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds}")
            try:
                # a second more, so that a wait for a lock ends as a lock wait (1205), not as a slow statement
                cursor.execute(f"SET SESSION max_statement_time = {seconds + 1}")  # MariaDB only
            except pymysql.err.Error:
                pass

    def _with_retries(self, step):
        with self._busy:
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
                        elif code == SLOW:
                            what = (f"a statement ran longer than {self.timeout:g} s (sinks.timeout_seconds; raise "
                                    f"it or lower sinks.batch_size): {what}")
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

    def _keep_alive(self) -> None:
        """The lock lives as long as its connection: ping it while the compute leaves it idle, so that
        the server does not close it (wait_timeout)."""
        while not self._stop.wait(self.keepalive or 60.0):
            if not self._busy.acquire(blocking=False):
                continue  # in use, so not idle
            try:
                if self.connection is not None:
                    self.connection.ping(reconnect=False)
            except Exception:  # noqa: BLE001 - a lost connection is found by hold_lock before the next write
                pass
            finally:
                self._busy.release()

    def _holds_lock(self) -> bool:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (self.lock_name,))
                return cursor.fetchone()[0] == 1
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError, ConnectionError):
            return False  # closed (idle too long, killed): the lock went with it

    def hold_lock(self) -> None:
        """Before a write round: prove that this run still holds the wiki's lock. If its connection was
        lost, the lock is taken again when free; SinkError (exit 3) when another run holds it now."""
        if not self.lock:
            return
        with self._busy:
            if self.connection is None or not self._holds_lock():
                log.warning("the lock %r was lost with its connection; taking it again", self.lock_name)
                self.retried += 1  # a lost connection reconnected, as in _with_retries
                self._with_retries(self._connect)

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
        self.hold_lock()
        counts, changes = super().write(results, force)
        counts.retries = self.retried - before
        return counts, changes

    def finish(self) -> None:
        self._stop.set()
        if self._pinger is not None:
            self._pinger.join()
            self._pinger = None
        if self.connection is not None:
            try:
                if self.lock:
                    with self.connection.cursor() as cursor:
                        cursor.execute("SELECT RELEASE_LOCK(%s)", (self.lock_name,))
                self.connection.close()
            except pymysql.err.Error:
                pass  # a closed connection has released its lock
            self.connection = None
