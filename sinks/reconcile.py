"""The invariant of contracts.md §3, checked and repaired: a page is tagged in search ⇔ a row with
non-NULL gelr_data exists for its latest revision."""

from __future__ import annotations

from dataclasses import dataclass, field

from sinks.base import CLEAR, SET, Database, TagChange, TagCounts, Tags, newest_rows


@dataclass
class Differences:
    tag_without_task: list[int] = field(default_factory=list)
    task_without_tag: list[int] = field(default_factory=list)
    stale_rows: list[tuple[int, int]] = field(default_factory=list)  # (page, revision) older than the latest
    repaired: dict | None = None

    @property
    def total(self) -> int:
        return len(self.tag_without_task) + len(self.task_without_tag) + len(self.stale_rows)

    def summary(self) -> dict:
        out = {"differences": self.total, "tag_without_task": len(self.tag_without_task),
               "task_without_tag": len(self.task_without_tag), "stale_rows": len(self.stale_rows),
               "examples": {"tag_without_task": self.tag_without_task[:10],
                            "task_without_tag": self.task_without_tag[:10],
                            "stale_rows": [list(pair) for pair in self.stale_rows[:10]]}}
        if self.repaired is not None:
            out["repaired"] = self.repaired
        return out


def compare(rows: list[tuple[int, int, bool]], tagged: set[int],
            latest: dict[int, int] | None = None) -> tuple[Differences, set[int]]:
    """rows: (page, revision, has task); latest: page → latest revision where known.
    Returns the differences and the pages that should be tagged."""
    differences = Differences()
    latest = latest or {}

    def stale(page: int, revision: int) -> bool:  # invisible to GrowthExperiments
        return revision < latest.get(page, revision)

    newest = newest_rows(rows)
    differences.stale_rows = [(page, revision) for page, revision, _ in rows
                              if revision != newest[page][0] or stale(page, revision)]
    expected = {page for page, (revision, task) in newest.items() if task and not stale(page, revision)}
    differences.tag_without_task = sorted(tagged - expected)
    differences.task_without_tag = sorted(expected - tagged)
    return differences, expected


def reconcile(database: Database, tags: Tags, tagged: set[int], latest: dict[int, int] | None = None,
              fix: bool = False, titles: dict[int, str] | None = None) -> Differences:
    differences, _ = compare(database.rows(), tagged, latest)
    if fix and differences.total:
        deleted = database.delete_revisions([revision for _, revision in differences.stale_rows])
        title = (titles or {}).get
        changes = ([TagChange(p, title(p, ""), 0, CLEAR, True) for p in differences.tag_without_task]
                   + [TagChange(p, title(p, ""), 0, SET, True) for p in differences.task_without_tag])
        counts = tags.apply(changes, force=True) if changes else TagCounts()
        differences.repaired = {"rows_deleted": deleted, **counts.__dict__}
    return differences
