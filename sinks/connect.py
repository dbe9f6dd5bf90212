"""Open the sinks a command line names: a database URL, and a search URL or an events file."""

from __future__ import annotations

from datetime import datetime

from sinks.base import LINK, Database, SinkError, SinkUnusable, Tags, Task, redact


def open_database(url: str, wiki: str, retries: int = 5, backoff_seconds: float = 0.5, lock: bool = True,
                  timeout: float = 60.0, task: Task = LINK) -> Database:
    """sqlite:///path (embedded) or mysql://user[:password]@host[:port]/database (MariaDB); `{wiki}` in the URL
    is the wiki's name. `lock`
    False: a write task of a run whose driver holds the wiki's lock (and has created the schema).
    `timeout`: seconds a statement or a lock wait may take before it is retried."""
    url = url.replace("{wiki}", wiki)
    if url.startswith("sqlite:///"):
        from sinks.sqlite import SqliteDatabase
        database = SqliteDatabase(url, timeout, task)
    else:
        from sinks.mariadb import MariaDbDatabase, is_mysql_url
        if not is_mysql_url(url):
            raise SinkUnusable(f"--db {redact(url)!r}: expected sqlite:///path or mysql://user@host[:port]/database")
        database = MariaDbDatabase(url, wiki, retries, backoff_seconds, lock, timeout, task)
    if lock:  # the run's driver: the database must be this wiki's before anything is written
        try:
            database.claim(url, wiki)
        except BaseException:
            database.finish()
            raise
    return database


def open_tags(wiki: str, now: datetime, index: str, search_url: str | None = None, mode: str = "painless",
              events: str | None = None, bulk_size: int = 500, retries: int = 5,
              backoff_seconds: float = 0.5, timeout: float = 60.0, task: Task = LINK) -> Tags | None:
    """The search index (`search_url`, cirrus or painless updates) or an events file; None for neither."""
    if search_url and events:
        raise SinkError("give --search-url or --events, not both")
    if search_url:
        from sinks.search import IndexTags
        return IndexTags(search_url, index, mode, bulk_size, retries, backoff_seconds, timeout=timeout, task=task)
    if events:
        from sinks.search import EventTags
        return EventTags(events, wiki, now, task)
    return None


def open_sinks(config, moment: datetime, db: str, search_url: str | None, search_mode: str | None,
               events: str | None, task: Task = LINK) -> tuple[Database, Tags | None]:
    """The database and the tags sink of a run, with the configured retries and timeouts; a search index
    is checked (it answers, it exists) before anything expensive happens."""
    from sinks.search import IndexTags, check_index

    sinks = config.sinks
    database = open_database(db, config.wiki, sinks.retries, sinks.backoff_seconds, timeout=sinks.timeout_seconds,
                             task=task)
    try:
        tags = open_tags(config.wiki, moment, sinks.search_index.format(wiki=config.wiki), search_url,
                         search_mode or sinks.search_mode, events, sinks.bulk_size, sinks.retries,
                         sinks.backoff_seconds, sinks.timeout_seconds, task)
        if isinstance(tags, IndexTags):
            check_index(tags.client, search_url, tags.index)
    except BaseException:
        database.finish()
        raise
    return database, tags
