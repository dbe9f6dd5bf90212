"""The semantics of contracts.md §1 once, for every SQL database: what a batch of page results does to a
task's recommendations table (growthexperiments_link_recommendations, or the orphan task's of §4).
The MariaDB and SQLite sinks differ only in connections."""

from __future__ import annotations

from sinks.base import (
    CLEAR,
    LINK,
    SET,
    Database,
    PageResult,
    SinkCounts,
    SinkUnusable,
    TagChange,
    redact,
    same_recommendation,
)

RECOMMENDATIONS = LINK.table
SUBMISSIONS = LINK.submissions
STATE = "linkrec_state"
# GrowthExperiments' tables have no wiki column (one database per wiki): this names the database's wiki
OWNER = "linkrec_wiki"
CHUNK = 500


class SqlDatabase(Database):
    """Subclasses give `mark` (the parameter placeholder) and `transaction(work)`, which runs
    `work(cursor)` in one transaction (retrying it whole where the database allows) and returns its value."""

    mark = "?"

    def transaction(self, work):
        raise NotImplementedError

    def _in(self, values) -> str:
        return ",".join([self.mark] * len(values))

    def _select_in(self, cursor, sql: str, values: list) -> list[tuple]:
        """`sql` with one `{}` for an IN list, run over chunks of `values`."""
        rows: list[tuple] = []
        for at in range(0, len(values), CHUNK):
            part = values[at:at + CHUNK]
            cursor.execute(sql.format(self._in(part)), part)
            rows.extend(cursor.fetchall())
        return rows

    def claim(self, url: str, wiki: str) -> None:
        """Make sure this database is `wiki`'s: name it in the marker table the first time (a database
        written before the marker existed is claimed unless its state names other wikis); SinkUnusable
        when it is another wiki's, before anything is written."""
        def work(cursor):
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {OWNER} (wiki VARCHAR(64) NOT NULL PRIMARY KEY)")
            cursor.execute(f"SELECT wiki FROM {OWNER}")
            owners = sorted(str(w) if not isinstance(w, bytes) else w.decode() for (w,) in cursor.fetchall())
            if not owners:
                cursor.execute(f"SELECT DISTINCT wiki FROM {STATE}")
                owners = sorted({str(w) if not isinstance(w, bytes) else w.decode()
                                 for (w,) in cursor.fetchall()} - {wiki})
                if not owners:
                    cursor.execute(f"INSERT INTO {OWNER} (wiki) VALUES ({self.mark})", (wiki,))
                    return []
            return [] if owners == [wiki] else owners
        others = self.transaction(work)
        if others:
            raise SinkUnusable(f"{redact(url)} holds the tasks of {', '.join(others)}, not of {wiki}: one database "
                               f"per wiki (give {wiki} its own --db, e.g. with {{wiki}} in the URL)")

    def owners(self) -> list[str]:
        """The wikis the marker table names ([] when nobody claimed the database), read without writing."""
        def work(cursor):
            try:
                cursor.execute(f"SELECT wiki FROM {OWNER}")
            except Exception:  # noqa: BLE001 - no marker table yet (each driver has its own error class)
                return []
            return sorted(w.decode() if isinstance(w, bytes) else str(w) for (w,) in cursor.fetchall())
        return self.transaction(work)

    def submission_batches(self, size: int = 50_000):
        """Every row of the task's submissions table, in primary-key order, `size` rows at a time (keyset
        pages: one short query each, nothing held but the batch)."""
        columns = ("gels_revision, gels_target, gels_anchor_offset, gels_anchor_length, gels_page, "
                   "gels_edit_revision, gels_user, gels_feedback")
        after = None
        while True:
            def work(cursor, after=after):
                where = ("" if after is None else
                         f"WHERE (gels_revision, gels_target, gels_anchor_offset) > ({self.mark}, {self.mark}, "
                         f"{self.mark}) ")
                cursor.execute(f"SELECT {columns} FROM {self.task.submissions} {where}"
                               f"ORDER BY gels_revision, gels_target, gels_anchor_offset LIMIT {int(size)}",
                               () if after is None else after)
                return cursor.fetchall()
            batch = [tuple(None if v is None else (v.decode() if isinstance(v, bytes) else v) for v in row)
                     for row in self.transaction(work)]
            if not batch:
                return
            yield batch
            if len(batch) < size:
                return
            after = batch[-1][:3]

    def write(self, results: list[PageResult], force: bool = False) -> tuple[SinkCounts, list[TagChange]]:
        return self.transaction(lambda cursor: self._write(cursor, results, force))

    def _write(self, cursor, results: list[PageResult], force: bool) -> tuple[SinkCounts, list[TagChange]]:
        counts = SinkCounts()
        changes: list[TagChange] = []
        existing: dict[int, dict[int, bytes | None]] = {}
        for revision, page, data in self._select_in(
                cursor, f"SELECT gelr_revision, gelr_page, gelr_data FROM {self.task.table} WHERE gelr_page IN ({{}})",
                sorted({r.page_id for r in results})):
            existing.setdefault(int(page), {})[int(revision)] = None if data is None else bytes(data)
        submitted = {int(r) for (r,) in self._select_in(
            cursor, f"SELECT DISTINCT gels_revision FROM {self.task.submissions} WHERE gels_revision IN ({{}})",
            sorted({r.revision_id for r in results if not r.remove}))}
        deletes: list[int] = []
        replaces: list[tuple] = []
        for result in results:
            rows = existing.get(result.page_id, {})
            had_task = any(data is not None for data in rows.values())
            if result.remove:
                deletes.extend(rows)
                counts.rows_deleted += len(rows)
                changes.append(TagChange(result.page_id, result.title, result.namespace, CLEAR, had_task))
                continue
            if result.revision_id in submitted:
                counts.skipped_submission += 1
                continue
            if any(revision > result.revision_id for revision in rows):
                counts.skipped_newer_revision += 1  # the page was edited since our input: its newer row stands
                continue
            older = [revision for revision in rows if revision < result.revision_id]
            deletes.extend(older)
            counts.rows_deleted += len(older)
            same = result.revision_id in rows and same_recommendation(rows[result.revision_id], result.gelr_data)
            if same and not force:
                counts.unchanged += 1
            else:
                replaces.append((result.revision_id, result.page_id, result.gelr_data))
                if result.gelr_data is None:
                    counts.null_rows_written += 1
                else:
                    counts.rows_written += 1
            if result.gelr_data is None:
                changes.append(TagChange(result.page_id, result.title, result.namespace, CLEAR, had_task))
            else:
                changes.append(TagChange(result.page_id, result.title, result.namespace, SET, bool(older) or not same))
        for at in range(0, len(deletes), CHUNK):
            part = deletes[at:at + CHUNK]
            cursor.execute(f"DELETE FROM {self.task.table} WHERE gelr_revision IN ({self._in(part)})", part)
        if replaces:
            cursor.executemany(f"REPLACE INTO {self.task.table} (gelr_revision, gelr_page, gelr_data) "
                               f"VALUES ({self.mark}, {self.mark}, {self.mark})", replaces)
        return counts, changes

    def task_pages(self, page_ids: list[int] | None = None) -> int:
        """How many pages (of `page_ids`, or in all) hold a task."""
        def work(cursor):
            if page_ids is None:
                cursor.execute(f"SELECT COUNT(DISTINCT gelr_page) FROM {self.task.table} WHERE gelr_data IS NOT NULL")
                return int(cursor.fetchone()[0])
            return sum(int(n) for (n,) in self._select_in(
                cursor, f"SELECT COUNT(DISTINCT gelr_page) FROM {self.task.table} WHERE gelr_data IS NOT NULL "
                        "AND gelr_page IN ({})", sorted(set(page_ids))))
        return self.transaction(work)

    def rows(self) -> list[tuple[int, int, bool]]:
        def work(cursor):
            cursor.execute(f"SELECT gelr_page, gelr_revision, gelr_data IS NOT NULL FROM {self.task.table} "
                           "ORDER BY gelr_page, gelr_revision")
            return [(int(page), int(revision), bool(task)) for page, revision, task in cursor.fetchall()]
        return self.transaction(work)

    def delete_revisions(self, revisions: list[int]) -> int:
        def work(cursor):
            deleted = 0
            for at in range(0, len(revisions), CHUNK):
                part = revisions[at:at + CHUNK]
                cursor.execute(f"DELETE FROM {self.task.table} WHERE gelr_revision IN ({self._in(part)})", part)
                deleted += cursor.rowcount
            return deleted
        return self.transaction(work)

    def get_state(self, wiki: str, name: str) -> str | None:
        def work(cursor):
            cursor.execute(f"SELECT value FROM {STATE} WHERE wiki = {self.mark} AND name = {self.mark}", (wiki, name))
            row = cursor.fetchone()
            return None if row is None else row[0]
        return self.transaction(work)

    def set_state(self, wiki: str, name: str, value: str) -> None:
        self.transaction(lambda cursor: cursor.execute(
            f"REPLACE INTO {STATE} (wiki, name, value) VALUES ({self.mark}, {self.mark}, {self.mark})",
            (wiki, name, value)))
