"""The Spark recommend job: every selected page in parallel, candidates scored in one model call per
batch of articles, one output row per page (wiki, page id, revision id, gelr_data JSON or null, reason)."""

from __future__ import annotations

import dataclasses
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
from pipeline.model import ModelError
from pipeline.model import lookups as lookup_paths
from pipeline.model.artifacts import gate_for, load_model, model_root, served_threshold
from pipeline.model.train import MODEL_TABLES, booster_from_bytes, build_tables, predict, table_stats
from pipeline.recommend import eligibility as rules
from pipeline.recommend.engine import (
    EngineSettings,
    ParsedArticle,
    Segment,
    finish_batch,
    parse_article,
    prepare,
    prepare_parsed,
)
from pipeline.recommend.reviews import with_reviews
from pipeline.text.titles import TitleNormaliser
from pipeline.warehouse import current_snapshot, siteinfo_of

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
    T.StructField("features", T.MapType(T.IntegerType(), T.ArrayType(T.DoubleType())), True),
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

    def normalised(self, normaliser: TitleNormaliser) -> Selection:
        """Titles as the pages table holds them (first letter, underscores, spacing)."""
        titles = tuple(normaliser.display(t) or t for t in self.titles)
        return Selection(self.first, self.last, self.page_ids, titles)

    def unmatched(self, pages) -> list[str]:
        """The asked-for titles and ids that name no page of the snapshot."""
        found_titles = {r.title for r in pages.where(F.col("title").isin(list(self.titles))).select("title")
                        .collect()} if self.titles else set()
        found_ids = {r.page_id for r in pages.where(F.col("page_id").isin(list(self.page_ids))).select("page_id")
                     .collect()} if self.page_ids else set()
        return ([t for t in dict.fromkeys(self.titles) if t not in found_titles]
                + [str(i) for i in dict.fromkeys(self.page_ids) if i not in found_ids])

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
    """Everything a task needs, broadcast once (the lookups and titles only on the broadcast path)."""

    wiki: str
    lookups: object  # None on the join path
    titles: dict[str, int]
    normaliser: TitleNormaliser
    settings: EngineSettings
    language: str
    recommend_config: object
    model_raw: bytes
    meta: dict
    now: datetime


def _gelr_data(links: list[dict], meta: dict) -> str:
    return json.dumps({"links": links, "meta": meta}, ensure_ascii=False, separators=(",", ":"))


def _reason(check: rules.Eligibility, row, context: Context) -> str | None:
    """Why the page gets no evaluation (None: it is eligible)."""
    # epoch seconds from Spark: a timestamp handed to Python comes back in the worker's local zone
    timestamp = datetime.fromtimestamp(row.revision_epoch, UTC)
    reason = check.reason(row.page_id, row.namespace, row.redirect_target, row.wikitext, timestamp, context.now,
                          bool(row.is_disambiguation))
    if reason is None and row.has_submission:
        return rules.HAS_SUBMISSION
    return reason


def _skipped(context: Context, row, reason: str) -> tuple:
    return (context.wiki, row.page_id, row.revision_id, None, reason, 0, None, None, None)


def output_rows(pairs: list, context: Context, booster):
    """(page row, prepared article) pairs → output rows, all their candidates scored in one model call."""
    results = finish_batch([prepared for _, prepared in pairs], lambda f: predict(booster, f).tolist(),
                           context.settings)
    for (row, _), result in zip(pairs, results, strict=True):
        if result.links:
            yield (context.wiki, row.page_id, row.revision_id, _gelr_data(result.links, context.meta), rules.OK,
                   len(result.links), result.link_counts, result.scores, result.features)
        else:
            yield (context.wiki, row.page_id, row.revision_id, None, rules.TOO_FEW_LINKS, 0, result.link_counts,
                   result.scores, None)


def scored_batches(items, context: Context):
    """(row, prepared article) or (row, reason) items → output rows; the candidates of up to
    BATCH_ARTICLES articles (BATCH_CANDIDATES candidates) are scored in one model call."""
    booster = booster_from_bytes(context.model_raw)
    pending = []
    pending_candidates = 0
    for row, prepared in items:
        if isinstance(prepared, str):
            yield _skipped(context, row, prepared)
            continue
        if row.rejected_targets:
            prepared.linked_targets |= set(row.rejected_targets)  # rejected twice: never offered again here
        pending.append((row, prepared))
        pending_candidates += len(prepared.candidates)
        if len(pending) >= BATCH_ARTICLES or pending_candidates >= BATCH_CANDIDATES:
            yield from output_rows(pending, context, booster)
            pending.clear()
            pending_candidates = 0
    if pending:
        yield from output_rows(pending, context, booster)


def run_partition(rows, context_broadcast):
    """The broadcast path: eligibility, then candidates from the broadcast lookups."""
    context: Context = context_broadcast.value
    check = rules.Eligibility(context.recommend_config, context.normaliser)

    def items():
        for row in rows:
            reason = _reason(check, row, context)
            yield row, reason if reason is not None else prepare(
                row.wikitext, row.page_id, context.lookups, context.titles, context.normaliser, context.settings)

    yield from scored_batches(items(), context)


def eligibility_rows(rows, context_broadcast):
    """The join path's first step: the reason of every page (None: eligible), and the parse of the
    eligible ones (top-level segments, existing links)."""
    context: Context = context_broadcast.value
    check = rules.Eligibility(context.recommend_config, context.normaliser)
    for row in rows:
        reason = _reason(check, row, context)
        if reason is not None:
            yield (row.page_id, row.revision_id, reason, None, None, None, None, None)
            continue
        parsed = parse_article(row.wikitext, context.normaliser, context.settings, context.language)
        yield (row.page_id, row.revision_id, None, [(s.offset, s.text, s.eligible) for s in parsed.segments],
               [s.text for s in parsed.segments if s.eligible], parsed.linked_titles, parsed.linked_anchors,
               row.rejected_targets)


ELIGIBILITY_SCHEMA = T.StructType([
    T.StructField("page_id", T.LongType()), T.StructField("revision_id", T.LongType()),
    T.StructField("reason", T.StringType()),
    T.StructField("segments", T.ArrayType(T.StructType([
        T.StructField("offset", T.IntegerType()), T.StructField("text", T.StringType()),
        T.StructField("eligible", T.BooleanType())]))),
    T.StructField("texts", T.ArrayType(T.StringType())),
    T.StructField("linked_titles", T.ArrayType(T.StringType())),
    T.StructField("linked_anchors", T.ArrayType(T.StringType())),
    T.StructField("rejected_targets", T.ArrayType(T.LongType())),
])


def _joined_items(pairs, context: Context):
    for row, lookups in pairs:
        parsed = ParsedArticle([Segment(s.offset, s.text, s.eligible) for s in row.segments],
                               list(row.linked_titles or ()), list(row.linked_anchors or ()))
        yield row, prepare_parsed(parsed, row.page_id, lookups, dict(row.titles or {}), context.settings)


def _join_path(spark, warehouse, config: Config, context: Context, broadcast, pages, snapshot: str, stats):
    """Nothing proportional to the wiki is broadcast: the page's linked titles, dictionary entries and
    relatedness come by joins (`model/slices.py`)."""
    wiki = config.wiki
    checked = spark.createDataFrame(pages.rdd.mapPartitions(lambda part: eligibility_rows(part, broadcast)),
                                    ELIGIBILITY_SCHEMA, verifySchema=False).persist()
    skipped = checked.where(F.col("reason").isNotNull()).select(
        F.lit(wiki).alias("wiki"), "page_id", "revision_id", F.lit(None).cast("string").alias("gelr_data"), "reason",
        F.lit(0).alias("links"), F.lit(None).cast("array<int>").alias("link_counts"),
        F.lit(None).cast("array<float>").alias("scores"), F.lit(None).cast("map<int,array<double>>").alias("features"))
    eligible = checked.where(F.col("reason").isNull()).drop("reason")
    titles = title_index(warehouse, wiki, snapshot).select(F.col("title").alias("linked_title"),
                                                           F.col("resolved_page_id").alias("linked_id"))
    linked = (eligible.select("page_id", F.explode("linked_titles").alias("linked_title")).join(titles, "linked_title")
              .groupBy("page_id").agg(F.map_from_entries(F.collect_list(F.struct("linked_title", "linked_id")))
                                      .alias("titles")))
    units = eligible.join(linked, "page_id", "left")
    rdd, release = lookup_paths.map_pages(spark, warehouse, config, snapshot, "reference", units, "join", stats,
                                          lambda pairs: scored_batches(_joined_items(pairs, broadcast.value),
                                                                       broadcast.value))
    return spark.createDataFrame(rdd, OUTPUT_SCHEMA, verifySchema=False).unionByName(skipped), checked


def title_index(warehouse, wiki: str, snapshot: str):
    """title, resolved_page_id: display title → main-namespace article, redirects resolved; one row per
    title (a title held twice, as a stitched input may have, resolves to the smaller id)."""
    titles = warehouse.read("titles", wiki, snapshot)
    return (titles.where((F.col("resolved_namespace") == 0) & F.col("resolved_page_id").isNotNull())
            .groupBy("title").agg(F.min("resolved_page_id").alias("resolved_page_id")))


def newest_revision(warehouse, wiki: str, snapshot: str) -> int:
    """Epoch seconds of the snapshot's newest revision (recorded at ingestion; computed for older manifests)."""
    entry = (warehouse.manifest(wiki) or {}).get("snapshots", {}).get(snapshot, {})
    if "newest_revision" in entry:
        return int(entry["newest_revision"])
    pages = warehouse.read("pages", wiki, snapshot)
    return int(pages.agg(F.max(F.unix_seconds("revision_timestamp"))).first()[0] or 0)


def article_titles(warehouse, wiki: str, snapshot: str) -> dict[str, int]:
    """The title index as a dict (the broadcast path)."""
    return {r.title: int(r.resolved_page_id) for r in title_index(warehouse, wiki, snapshot).toLocalIterator()}


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
    lookups: str = "broadcast"
    unmatched: list[str] = field(default_factory=list)  # asked-for titles and ids that name no page
    orphans_included: str = ""  # with recommend.include_orphans: whether orphan links were merged, and why not
    threshold: tuple[float, str] = (0.0, "")  # the score threshold served, and why (recommend.target_precision)

    def summary(self) -> dict:
        return {"wiki": self.wiki, "snapshot": self.snapshot, "model": self.model, "version": self.version,
                "output": self.output, "pages_read": self.pages, "eligible": self.with_links + self.null_rows,
                "skipped": {k: v for k, v in self.reasons.items() if k not in (rules.OK, rules.TOO_FEW_LINKS)},
                "with_links": self.with_links, "null_rows": self.null_rows, "links": self.links,
                "lookups": self.lookups, "seconds": self.seconds,
                "minimum_link_score": {"served": self.threshold[0], "why": self.threshold[1]},
                **({"unmatched": self.unmatched} if self.unmatched else {}),
                **({"orphans_included": self.orphans_included} if self.orphans_included else {})}


def recommend(spark, warehouse, config: Config, selection: Selection, now: datetime, model_name: str | None = None,
              ignore_gate: bool = False, submissions: str | None = None, lookups_path: str | None = None
              ) -> RecommendResult:
    """`submissions`: the task's submissions table staged in the warehouse (`feedback.job.stage_submissions`;
    None: nothing reviewed). `lookups_path`: "broadcast" sends the dictionary, sketches and titles to every
    task; "join" keeps them as tables and joins (for wikis whose lookups would not fit a process); "auto" or
    None: by their estimated size (`lookups.broadcast_max_bytes`)."""
    started = time.time()
    wiki = config.wiki
    snapshot = current_snapshot(warehouse, wiki)
    newest = newest_revision(warehouse, wiki, snapshot)
    if now.timestamp() < newest:
        # every article would count as edited recently and lose its task
        raise ModelError(f"--now {now.isoformat()} is before the newest revision of {wiki} snapshot {snapshot} "
                         f"({datetime.fromtimestamp(newest, UTC).isoformat()}): the reference time must not "
                         "precede the input")
    name = model_name or wiki
    record, boosters = load_model(warehouse, name)
    try:
        released, reason = gate_for(warehouse, record, wiki, f"linkrec evaluate --wiki {wiki} --model {name}")
    except ModelError:
        if not ignore_gate:
            raise
        released = True
    if not released and not ignore_gate:
        raise ModelError(f"model {name} {record['version']} is not released for {wiki} "
                         f"({reason or 'gate failed'}); use --ignore-gate to use it anyway")
    checksums = json.loads(warehouse.read_text(f"{model_root(warehouse, name)}/{record['version']}/checksums.json"))
    if not all(warehouse.exists(warehouse.table(t, wiki, snapshot)) for t in MODEL_TABLES):
        build_tables(spark, warehouse, config)  # a wiki served by another wiki's or a joint model
    stats = table_stats(warehouse, wiki, "reference")
    threshold = served_threshold(warehouse, record, wiki, config.recommend.minimum_link_score,
                                 config.recommend.target_precision)
    mode = lookup_paths.choose_mode(config, stats, lookups_path)
    join = mode == "join"
    context = Context(
        wiki=wiki,
        lookups=None if join else lookup_paths.load_lookups(warehouse, config, snapshot, "reference", stats.articles),
        titles={} if join else article_titles(warehouse, wiki, snapshot),
        normaliser=TitleNormaliser.from_siteinfo(siteinfo_of(warehouse, wiki, snapshot), config.text.case),
        settings=dataclasses.replace(EngineSettings.from_config(config), minimum_link_score=threshold[0]),
        language=config.text.language,
        recommend_config=config.recommend, model_raw=boosters["reference"],
        meta={"application_version": __version__, "dataset_checksums": checksums, "format_version": 1,
              "task_timestamp": int(now.timestamp())},
        now=now)
    broadcast = spark.sparkContext.broadcast(context)
    checked = None
    try:
        disambiguation = (warehouse.read("excluded_targets", wiki, snapshot).where(F.col("reason") == "disambiguation")
                          .select("page_id", F.lit(True).alias("is_disambiguation")))
        all_pages = warehouse.read("pages", wiki, snapshot)
        if selection.titles:
            selection = selection.normalised(context.normaliser)
        unmatched = selection.unmatched(all_pages)
        pages = selection.apply(all_pages)
        pages = pages.select("page_id", "namespace", "title", "redirect_target", "revision_id",
                             F.unix_seconds("revision_timestamp").alias("revision_epoch"), "wikitext")
        pages = with_reviews(spark, pages.join(disambiguation, "page_id", "left"), submissions)
        if join:
            frame, checked = _join_path(spark, warehouse, config, context, broadcast, pages, snapshot, stats)
        else:
            frame = spark.createDataFrame(pages.rdd.mapPartitions(lambda part: run_partition(part, broadcast)),
                                          OUTPUT_SCHEMA, verifySchema=False)
        output = (f"{warehouse.root}/recommendations/wiki={wiki}/run={now.strftime('%Y%m%dT%H%M%S')}-"
                  f"{uuid.uuid4().hex[:6]}")
        frame.write.mode("overwrite").parquet(output)
        orphans_included = ""
        if config.recommend.include_orphans:
            from pipeline.orphans import mixed
            from pipeline.orphans import task as orphan_task

            try:
                extra = orphan_task.recommend(spark, warehouse, config, selection, now, ignore_gate, submissions,
                                              model_name=config.orphans.model or None)
            except ModelError as exc:  # no released orphan model: the link task stands alone
                orphans_included = f"no: {exc}"
            else:
                merged = f"{output}-with-orphans"
                mixed.merged_output(spark, output, extra.output, merged, config, context.meta)
                warehouse.delete(output)
                output = merged
                orphans_included = f"yes: model {extra.model} {extra.version}"
    finally:  # a long nightly must not keep a failed run's broadcast and cached frames
        broadcast.unpersist()
        if checked is not None:
            checked.unpersist()
    written = spark.read.parquet(output)
    reasons = Counter({r.reason: r["count"] for r in written.groupBy("reason").count().collect()})
    links = written.agg(F.sum("links")).first()[0] or 0
    return RecommendResult(wiki, snapshot, name, record["version"], output, sum(reasons.values()),
                           dict(sorted(reasons.items())), reasons.get(rules.OK, 0), reasons.get(rules.TOO_FEW_LINKS, 0),
                           int(links), round(time.time() - started, 2), mode, unmatched, orphans_included, threshold)


def prune_runs(warehouse, wiki: str, keep: int, protect: list[str], folder: str | None = None) -> list[str]:
    """Delete all but the newest `keep` recommendation outputs of a wiki (never one in `protect`); the deleted.
    `folder`: another task's outputs (default: the link task's)."""
    runs = [path for path in warehouse.list_by_age(folder or f"{warehouse.root}/recommendations/wiki={wiki}")
            if path.rsplit("/", 1)[-1].startswith("run=")]
    kept = {path.rsplit("/", 1)[-1] for path in protect}
    old = [path for path in runs if path.rsplit("/", 1)[-1] not in kept]
    doomed = old[: max(0, len(runs) - max(keep, len(kept)))]
    for path in doomed:
        warehouse.delete(path)
    return doomed
