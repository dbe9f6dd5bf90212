"""The Spark recommend job: every selected page in parallel, candidates scored in one model call per
batch of articles, one output row per page (wiki, page id, revision id, gelr_data JSON or null, reason)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline import __version__
from pipeline.config import Config
from pipeline.model.train import (
    MODEL_TABLES,
    ModelError,
    article_count,
    booster_from_bytes,
    build_tables,
    current_snapshot,
    load_lookups,
    load_model,
    model_root,
    predict,
    siteinfo_of,
)
from pipeline.recommend import eligibility as rules
from pipeline.recommend.engine import EngineSettings, finish_batch, prepare
from pipeline.text.titles import TitleNormaliser

OUTPUT_SCHEMA = T.StructType([
    T.StructField("wiki", T.StringType(), False),
    T.StructField("page_id", T.LongType(), False),
    T.StructField("revision_id", T.LongType(), False),
    T.StructField("gelr_data", T.StringType(), True),
    T.StructField("reason", T.StringType(), False),
    T.StructField("links", T.IntegerType(), False),
    # For the run report: links available at each engine.REPORT_THRESHOLDS value, and their scores at the lowest.
    T.StructField("link_counts", T.ArrayType(T.IntegerType()), True),
    T.StructField("scores", T.ArrayType(T.FloatType()), True),
])
BATCH_ARTICLES = 200
BATCH_CANDIDATES = 50_000


@dataclass(frozen=True)
class Selection:
    """Which pages: a page-id range, ids, titles, or (all empty) every page."""

    first: int | None = None
    last: int | None = None
    page_ids: tuple[int, ...] = ()
    titles: tuple[str, ...] = ()

    def apply(self, pages):
        if self.first is not None:
            pages = pages.where(F.col("page_id").between(self.first, self.last))
        if self.page_ids:
            pages = pages.where(F.col("page_id").isin(list(self.page_ids)))
        if self.titles:
            pages = pages.where(F.col("title").isin(list(self.titles)))
        return pages


@dataclass
class Context:
    """Everything a task needs, broadcast once."""

    wiki: str
    lookups: object  # None on the join path
    articles: int
    titles: dict[str, int]
    normaliser: TitleNormaliser
    settings: EngineSettings
    recommend_config: object
    disambiguation_ids: set[int]
    model_raw: bytes
    meta: dict
    now: datetime
    submitted_revisions: set[int] = field(default_factory=set)
    rejected: dict[int, set[int]] = field(default_factory=dict)


def _gelr_data(links: list[dict], meta: dict) -> str:
    return json.dumps({"links": links, "meta": meta}, ensure_ascii=False, separators=(",", ":"))


def _reason(check: rules.Eligibility, row, context: Context) -> str | None:
    """Why the page gets no evaluation (None: it is eligible)."""
    timestamp = row.revision_timestamp.replace(tzinfo=UTC)
    reason = check.reason(row.page_id, row.namespace, row.redirect_target, row.wikitext, timestamp, context.now)
    if reason is None and row.revision_id in context.submitted_revisions:
        return rules.HAS_SUBMISSION
    return reason


def output_rows(pairs: list, context: Context, booster):
    """(page row, prepared article) pairs → output rows, all their candidates scored in one model call."""
    results = finish_batch([prepared for _, prepared in pairs], lambda f: predict(booster, f).tolist(),
                           context.settings)
    for (row, _), result in zip(pairs, results, strict=True):
        if result.links:
            yield (context.wiki, row.page_id, row.revision_id, _gelr_data(result.links, context.meta), rules.OK,
                   len(result.links), result.link_counts, result.scores)
        else:
            yield (context.wiki, row.page_id, row.revision_id, None, rules.TOO_FEW_LINKS, 0, result.link_counts,
                   result.scores)


def _rejected_kept_out(prepared, context: Context):
    rejected = context.rejected.get(prepared.page_id)
    if rejected:
        prepared.linked_targets |= rejected  # rejected twice: never offered again on this page
    return prepared


def _joined_rows(rows, context_broadcast, use_relatedness: bool):
    """The join path's last step: rebuild each article's candidates, then score as the broadcast path does."""
    from pipeline.recommend.joinpath import prepared_from_row

    context: Context = context_broadcast.value
    booster = booster_from_bytes(context.model_raw)
    pairs = [(row, _rejected_kept_out(prepared_from_row(row, context.articles, use_relatedness), context))
             for row in rows]
    yield from output_rows(pairs, context, booster)


def run_partition(rows, context_broadcast):
    """Eligibility, then candidates of up to BATCH_ARTICLES articles scored in one model call."""
    context: Context = context_broadcast.value
    booster = booster_from_bytes(context.model_raw)
    check = rules.Eligibility(context.recommend_config, context.normaliser, context.disambiguation_ids)
    pending = []  # (row, prepared)
    pending_candidates = 0

    def flush():
        yield from output_rows(pending, context, booster)
        pending.clear()

    for row in rows:
        reason = _reason(check, row, context)
        if reason is not None:
            yield (context.wiki, row.page_id, row.revision_id, None, reason, 0, None, None)
            continue
        prepared = prepare(row.wikitext, row.page_id, context.lookups, context.titles, context.normaliser,
                           context.settings)
        pending.append((row, _rejected_kept_out(prepared, context)))
        pending_candidates += len(prepared.candidates)
        if len(pending) >= BATCH_ARTICLES or pending_candidates >= BATCH_CANDIDATES:
            yield from flush()
            pending_candidates = 0
    if pending:
        yield from flush()


def eligibility_rows(rows, context_broadcast):
    """The join path's first step: the reason of every page (None: eligible), with what later steps need."""
    context: Context = context_broadcast.value
    check = rules.Eligibility(context.recommend_config, context.normaliser, context.disambiguation_ids)
    for row in rows:
        reason = _reason(check, row, context)
        yield (row.page_id, row.revision_id, reason, row.wikitext if reason is None else None)


ELIGIBILITY_SCHEMA = T.StructType([
    T.StructField("page_id", T.LongType()), T.StructField("revision_id", T.LongType()),
    T.StructField("reason", T.StringType()), T.StructField("wikitext", T.StringType()),
])


def _join_path(spark, warehouse, config: Config, context: Context, broadcast, pages, snapshot: str, shards: int):
    from pipeline.recommend import joinpath

    wiki = config.wiki
    checked = spark.createDataFrame(pages.rdd.mapPartitions(lambda part: eligibility_rows(part, broadcast)),
                                    ELIGIBILITY_SCHEMA, verifySchema=False).cache()
    skipped = checked.where(F.col("reason").isNotNull()).select(
        F.lit(wiki).alias("wiki"), "page_id", "revision_id", F.lit(None).cast("string").alias("gelr_data"), "reason",
        F.lit(0).alias("links"), F.lit(None).cast("array<int>").alias("link_counts"),
        F.lit(None).cast("array<float>").alias("scores"))
    titles = (warehouse.read("titles", wiki, snapshot)
              .where((F.col("resolved_namespace") == 0) & F.col("resolved_page_id").isNotNull())
              .select("title", "resolved_page_id"))
    joined = joinpath.candidates_by_join(
        spark, checked.where(F.col("reason").isNull()).select("page_id", "revision_id", "wikitext"),
        warehouse.read("dictionary_reference", wiki, snapshot), warehouse.read("graph_reference", wiki, snapshot),
        titles, context.normaliser, context.settings, config.text.language, shards)
    use_relatedness = config.model.relatedness
    scored = joined.rdd.mapPartitions(lambda part: _joined_rows(part, broadcast, use_relatedness))
    return spark.createDataFrame(scored, OUTPUT_SCHEMA, verifySchema=False).unionByName(skipped)


def article_titles(warehouse, wiki: str, snapshot: str) -> dict[str, int]:
    """Display title → main-namespace article id, redirects resolved."""
    titles = warehouse.read("titles", wiki, snapshot)
    rows = titles.where((F.col("resolved_namespace") == 0) & F.col("resolved_page_id").isNotNull()).select(
        "title", "resolved_page_id")
    return {r.title: int(r.resolved_page_id) for r in rows.toLocalIterator()}


@dataclass
class RecommendResult:
    wiki: str
    snapshot: str
    model: str
    version: str
    output: str
    pages: int
    reasons: dict[str, int]
    with_links: int
    null_rows: int
    links: int
    seconds: float
    rows: list = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        return {"wiki": self.wiki, "snapshot": self.snapshot, "model": self.model, "version": self.version,
                "output": self.output, "pages_read": self.pages, "eligible": self.with_links + self.null_rows,
                "skipped": {k: v for k, v in self.reasons.items() if k not in (rules.OK, rules.TOO_FEW_LINKS)},
                "with_links": self.with_links, "null_rows": self.null_rows, "links": self.links,
                "seconds": self.seconds}


def recommend(spark, warehouse, config: Config, selection: Selection, now: datetime, model_name: str | None = None,
              ignore_gate: bool = False, submitted_revisions: set[int] | None = None,
              rejected: dict[int, set[int]] | None = None, lookups_path: str = "broadcast",
              shards: int = 4) -> RecommendResult:
    """`lookups_path`: "broadcast" sends the dictionary, graph and titles to every task; "join" keeps
    them as tables and joins (for wikis whose lookups would not fit an executor)."""
    started = time.time()
    wiki = config.wiki
    snapshot = current_snapshot(warehouse, wiki)
    name = model_name or wiki
    record, boosters = load_model(warehouse, name)
    released = record.get("released_for", {}).get(wiki, record["released"]) if name != wiki else record["released"]
    if not released and not ignore_gate:
        raise ModelError(f"model {name} {record['version']} is not released for {wiki} "
                         f"({record.get('reason', 'gate failed')}); use --ignore-gate to use it anyway")
    checksums = json.loads(warehouse.read_text(f"{model_root(warehouse, name)}/{record['version']}/checksums.json"))
    if not all(warehouse.exists(warehouse.table(t, wiki, snapshot)) for t in MODEL_TABLES):
        build_tables(spark, warehouse, config)  # a wiki served by another wiki's or a joint model
    join = lookups_path == "join"
    lookups = None if join else load_lookups(warehouse, config, "reference")
    excluded = warehouse.read("excluded_targets", wiki, snapshot)
    context = Context(
        wiki=wiki, lookups=lookups, articles=article_count(warehouse, wiki),
        titles={} if join else article_titles(warehouse, wiki, snapshot),
        normaliser=TitleNormaliser.from_siteinfo(siteinfo_of(warehouse, wiki, snapshot), config.text.case),
        settings=EngineSettings.from_config(config), recommend_config=config.recommend,
        disambiguation_ids={int(r.page_id) for r in excluded.where(F.col("reason") == "disambiguation").collect()},
        model_raw=boosters["reference"],
        meta={"application_version": __version__, "dataset_checksums": checksums, "format_version": 1,
              "task_timestamp": int(now.timestamp())},
        now=now, submitted_revisions=submitted_revisions or set(), rejected=rejected or {})
    broadcast = spark.sparkContext.broadcast(context)
    pages = selection.apply(warehouse.read("pages", wiki, snapshot))
    pages = pages.select("page_id", "namespace", "title", "redirect_target", "revision_id", "revision_timestamp",
                         "wikitext")
    if join:
        frame = _join_path(spark, warehouse, config, context, broadcast, pages, snapshot, shards)
    else:
        frame = spark.createDataFrame(pages.rdd.mapPartitions(lambda part: run_partition(part, broadcast)),
                                      OUTPUT_SCHEMA, verifySchema=False)
    output = f"{warehouse.root}/recommendations/wiki={wiki}/run={now.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    frame.write.mode("overwrite").parquet(output)
    broadcast.unpersist()
    written = spark.read.parquet(output)
    reasons = Counter({r.reason: r["count"] for r in written.groupBy("reason").count().collect()})
    links = written.agg(F.sum("links")).first()[0] or 0
    return RecommendResult(wiki, snapshot, name, record["version"], output, sum(reasons.values()),
                           dict(sorted(reasons.items())), reasons.get(rules.OK, 0), reasons.get(rules.TOO_FEW_LINKS, 0),
                           int(links), round(time.time() - started, 2))
