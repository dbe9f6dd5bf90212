"""`linkrec feedback`: GrowthExperiments' submissions joined in Spark to the served-links ledger, so each
reviewed link has its score, model version and section; rates per version, score band and rejection
reason; the calibration of the score; the links reviewed that this project never wrote, apart. Only
aggregates (a row per version, band or reason) and at most EXAMPLES bad rows reach the driver."""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.feedback import FeedbackError
from pipeline.feedback.served import read_ledger, reviewed_folder
from pipeline.warehouse import current_snapshot

LETTERS = {"a": "accepted", "r": "rejected", "s": "skipped"}
EXAMPLES = 20
BAND = 0.1
SUBMISSIONS_SCHEMA = T.StructType([
    T.StructField("gels_revision", T.LongType()), T.StructField("gels_target", T.LongType()),
    T.StructField("gels_anchor_offset", T.LongType()), T.StructField("gels_anchor_length", T.LongType()),
    T.StructField("gels_page", T.LongType()), T.StructField("gels_edit_revision", T.LongType()),
    T.StructField("gels_user", T.LongType()), T.StructField("gels_feedback", T.StringType())])


def stage_submissions(spark, warehouse, database, wiki: str, tag: str) -> str | None:
    """The submissions table copied into the warehouse batch by batch; its path (None when it is empty)."""
    path = warehouse.staging("feedback", wiki, f"submissions-{tag}")
    written = False
    for batch in database.submission_batches():
        rows = [tuple(None if v is None else (str(v) if i == 7 else int(v)) for i, v in enumerate(row))
                for row in batch]
        spark.createDataFrame(rows, SUBMISSIONS_SCHEMA).write.mode("append" if written else "overwrite").parquet(path)
        written = True
    return path if written else None


def read_events(spark, path: str):
    """(revision_id, link_target, reason) per rejection reason logged: JSON lines of the
    link_suggestion_interaction stream with a `rejection_reason` (one reason, or several comma-separated
    or as a list); lines without a revision or a reason carry none."""
    raw = spark.read.text(path)
    parsed = raw.select(F.from_json("value", T.MapType(T.StringType(), T.StringType())).alias("event"))
    reasons = F.regexp_replace(F.coalesce(F.col("event")["rejection_reason"], F.lit("")), r'[\[\]"]', "")
    return (parsed.select(F.col("event")["revision_id"].cast("long").alias("revision_id"),
                          F.col("event")["link_target"].alias("link_target"),
                          F.explode(F.split(reasons, r"\s*,\s*")).alias("reason"))
            .where(F.col("revision_id").isNotNull() & (F.col("reason") != "")).distinct())


def _latest(ledger):
    """One served row per (revision, target, offset): the newest, the one GrowthExperiments showed."""
    order = Window.partitionBy("revision_id", "target_id", "wikitext_offset").orderBy(
        F.col("task_timestamp").desc(), F.col("run").desc())
    return ledger.withColumn("_n", F.row_number().over(order)).where(F.col("_n") == 1).drop("_n")


def _band(column):
    # times the band count, not divided by the width: 0.7 / 0.1 is 6.999…, and 0.7 starts band 7
    bands = round(1 / BAND)
    return F.least(F.floor(F.col(column) * bands), F.lit(bands - 1)).cast("int")


def _counts(rows) -> dict:
    out = {"accepted": 0, "rejected": 0, "skipped": 0}
    for letter, n in rows:
        out[LETTERS[letter]] += int(n)
    return out


def acceptance(counts: dict) -> float | None:
    """Accepted share of the decisions (skips are no decision)."""
    decided = counts["accepted"] + counts["rejected"]
    return round(counts["accepted"] / decided, 4) if decided else None


def threshold_for(bands: list[dict], target: float) -> float | None:
    """The lowest band start from which up the links reviewed reach `target` acceptance (None: no band does)."""
    accepted = rejected = 0
    best = None
    for band in sorted(bands, key=lambda b: -b["from"]):
        accepted, rejected = accepted + band["accepted"], rejected + band["rejected"]
        if accepted + rejected and accepted / (accepted + rejected) >= target:
            best = band["from"]
    return best


def analyse(spark, warehouse, config, task: str, database: str, staged: str | None, events: str | None = None,
            since: datetime | None = None) -> tuple[dict, list[str]]:
    """The feedback summary, and one line per bad submission row shown (at most EXAMPLES)."""
    wiki = config.wiki
    ledger = _latest(read_ledger(spark, warehouse, task, wiki, database)).persist()
    try:
        return _analyse(spark, warehouse, config, task, database, staged, events, since, ledger)
    finally:
        ledger.unpersist()


def _analyse(spark, warehouse, config, task, database, staged, events, since, ledger):
    wiki = config.wiki
    subs = spark.read.parquet(staged) if staged else spark.createDataFrame([], SUBMISSIONS_SCHEMA)
    lengths = ledger.select(F.col("revision_id").alias("gels_revision"), "revision_chars").distinct()
    if (warehouse.manifest(wiki) or {}).get("snapshots"):  # the current dump's revisions, served or not
        pages = warehouse.read("pages", wiki, current_snapshot(warehouse, wiki))
        lengths = lengths.unionByName(pages.select(F.col("revision_id").alias("gels_revision"),
                                                   F.length("wikitext").cast("int").alias("revision_chars")))
    lengths = lengths.groupBy("gels_revision").agg(F.max("revision_chars").alias("revision_chars"))
    checked = (subs.join(lengths, "gels_revision", "left")
               .withColumn("problem", F.when(~F.col("gels_feedback").isin(*LETTERS),
                                             F.concat(F.lit("unknown feedback letter '"),
                                                      F.coalesce("gels_feedback", F.lit("NULL")), F.lit("'")))
                           .when(F.col("gels_anchor_offset") >= F.col("revision_chars"),
                                 F.concat(F.lit("anchor offset beyond the revision's text ("),
                                          F.col("revision_chars").cast("string"), F.lit(" characters)"))))).persist()
    try:
        bad = checked.where(F.col("problem").isNotNull())
        bad_count = bad.count()
        shown = [f"submission (revision {r.gels_revision}, target {r.gels_target}, offset {r.gels_anchor_offset}, "
                 f"page {r.gels_page}): {r.problem}; skipped"
                 for r in bad.orderBy("gels_revision", "gels_target", "gels_anchor_offset").limit(EXAMPLES).collect()]
        good = checked.where(F.col("problem").isNull())
        keys = [F.col("gels_revision") == F.col("revision_id"), F.col("gels_target") == F.col("target_id"),
                F.col("gels_anchor_offset") == F.col("wikitext_offset")]
        joined = good.join(ledger, keys, "left")
        not_ours = joined.where(F.col("model_version").isNull()).count()
        ours = joined.where(F.col("model_version").isNotNull())
        if since is not None:
            ours = ours.where(F.col("task_timestamp") >= int(since.timestamp()))
        ours = ours.persist()
        summary = _rates(spark, config, ours, ledger, events)
        if since is None:  # the whole record, for `train` (a --since reading is a view, not the record)
            ours.select("page_id", "revision_id", "target_id", "wikitext_offset", "link_target", "score", "section",
                        "model_version", "task_timestamp", "gels_feedback", "features").write.mode("overwrite") \
                .parquet(reviewed_folder(warehouse.root, task, wiki, database))
        ours.unpersist()
    finally:
        checked.unpersist()
    summary = {"wiki": wiki, "task": task, **summary, "not_ours": not_ours, "bad_rows": bad_count,
               **({"since": since.isoformat()} if since else {})}
    return summary, shown


def _rates(spark, config, ours, ledger, events) -> dict:
    letter = F.col("gels_feedback")
    totals = _counts((r.gels_feedback, r["count"]) for r in ours.groupBy(letter).count().collect())
    by_version: dict[str, dict] = {}
    for r in ours.groupBy("model_version", letter).count().collect():
        counts = by_version.setdefault(r.model_version, {"accepted": 0, "rejected": 0, "skipped": 0})
        counts[LETTERS[r.gels_feedback]] += int(r["count"])
    for counts in by_version.values():
        counts["acceptance"] = acceptance(counts)
    bands: dict[int, dict] = {}
    for r in ours.groupBy(_band("score").alias("band"), letter).count().collect():
        band = bands.setdefault(r.band, {"from": round(r.band * BAND, 1), "to": round((r.band + 1) * BAND, 1),
                                         "accepted": 0, "rejected": 0, "skipped": 0})
        band[LETTERS[r.gels_feedback]] += int(r["count"])
    by_band = [bands[b] for b in sorted(bands)]
    for band in by_band:
        band["acceptance"] = acceptance(band)
    by_reason: dict[str, int] = {}
    rejected = ours.where(letter == "r")
    if events:
        reasons = read_events(spark, events)
        tagged = rejected.join(reasons, ["revision_id", "link_target"], "left")
        for r in tagged.groupBy(F.coalesce("reason", F.lit("not logged")).alias("reason")).agg(
                F.countDistinct("gels_revision", "gels_target", "gels_anchor_offset").alias("n")).collect():
            by_reason[r.reason] = int(r.n)
    # versions newest first, by when they last served (two: the newest and the one it replaced)
    versions = [r.model_version for r in ledger.groupBy("model_version").agg(
        F.max(F.struct("task_timestamp", "run")).alias("last")).orderBy(F.col("last").desc()).limit(2).collect()]
    newest_version = versions[0] if versions else None
    floor = config.feedback
    empty = {"accepted": 0, "rejected": 0, "skipped": 0, "acceptance": None}
    mine = by_version.get(newest_version, empty)
    decided = mine["accepted"] + mine["rejected"]
    below = bool(decided >= floor.minimum_reviews and mine["acceptance"] is not None
                 and mine["acceptance"] < floor.minimum_acceptance)
    before = by_version.get(versions[1], empty) if len(versions) > 1 else empty
    compared = decided >= floor.minimum_reviews and before["accepted"] + before["rejected"] >= floor.minimum_reviews
    dropped = bool(compared and mine["acceptance"] < before["acceptance"] - floor.maximum_drop)
    return {"reviewed": sum(totals.values()), **totals, "acceptance": acceptance(totals),
            "by_version": dict(sorted(by_version.items())), "by_band": by_band,
            **({"by_reason": dict(sorted(by_reason.items()))} if events else {}),
            "threshold_for_acceptance": {"target": floor.target_acceptance,
                                         "threshold": threshold_for(by_band, floor.target_acceptance)},
            "newest_version": {"version": newest_version, "decisions": decided, "acceptance": mine["acceptance"],
                               "minimum_acceptance": floor.minimum_acceptance,
                               "minimum_reviews": floor.minimum_reviews, "below_floor": below,
                               "previous_version": versions[1] if len(versions) > 1 else None,
                               "previous_acceptance": before["acceptance"], "dropped": dropped}}


def parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FeedbackError(f"--since {value!r}: expected an ISO 8601 time, e.g. 2026-11-01T00:00:00+00:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
