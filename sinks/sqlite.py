"""The embedded default database: an SQLite file with the tables and semantics of contracts.md §1."""

from __future__ import annotations

import os
import sqlite3

from sinks.base import PageResult, Sink, SinkCounts, same_recommendation

SCHEMA = """
CREATE TABLE IF NOT EXISTS growthexperiments_link_recommendations (
  gelr_revision INTEGER NOT NULL PRIMARY KEY CHECK (gelr_revision >= 0),
  gelr_page INTEGER NOT NULL CHECK (gelr_page >= 0),
  gelr_data BLOB DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS gelr_page ON growthexperiments_link_recommendations (gelr_page);
CREATE TABLE IF NOT EXISTS growthexperiments_link_submissions (
  gels_revision INTEGER NOT NULL, gels_target INTEGER NOT NULL, gels_anchor_offset INTEGER NOT NULL,
  gels_anchor_length INTEGER NOT NULL, gels_page INTEGER NOT NULL, gels_edit_revision INTEGER DEFAULT NULL,
  gels_user INTEGER NOT NULL, gels_feedback TEXT NOT NULL,
  PRIMARY KEY (gels_revision, gels_target, gels_anchor_offset)
);
CREATE INDEX IF NOT EXISTS gels_page_feedback_target
  ON growthexperiments_link_submissions (gels_page, gels_feedback, gels_target);
"""


def sqlite_path(url: str) -> str:
    if not url.startswith("sqlite:///"):
        raise ValueError(f"{url!r}: expected sqlite:///path/to/file.db")
    return url[len("sqlite:///"):] or ":memory:"


class SqliteSink(Sink):
    def __init__(self, url: str):
        path = sqlite_path(url)
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.connection = sqlite3.connect(path)
        self.connection.executescript(SCHEMA)

    def submitted_revisions(self, revisions: list[int]) -> set[int]:
        found = set()
        for at in range(0, len(revisions), 500):
            part = revisions[at:at + 500]
            marks = ",".join("?" * len(part))
            found.update(r for (r,) in self.connection.execute(
                "SELECT DISTINCT gels_revision FROM growthexperiments_link_submissions "
                f"WHERE gels_revision IN ({marks})", part))
        return found

    def rejected_targets(self, page_ids: list[int]) -> dict[int, set[int]]:
        """page → targets rejected two or more times on it."""
        out: dict[int, set[int]] = {}
        for at in range(0, len(page_ids), 500):
            part = page_ids[at:at + 500]
            marks = ",".join("?" * len(part))
            rows = self.connection.execute(
                "SELECT gels_page, gels_target FROM growthexperiments_link_submissions "
                f"WHERE gels_feedback = 'r' AND gels_page IN ({marks}) GROUP BY gels_page, gels_target "
                "HAVING COUNT(*) >= 2", part)
            for page, target in rows:
                out.setdefault(page, set()).add(target)
        return out

    def submissions(self) -> tuple[set[int], dict[int, set[int]]]:
        """Revisions that have a submission row, and per page the targets rejected twice or more."""
        revisions = {r for (r,) in self.connection.execute(
            "SELECT DISTINCT gels_revision FROM growthexperiments_link_submissions")}
        pages = [p for (p,) in self.connection.execute(
            "SELECT DISTINCT gels_page FROM growthexperiments_link_submissions WHERE gels_feedback = 'r'")]
        return revisions, self.rejected_targets(pages)

    def write(self, results: list[PageResult], force: bool = False) -> SinkCounts:
        """One transaction per batch; `force` rewrites rows even when they are unchanged."""
        counts = SinkCounts()
        with self.connection:  # one transaction per batch
            submitted = self.submitted_revisions([r.revision_id for r in results if not r.remove])
            for result in results:
                if result.remove:
                    counts.rows_deleted += self.connection.execute(
                        "DELETE FROM growthexperiments_link_recommendations WHERE gelr_page = ?",
                        (result.page_id,)).rowcount
                    continue
                if result.revision_id in submitted:
                    counts.skipped_submission += 1
                    continue
                counts.rows_deleted += self.connection.execute(
                    "DELETE FROM growthexperiments_link_recommendations WHERE gelr_page = ? AND gelr_revision != ?",
                    (result.page_id, result.revision_id)).rowcount
                current = self.connection.execute(
                    "SELECT gelr_page, gelr_data FROM growthexperiments_link_recommendations WHERE gelr_revision = ?",
                    (result.revision_id,)).fetchone()
                if not force and current is not None and current[0] == result.page_id and same_recommendation(
                        current[1], result.gelr_data):
                    counts.unchanged += 1
                    continue
                self.connection.execute(
                    "REPLACE INTO growthexperiments_link_recommendations (gelr_revision, gelr_page, gelr_data) "
                    "VALUES (?, ?, ?)", (result.revision_id, result.page_id, result.gelr_data))
                if result.gelr_data is None:
                    counts.null_rows_written += 1
                else:
                    counts.rows_written += 1
        return counts

    def finish(self) -> None:
        self.connection.close()
