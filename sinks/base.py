"""The one sink interface: recommend and targeting write through it, whatever the database or index.

A batch of page results goes to the database first; the tag changes it implies go to the search index
after the batch has committed (contracts.md §3: row first, then tag; when removing, both)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, fields
from urllib.parse import quote, unquote

SET = "set"
CLEAR = "clear"


@dataclass(frozen=True)
class Task:
    """A suggested-edit task's place in the sinks: its rows table and its weighted-tag group
    (`recommendation.<name>/exists`, found by `hasrecommendation:<name>`)."""

    name: str
    table: str
    submissions: str  # the task's own submissions table: its reviewed revisions and rejected targets

    @property
    def prefix(self) -> str:
        return f"recommendation.{self.name}"

    @property
    def tag(self) -> str:
        return f"{self.prefix}/exists"


LINK = Task("link", "growthexperiments_link_recommendations", "growthexperiments_link_submissions")
ORPHAN_LINK = "orphan_link"


def orphan_task(table: str = "growthexperiments_orphan_link_recommendations",
                submissions: str = "growthexperiments_orphan_link_submissions") -> Task:
    return Task(ORPHAN_LINK, table, submissions)


def task_named(name: str, orphan_table: str = "growthexperiments_orphan_link_recommendations",
               orphan_submissions: str = "growthexperiments_orphan_link_submissions") -> Task:
    return LINK if name == LINK.name else orphan_task(orphan_table, orphan_submissions)


class SinkError(Exception):
    """A sink could not do its part; the run is incomplete and a re-run converges."""


class MassDeleteRefused(Exception):
    """A run would delete or clear more of a wiki's tasks than the configured share; nothing was written."""


class SinkUnusable(SinkError):
    """A sink's URL or credentials cannot work (bad URL, wrong password, unknown database): a re-run
    would fail the same way, so the command line exits 1, not 3."""


@dataclass(frozen=True)
class Url:
    """A database or search URL taken apart by hand: the password may hold any character (`#`, `?`,
    `/`, `@`, `:`), raw or percent-encoded, which urllib would read as a fragment, a query or a path."""

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None
    path: str
    query: str

    def redacted(self) -> str:
        user = "" if self.user is None else quote(self.user, safe="") + (":***@" if self.password is not None else "@")
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{user}{self.host}{port}{self.path}{'?' + self.query if self.query else ''}"


_HOST_AND_AFTER = re.compile(r"^[^/?#@]*(?:[/?]|$)")


def _split_userinfo(rest: str) -> tuple[str | None, str]:
    """(user info, the rest): the user info ends at the last `@` that a host and then `/`, `?` or the end follow."""
    at = len(rest)
    while (at := rest.rfind("@", 0, at)) >= 0:
        if _HOST_AND_AFTER.match(rest[at + 1:]):
            return rest[:at], rest[at + 1:]
    return None, rest


def parse_url(url: str) -> Url:
    """scheme://[user[:password]@]host[:port][/path][?query]; SinkUnusable (that never shows the password)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise SinkUnusable(f"{url.split('@')[-1]!r}: not a URL (expected scheme://host…)")
    userinfo, rest = _split_userinfo(rest)
    user = password = None
    if userinfo is not None:
        user, colon, secret = userinfo.partition(":")
        user = unquote(user)
        password = unquote(secret) if colon else None
    hostport, _, query = rest.partition("?")
    hostport, slash, path = hostport.partition("/")
    host, colon, port_text = hostport.rpartition(":") if not hostport.endswith("]") else (hostport, "", "")
    if not colon:
        host, port_text = hostport, ""
    port = None
    shown = Url(scheme, user, password, host, None, slash + path, query).redacted()
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SinkUnusable(f"{shown!r}: the port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    return Url(scheme, user, password, host, port, slash + path, query)


def redact(url: str) -> str:
    """A database or search URL without its password, for messages, summaries and state files."""
    if "://" not in url:
        return url
    try:
        return parse_url(url).redacted()
    except SinkError:
        return url.partition("://")[0] + "://…"


def same_recommendation(old: bytes | None, new: bytes | None) -> bool:
    """Equal but for when they were generated: a re-run with the same input and model is a no-op."""
    if old is None or new is None:
        return old is new
    if bytes(old) == new:
        return True
    try:
        a, b = json.loads(old), json.loads(new)
    except ValueError:
        return False
    a.get("meta", {}).pop("task_timestamp", None)
    b.get("meta", {}).pop("task_timestamp", None)
    return a == b


def newest_rows(rows) -> dict[int, tuple[int, bool]]:
    """(page, revision, has task) rows → page → (its newest revision, whether that row holds a task)."""
    newest: dict[int, tuple[int, bool]] = {}
    for page, revision, task in rows:
        if page not in newest or revision > newest[page][0]:
            newest[page] = (revision, task)
    return newest


@dataclass(frozen=True)
class PageResult:
    """What one run decided for one page: a task (gelr_data JSON), a NULL row (evaluated, nothing to
    recommend), or `remove` (no longer eligible: delete its rows, clear its tag)."""

    page_id: int
    revision_id: int
    gelr_data: bytes | None
    remove: bool = False
    title: str = ""
    namespace: int = 0


@dataclass(frozen=True)
class TagChange:
    """The search-index side of one page result: `set` the task's tag or `clear` its group.
    `changed`: the batch made or changed a task, or removed one (the events sink publishes only those)."""

    page_id: int
    title: str
    namespace: int
    action: str
    changed: bool


def _add(total, part) -> None:
    for item in fields(total):
        setattr(total, item.name, getattr(total, item.name) + getattr(part, item.name))


@dataclass
class SinkCounts:
    rows_written: int = 0
    null_rows_written: int = 0
    rows_deleted: int = 0
    unchanged: int = 0
    skipped_submission: int = 0
    skipped_newer_revision: int = 0
    retries: int = 0

    def add(self, other: SinkCounts) -> None:
        _add(self, other)

    @property
    def changed(self) -> int:
        return self.rows_written + self.null_rows_written + self.rows_deleted


@dataclass
class TagCounts:
    tags_set: int = 0
    tags_cleared: int = 0
    unchanged: int = 0
    document_missing: int = 0
    retries: int = 0
    requests: int = 0

    def add(self, other: TagCounts) -> None:
        _add(self, other)

    @property
    def changed(self) -> int:
        return self.tags_set + self.tags_cleared


class Database:
    """Rows of one task's recommendations table, read back with the submissions table."""

    task: Task = LINK

    def submission_batches(self, size: int = 50_000):
        """Every row of the task's submissions table (gels_revision, gels_target, gels_anchor_offset,
        gels_anchor_length, gels_page, gels_edit_revision, gels_user, gels_feedback), in primary-key order,
        `size` rows at a time."""
        raise NotImplementedError

    def write(self, results: list[PageResult], force: bool = False) -> tuple[SinkCounts, list[TagChange]]:
        """One batch, all or nothing; `force` rewrites rows even when they are unchanged."""
        raise NotImplementedError

    def task_pages(self, page_ids: list[int] | None = None) -> int:
        """How many pages (of `page_ids`, or in all) hold a task."""
        raise NotImplementedError

    def rows(self) -> list[tuple[int, int, bool]]:
        """Every row as (page, revision, whether it holds a task), by page and revision."""
        raise NotImplementedError

    def delete_revisions(self, revisions: list[int]) -> int:
        raise NotImplementedError

    def get_state(self, wiki: str, name: str) -> str | None:
        raise NotImplementedError

    def set_state(self, wiki: str, name: str, value: str) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """End the run: release locks and connections."""


class Tags:
    """One task's weighted tag (recommendation.link/exists, …) in a search index (or an event stream)."""

    def apply(self, changes: list[TagChange], force: bool = False) -> TagCounts:
        raise NotImplementedError

    def finish(self) -> None:
        """End the run: flush and close."""


@dataclass
class Published:
    database: SinkCounts = field(default_factory=SinkCounts)
    search: TagCounts | None = None
    batches: int = 0

    def summary(self) -> dict:
        out = {"database": {**self.database.__dict__}, "batches": self.batches}
        changed = self.database.changed
        if self.search is not None:
            out["search"] = {**self.search.__dict__}
            changed += self.search.changed
        out["changed"] = changed > 0
        return out


def publish(results, database: Database, tags: Tags | None, batch_size: int, force: bool = False,
            totals: Published | None = None) -> Published:
    """Write page results batch by batch: database rows (one transaction), then the batch's tags
    (counted into `totals` as they go, so that a caller keeps the counts of a run a sink stopped)."""
    if totals is None:
        totals = Published(search=None if tags is None else TagCounts())
    batch: list[PageResult] = []

    def flush():
        counts, changes = database.write(batch, force)
        totals.database.add(counts)
        if tags is not None:
            totals.search.add(tags.apply(changes, force))
        totals.batches += 1
        batch.clear()

    for result in results:
        batch.append(result)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return totals


def backoff(attempt: int, base: float, cap: float = 30.0) -> None:
    """Exponential wait before the next attempt."""
    time.sleep(min(cap, base * (2 ** attempt)))
