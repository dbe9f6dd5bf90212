"""The recommend job's output rows → the sinks: the contract's rule for each row (task, NULL row,
removal, or not ours to touch), written either streamed through the driver (SQLite, an events file)
or per partition from the executors (MariaDB and a search index: each task opens its own
connections and writes its pages batch by batch with the same semantics; the driver holds the run's
lock and adds up the counts). Nothing proportional to the wiki passes through the driver."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime

from pipeline.recommend import eligibility as rules
from sinks.base import LINK, MassDeleteRefused, PageResult, Published, SinkCounts, SinkError, TagCounts, Task, publish

NOT_OURS = frozenset({rules.NOT_MAIN_NAMESPACE, rules.HAS_SUBMISSION})


def page_result(row) -> PageResult | None:
    """A task, a NULL row (evaluated, nothing to offer), a removal (no longer eligible), or None:
    other namespaces and revisions an editor already worked on are not ours to touch."""
    if row.reason in NOT_OURS:
        return None
    title, namespace = row.title or "", row.namespace or 0
    if row.reason == rules.OK:
        return PageResult(row.page_id, row.revision_id, row.gelr_data.encode("utf-8"), False, title, namespace)
    if row.reason == rules.TOO_FEW_LINKS:
        return PageResult(row.page_id, row.revision_id, None, False, title, namespace)
    return PageResult(row.page_id, row.revision_id, None, True, title, namespace)


def output_with_titles(spark, warehouse, wiki: str, snapshot: str, output: str):
    """The job's output rows with each page's title and namespace (the search sinks name pages)."""
    pages = warehouse.read("pages", wiki, snapshot).select("page_id", "title", "namespace")
    return spark.read.parquet(output).join(pages, "page_id", "left")


DRIVER_CHUNK_ROWS = 20_000  # rows the driver holds at once while streaming (toLocalIterator takes a partition)


def page_results(spark, warehouse, wiki: str, snapshot: str, output: str):
    """Page results in page-id order, streamed to the driver (for the single-file sinks) in range
    partitions of about DRIVER_CHUNK_ROWS rows, so the driver holds one chunk whatever the wiki's size."""
    rows = output_with_titles(spark, warehouse, wiki, snapshot, output)
    chunks = max(1, math.ceil(spark.read.parquet(output).count() / DRIVER_CHUNK_ROWS))
    for row in rows.repartitionByRange(chunks, "page_id").sortWithinPartitions("page_id").toLocalIterator():
        result = page_result(row)
        if result is not None:
            yield result


def _tasks_at_risk(pairs, database, batch_size: int):
    """Per reason, how many of these (reason, page id) pages hold a task now."""
    counts: dict[str, int] = {}
    batch: list[tuple[str, int]] = []

    def flush():
        for reason in {r for r, _ in batch}:
            ids = [page for r, page in batch if r == reason]
            counts[reason] = counts.get(reason, 0) + database.task_pages(ids)
        batch.clear()

    for pair in pairs:
        batch.append(tuple(pair))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return counts


def _at_risk_partition(rows, spec):
    database = spec.open_database()
    try:
        yield _tasks_at_risk(rows, database, spec.batch_size)
    finally:
        database.finish()


def check_mass_delete(spark, output: str, database, sinks, spec=None) -> dict:
    """Refuse (MassDeleteRefused) a run that would delete or clear more than `sinks.max_delete_share` of
    the tasks the database holds (and at least `sinks.mass_delete_minimum`); the figures otherwise.
    Counted before anything is written, on the executors when `spec` says how they reach the database."""
    from pyspark.sql import functions as F

    existing = database.task_pages()
    # the rows page_result turns into a NULL row or a removal: every reason but a task's and not-ours
    rows = spark.read.parquet(output).where(~F.col("reason").isin(rules.OK, *NOT_OURS)).select("reason", "page_id")
    if spec is not None:
        parts = rows.rdd.mapPartitions(lambda part: _at_risk_partition(part, spec)).collect()
    else:
        parts = [_tasks_at_risk(rows.toLocalIterator(), database, sinks.batch_size)]
    by_reason: dict[str, int] = {}
    for part in parts:
        for reason, n in part.items():
            by_reason[reason] = by_reason.get(reason, 0) + n
    at_risk = sum(by_reason.values())
    figures = {"existing_tasks": existing, "tasks_deleted_or_cleared": at_risk,
               "by_reason": {k: v for k, v in sorted(by_reason.items()) if v}}
    if at_risk >= max(1, sinks.mass_delete_minimum) and at_risk > sinks.max_delete_share * existing:
        why = ", ".join(f"{reason}: {n}" for reason, n in figures["by_reason"].items())
        raise MassDeleteRefused(
            f"this run would delete or clear {at_risk} of the {existing} existing tasks "
            f"({100 * at_risk / max(existing, 1):.0f} % > sinks.max_delete_share {100 * sinks.max_delete_share:.0f} %; "
            f"why: {why}); nothing was written. Check --now and the input, or pass --allow-mass-delete")
    return figures


@dataclass(frozen=True)
class SinkSpec:
    """What an executor needs to open its own sinks: URLs and settings, no open handle."""

    db: str
    wiki: str
    retries: int
    backoff_seconds: float
    batch_size: int
    search_url: str | None = None
    index: str = ""
    search_mode: str = "painless"
    bulk_size: int = 500
    now: datetime | None = None
    force: bool = False
    timeout: float = 60.0
    task: Task = LINK

    def open_database(self):
        from sinks.connect import open_database

        # the driver holds the run's lock and has created the schema
        return open_database(self.db, self.wiki, self.retries, self.backoff_seconds, lock=False, timeout=self.timeout,
                             task=self.task)

    def open(self):
        from sinks.connect import open_tags

        database = self.open_database()
        try:
            tags = open_tags(self.wiki, self.now, self.index, self.search_url, self.search_mode, None,
                             self.bulk_size, self.retries, self.backoff_seconds, self.timeout, self.task)
        except BaseException:
            database.finish()
            raise
        return database, tags


def _publish_partition(rows, spec: SinkSpec):
    """One task: its pages in page-id order, batch by batch; the counts, and the error if one stopped it."""
    totals = Published(search=None if spec.search_url is None else TagCounts())
    error = None
    database = tags = None
    try:
        database, tags = spec.open()
        results = (r for r in (page_result(row) for row in rows) if r is not None)
        publish(results, database, tags, spec.batch_size, spec.force, totals)
    except SinkError as exc:
        error = str(exc)
    finally:
        for sink in (database, tags):
            if sink is not None:
                sink.finish()
    yield (asdict(totals.database), None if totals.search is None else asdict(totals.search), totals.batches, error)


def publish_from_executors(spark, warehouse, wiki: str, snapshot: str, output: str, spec: SinkSpec) -> Published:
    """Every partition written by its own task; a sink failure in any task is raised once all have run
    (what the others wrote stands; a re-run converges)."""
    rows = output_with_titles(spark, warehouse, wiki, snapshot, output).sortWithinPartitions("page_id")
    parts = rows.rdd.mapPartitions(lambda part: _publish_partition(part, spec)).collect()  # one tuple per task
    totals = Published(search=None if spec.search_url is None else TagCounts())
    errors = []
    for database, search, batches, error in parts:
        totals.database.add(SinkCounts(**database))
        if search is not None:
            totals.search.add(TagCounts(**search))
        totals.batches += batches
        if error:
            errors.append(error)
    if errors:
        error = SinkError(f"{len(errors)} of {len(parts)} write tasks stopped: {errors[0]}")
        error.partial = totals  # what the other tasks wrote, for the summary
        raise error
    return totals


def write_output(spark, warehouse, config, result, database, tags, db: str, search_url, search_mode, moment,
                 force: bool, progress, allow_mass_delete: bool = False, task: Task = LINK) -> Published:
    """Rows and tags of one recommend output: from the executors into MariaDB and a search index, else
    streamed through the driver into the single-file sinks (SQLite, an events file). A run that would
    delete or clear too many tasks is refused first (`sinks.max_delete_share`)."""
    from sinks.mariadb import MariaDbDatabase
    from sinks.search import EventTags

    sinks = config.sinks
    if isinstance(database, MariaDbDatabase):
        database.hold_lock()  # its connection sat idle through the compute: the lock may have gone with it
    spec = None
    if sinks.from_executors and isinstance(database, MariaDbDatabase):
        spec = SinkSpec(db, config.wiki, sinks.retries, sinks.backoff_seconds, sinks.batch_size, search_url,
                        sinks.search_index.format(wiki=config.wiki), search_mode or sinks.search_mode, sinks.bulk_size,
                        moment, force, sinks.timeout_seconds, task)
    if not allow_mass_delete:
        check_mass_delete(spark, result.output, database, sinks, spec)
    if spec is not None and not isinstance(tags, EventTags):
        return publish_from_executors(spark, warehouse, config.wiki, result.snapshot, result.output, spec)
    totals = Published(search=None if tags is None else TagCounts())
    try:
        return publish(progress.wrap(page_results(spark, warehouse, config.wiki, result.snapshot, result.output)),
                       database, tags, sinks.batch_size, force, totals)
    except SinkError as exc:
        exc.partial = totals  # what was written before the sink stopped, for the summary
        raise
