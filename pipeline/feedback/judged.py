"""The reading protocol's judged links as GrowthExperiments' feedback: each judged link found in the
served-links ledger of the database it was written to becomes a `growthexperiments_link_submissions`
row (kept → 'a', not kept → 'r'), and each rejection's reason a link_suggestion_interaction event line.
A judged file holds tens of links, so it is read whole; the ledger is looked up in Spark."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import functions as F

from pipeline.feedback import FeedbackError
from pipeline.feedback.served import read_ledger

JUDGE_USER = 0  # no editor account: the reading protocol's reader


@dataclass(frozen=True)
class Submission:
    revision: int
    target: int
    offset: int
    length: int  # UTF-8 bytes, as GrowthExperiments stores it
    page: int
    edit_revision: int | None
    feedback: str
    link_target: str
    reason: str  # GrowthExperiments' reason of a rejection ("" otherwise)

    def row(self) -> tuple:
        return (self.revision, self.target, self.offset, self.length, self.page, self.edit_revision, JUDGE_USER,
                self.feedback)

    def event(self) -> str:
        return json.dumps({"revision_id": self.revision, "link_target": self.link_target,
                           "rejection_reason": self.reason}, ensure_ascii=False)


def read_judged(paths: list[str], wiki: str, task: str) -> list[dict]:
    """The judged rows of `wiki` and `task` with both answers filled in; a file that is not a judged file
    is named."""
    rows = []
    for path in paths:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            missing = {"page_id", "link_target", "kept", "reason", "wiki", "task"} - set(reader.fieldnames or ())
            if missing:
                raise FeedbackError(f"{path}: not a judged file (no column {', '.join(sorted(missing))})")
            for number, row in enumerate(reader, start=2):
                if row["wiki"] != wiki or row["task"] != task:
                    continue
                if row["kept"] not in ("yes", "no"):
                    raise FeedbackError(f"{path} line {number}: kept is {row['kept']!r}, not yes/no (judge it first)")
                rows.append({**row, "where": f"{Path(path).name} line {number}"})
    return rows


def judged_submissions(spark, warehouse, wiki: str, task: str, database: str, judged: list[dict]
                       ) -> tuple[list[Submission], list[str]]:
    """The submissions of the judged links found in the ledger (the newest serving of each page and target),
    and one line per judged link that the ledger does not hold."""
    wanted = spark.createDataFrame([(int(r["page_id"]), r["link_target"], i) for i, r in enumerate(judged)],
                                   "page_id long, link_target string, judged int")
    ledger = read_ledger(spark, warehouse, task, wiki, database)
    newest = (ledger.join(wanted, ["page_id", "link_target"])
              .groupBy("judged").agg(F.max_by(F.struct("revision_id", "target_id", "wikitext_offset", "anchor_bytes"),
                                              F.struct("task_timestamp", "run")).alias("served")))
    found = {r.judged: r.served for r in newest.collect()}
    submissions, missing = [], []
    accepted_revisions = {found[i].revision_id for i, r in enumerate(judged) if i in found and r["kept"] == "yes"}
    for i, row in enumerate(judged):
        served = found.get(i)
        if served is None or served.target_id is None:
            missing.append(f"{row['where']}: page {row['page_id']} → {row['link_target']!r} was never served into "
                           "this database; skipped")
            continue
        kept = row["kept"] == "yes"
        # a task with an accepted link was saved; the judged revision stands in for the edit's revision
        edit = served.revision_id if served.revision_id in accepted_revisions else None
        submissions.append(Submission(served.revision_id, served.target_id, served.wikitext_offset,
                                      served.anchor_bytes, int(row["page_id"]), edit, "a" if kept else "r",
                                      row["link_target"], "" if kept else (row["reason"] or "other").split("/")[0]))
    return submissions, missing


def insert_submissions(database, submissions: list[Submission]) -> int:
    """REPLACE the rows into the task's submissions table (the primary key makes a re-import idempotent)."""
    mark = database.mark
    rows = [s.row() for s in submissions]

    def work(cursor):
        if rows:
            cursor.executemany(f"REPLACE INTO {database.task.submissions} (gels_revision, gels_target, "
                               "gels_anchor_offset, gels_anchor_length, gels_page, gels_edit_revision, gels_user, "
                               f"gels_feedback) VALUES ({', '.join([mark] * 8)})", rows)
        return len(rows)
    return database.transaction(work)
