"""The orphan task in Spark: for every selected eligible article its best links to orphans, one output row
per page in the link task's shape (so the same sinks write them, to the orphan task's table and tag)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from pyspark.sql import functions as F

from pipeline import __version__
from pipeline.config import Config
from pipeline.model import ModelError
from pipeline.model.artifacts import sha256_bytes
from pipeline.model.train import booster_from_bytes, build_tables
from pipeline.orphans import job
from pipeline.orphans import model as orphan_model
from pipeline.orphans import table as orphan_table
from pipeline.recommend import eligibility as rules
from pipeline.recommend.engine import finish_batch
from pipeline.recommend.job import OUTPUT_SCHEMA, RecommendResult, Selection, newest_revision
from pipeline.recommend.reviews import rejected_targets
from pipeline.text.titles import TitleNormaliser
from pipeline.warehouse import current_snapshot, siteinfo_of

BATCH_ARTICLES = 200


def runs_folder(warehouse, wiki: str) -> str:
    return f"{warehouse.root}/recommendations/wiki={wiki}/{orphan_model.TASK}"


def _rows(rows, wiki: str, model_raw: bytes, meta: dict, articles: int, config: Config):
    booster = booster_from_bytes(model_raw)
    settings = job.engine_settings(config)
    pending = []

    def flush():
        prepared = [item for _, item in pending]
        outcomes = finish_batch(prepared, lambda f: orphan_model.predict(booster, f).tolist(), settings)
        for (row, _), result in zip(pending, outcomes, strict=True):
            if result.links:
                data = json.dumps({"links": result.links, "meta": meta}, ensure_ascii=False, separators=(",", ":"))
                yield (wiki, row.page_id, row.revision_id, data, rules.OK, len(result.links), result.link_counts,
                       result.scores, result.features)
            else:
                yield (wiki, row.page_id, row.revision_id, None, rules.TOO_FEW_LINKS, 0, result.link_counts,
                       result.scores, None)
        pending.clear()

    for row in rows:
        if row.reason is not None:
            yield (wiki, row.page_id, row.revision_id, None, row.reason, 0, None, None, None)
            continue
        found = job.found_for(row, articles, config)
        found.prepared.linked_targets |= set(row.rejected_targets or ())  # rejected twice: never again
        pending.append((row, found.prepared))
        if len(pending) >= BATCH_ARTICLES:
            yield from flush()
    if pending:
        yield from flush()


@dataclass
class OrphanResult(RecommendResult):
    """The link task's result, with the orphans and the mention filters' counts."""

    orphans: int = 0
    orphans_with_suggestion: int = 0
    filters: dict = field(default_factory=dict)

    def summary(self) -> dict:
        out = super().summary()
        for key in ("lookups", "with_links"):
            out.pop(key)
        return {**out, "mentions": self.filters, "orphans": self.orphans,
                "orphans_with_suggestion": self.orphans_with_suggestion,
                "suggestions_per_orphan": round(self.links / self.orphans_with_suggestion, 2)
                if self.orphans_with_suggestion else 0.0, "pages_with_links": self.with_links}


def recommend(spark, warehouse, config: Config, selection: Selection, now: datetime, ignore_gate: bool = False,
              submissions: str | None = None, pagelinks: str | None = None, model_name: str | None = None
              ) -> OrphanResult:
    """`submissions`: the task's submissions staged in the warehouse (None: nothing reviewed); `model_name`:
    another wiki's orphan model (e.g. for a wiki too small to train its own)."""
    started = time.time()
    wiki = config.wiki
    snapshot = current_snapshot(warehouse, wiki)
    if now.timestamp() < newest_revision(warehouse, wiki, snapshot):
        raise ModelError(f"--now {now.isoformat()} is before the newest revision of {wiki} snapshot {snapshot}: "
                         "the reference time must not precede the input")
    record, raw = orphan_model.load(warehouse, config, model_name)
    try:
        released, reason = orphan_model.gate_for(warehouse, record, wiki)
    except ModelError:
        if not ignore_gate:
            raise
        released = True
    if not released and not ignore_gate:
        raise ModelError(f"orphan model {record['name']} {record['version']} is not released for {wiki} ({reason}); "
                         "use --ignore-gate to use it anyway")
    build_tables(spark, warehouse, config)
    orphan_summary = orphan_table.build(spark, warehouse, config, pagelinks)
    stage = f"orphan_run_{uuid.uuid4().hex[:6]}"
    try:
        return _recommend_staged(spark, warehouse, config, selection, now, submissions, record, raw,
                                 orphan_summary, stage, started)
    finally:
        for name in STAGE_TABLES:  # the whole table folder, not only this snapshot's partition
            warehouse.delete(f"{warehouse.root}/{stage}_{name}")


STAGE_TABLES = ("units", "mentions", "found", "keys")


def _recommend_staged(spark, warehouse, config: Config, selection: Selection, now: datetime, submissions,
                      record: dict, raw: bytes, orphan_summary: dict, stage: str, started: float) -> OrphanResult:
    wiki = config.wiki
    snapshot = current_snapshot(warehouse, wiki)
    normaliser = TitleNormaliser.from_siteinfo(siteinfo_of(warehouse, wiki, snapshot), config.text.case)
    pages, titles = warehouse.read("pages", wiki, snapshot), warehouse.read("titles", wiki, snapshot)
    links = warehouse.read("links", wiki, snapshot)
    excluded = warehouse.read("excluded_targets", wiki, snapshot)
    orphans = spark.read.parquet(orphan_summary["path"]).select("page_id", "title")
    articles = int((warehouse.manifest(wiki) or {}).get("model_tables", {}).get("articles") or 0)

    def write(name, frame):
        path = warehouse.table(f"{stage}_{name}", wiki, snapshot)
        frame.write.mode("overwrite").parquet(path)
        return spark.read.parquet(path)

    disambiguation = excluded.where(F.col("reason") == "disambiguation").select(
        "page_id", F.lit(True).alias("is_disambiguation"))
    units = write("units", job.build_units(spark, pages, links, None, disambiguation, normaliser, config, now,
                                           submissions))
    anchors = spark.read.parquet(warehouse.table("anchors_reference", wiki, snapshot))
    mentions = write("mentions", job.build_mentions(spark, titles, orphans, anchors, config))
    found = write("found", job.occurrences(spark, warehouse, wiki, snapshot, units, mentions, stage, config))
    per_page, counted = job.entries(found, mentions, config, articles)
    if selection.titles:
        selection = selection.normalised(normaliser)
    unmatched = selection.unmatched(pages)
    chosen = selection.apply(pages).select("page_id")
    eligible = units.where(F.col("reason").isNull()).select("page_id").join(chosen, "page_id")
    full = job.graph_edges(links, None)
    already = full.select(F.col("source_page_id").alias("page_id"), F.col("target_page_id").alias("orphan_id"))
    per_page = per_page.join(eligible, "page_id").join(already, ["page_id", "orphan_id"], "left_anti")
    pairs = per_page.select("page_id", "orphan_id").distinct()
    related = job.relations(pairs, job.graph_edges(links, orphans))
    inputs = job.page_inputs(units.join(chosen, "page_id"), per_page, related, how="left")
    rejected = rejected_targets(spark, submissions)
    inputs = (inputs.join(rejected, "page_id", "left") if rejected is not None
              else inputs.withColumn("rejected_targets", F.lit(None).cast("array<long>")))
    meta = {"application_version": __version__, "dataset_checksums": {"orphan_model": sha256_bytes(raw)},
            "format_version": 1, "task_timestamp": int(now.timestamp())}
    frame = spark.createDataFrame(
        inputs.rdd.mapPartitions(lambda rows: _rows(rows, wiki, raw, meta, articles, config)),
        OUTPUT_SCHEMA, verifySchema=False)
    output = f"{runs_folder(warehouse, wiki)}/run={now.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    frame.write.mode("overwrite").parquet(output)
    written = spark.read.parquet(output)
    reasons = Counter({r.reason: r["count"] for r in written.groupBy("reason").count().collect()})
    link_schema = "struct<links:array<struct<link_target:string>>>"
    suggested = (written.where(F.col("gelr_data").isNotNull())
                 .select(F.explode(F.from_json("gelr_data", link_schema)["links"]).alias("l"))
                 .select(F.col("l.link_target")).distinct().count())
    links_total = written.agg(F.sum("links")).first()[0] or 0
    filters = job.filter_counts(counted)  # before the stage tables it reads are deleted
    return OrphanResult(wiki, snapshot, record["name"], record["version"], output, sum(reasons.values()),
                        dict(sorted(reasons.items())), reasons.get(rules.OK, 0), reasons.get(rules.TOO_FEW_LINKS, 0),
                        int(links_total), round(time.time() - started, 2), "join", unmatched,
                        orphans=int(orphan_summary["orphans"]), orphans_with_suggestion=int(suggested),
                        filters=filters)
