"""The one sink interface: recommend and targeting write through it, whatever the database."""

from __future__ import annotations

import json
from dataclasses import dataclass


def same_recommendation(old: bytes | None, new: bytes | None) -> bool:
    """Equal but for when they were generated: a re-run with the same input and model is a no-op."""
    if old is None or new is None:
        return old is new
    if old == new:
        return True
    try:
        a, b = json.loads(old), json.loads(new)
    except ValueError:
        return False
    a.get("meta", {}).pop("task_timestamp", None)
    b.get("meta", {}).pop("task_timestamp", None)
    return a == b


@dataclass(frozen=True)
class PageResult:
    """What one run decided for one page: a task (gelr_data JSON), a NULL row (evaluated, nothing to
    recommend), or `remove` (no longer eligible: delete its rows)."""

    page_id: int
    revision_id: int
    gelr_data: bytes | None
    remove: bool = False


@dataclass
class SinkCounts:
    rows_written: int = 0
    null_rows_written: int = 0
    rows_deleted: int = 0
    unchanged: int = 0
    skipped_submission: int = 0


class Sink:
    def write(self, results: list[PageResult], force: bool = False) -> SinkCounts:
        raise NotImplementedError

    def finish(self) -> None:
        """End the run: commit what is pending, release locks and connections."""
