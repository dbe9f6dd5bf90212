"""The orphan engine in Spark, the same stages for real orphans (the task) and simulated ones (training
and the backtest). Nothing proportional to the wiki reaches the driver or one task:

1. units: every article parsed once (its links to simulated orphans turned into plain text first):
   top-level segments, eligibility (the task only), and where the removed anchors now sit;
2. mentions of the targets (titles, redirects, disambiguators removed), filtered, keyed and sharded;
3. occurrences: the sharded mention keys found in every article's text (the link task's matcher),
   which also counts each key's articles (the "common text" filter and a feature);
4. each (article, orphan) pair's relation from the link graph without links into the targets, by joins;
5. per article, in Python: candidates and features (`engine.candidates`), then examples, backtest
   counts or task rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.config import Config
from pipeline.model import slices
from pipeline.orphans import table as orphan_table
from pipeline.orphans.engine import FEATURES, OrphanEntry, Relation, candidates, delink
from pipeline.orphans.mentions import mentions_of, too_short
from pipeline.recommend import eligibility as rules
from pipeline.recommend.engine import EngineSettings, Segment, parse_article
from pipeline.recommend.reviews import with_reviews
from pipeline.text.titles import TitleNormaliser

SEGMENTS = T.ArrayType(T.StructType([T.StructField("offset", T.IntegerType()), T.StructField("text", T.StringType()),
                                     T.StructField("eligible", T.BooleanType())]))
UNIT_SCHEMA = T.StructType([
    T.StructField("page_id", T.LongType()), T.StructField("revision_id", T.LongType()),
    T.StructField("reason", T.StringType()), T.StructField("segments", SEGMENTS),
    T.StructField("texts", T.ArrayType(T.StringType())),
    T.StructField("removed", T.ArrayType(T.StructType([
        T.StructField("start", T.IntegerType()), T.StructField("end", T.IntegerType()),
        T.StructField("orphan_id", T.LongType())]))),
])
MENTION_SCHEMA = T.StructType([
    T.StructField("orphan_id", T.LongType()), T.StructField("title", T.StringType()),
    T.StructField("anchor_key", T.StringType()), T.StructField("form", T.StringType()),
    T.StructField("from_redirect", T.BooleanType()), T.StructField("stripped", T.BooleanType()),
    T.StructField("stem", T.BooleanType()), T.StructField("too_short", T.BooleanType()),
])


def engine_settings(config: Config) -> EngineSettings:
    """The link task's settings with the orphan task's score and size limits."""
    o = config.orphans
    base = EngineSettings.from_config(config)
    return EngineSettings(o.minimum_link_score, o.maximum_links_per_task, o.minimum_links_per_task,
                          base.excluded_sections, base.exclude_lead, base.link_trail, base.per_anchor)


# --- 1. units -----------------------------------------------------------------------------------------


def _units(rows, normaliser: TitleNormaliser, settings: EngineSettings, config: Config, now: datetime | None):
    check = rules.Eligibility(config.recommend, normaliser) if now is not None else None
    language = config.text.language
    for row in rows:
        reason = None
        if check is not None:
            reason = check.reason(row.page_id, row.namespace, row.redirect_target, row.wikitext,
                                  datetime.fromtimestamp(row.revision_epoch, UTC), now, bool(row.is_disambiguation))
            if reason is None and row.has_submission:
                reason = rules.HAS_SUBMISSION
            if reason in (rules.NOT_MAIN_NAMESPACE, rules.REDIRECT):
                yield (row.page_id, row.revision_id, reason, None, None, None)
                continue
        removals = [(r.offset, r.length, r.anchor, r.orphan_id) for r in row.removals or ()]
        text, spans = delink(row.wikitext, removals) if removals else (row.wikitext, [])
        parsed = parse_article(text, normaliser, settings, language)
        segments = [(s.offset, s.text, s.eligible and reason is None) for s in parsed.segments]
        yield (row.page_id, row.revision_id, reason, segments, [s.text for s in parsed.segments], spans)


def build_units(spark, pages: DataFrame, links: DataFrame, targets: DataFrame | None, disambiguation: DataFrame,
                normaliser: TitleNormaliser, config: Config, now: datetime | None = None,
                submissions: str | None = None) -> DataFrame:
    """One row per page (main-namespace articles; with `now`, every page, for the task's reasons).
    `targets` (page_id): simulated orphans, whose incoming links become plain text. `submissions`: the
    task's submissions staged in the warehouse (a reviewed revision is not the task's to touch)."""
    pages = pages.select("page_id", "namespace", "title", "redirect_target", "revision_id",
                         F.unix_seconds("revision_timestamp").alias("revision_epoch"), "wikitext")
    if now is None:
        pages = pages.where((F.col("namespace") == 0) & F.col("redirect_target").isNull())
    pages = with_reviews(spark, pages.join(disambiguation, "page_id", "left"), submissions)
    if targets is not None:
        removals = (links.where((F.col("kind") == "link") & (F.col("resolved_namespace") == 0))
                    .join(targets.select(F.col("page_id").alias("resolved_page_id")), "resolved_page_id")
                    .groupBy(F.col("source_page_id").alias("page_id"))
                    .agg(F.collect_list(F.struct("offset", "length", "anchor",
                                                 F.col("resolved_page_id").alias("orphan_id"))).alias("removals")))
        pages = pages.join(removals, "page_id", "left")
    else:
        pages = pages.withColumn("removals", F.lit(None))
    settings = engine_settings(config)
    return spark.createDataFrame(
        pages.rdd.mapPartitions(lambda rows: _units(rows, normaliser, settings, config, now)),
        UNIT_SCHEMA, verifySchema=False)


# --- 2. mentions --------------------------------------------------------------------------------------


def _mentions(rows, config: Config):
    o = config.orphans
    for row in rows:
        for m in mentions_of(row.title, row.redirects, config.text.language,
                             o.stem_min_letters if config.text.link_trail else 0):
            yield (row.page_id, row.title, m.key, m.form, m.from_redirect, m.stripped, m.stem,
                   too_short(m.form, o.min_mention_chars, o.min_mention_chars_spaceless))


def target_redirects(titles: DataFrame, targets: DataFrame) -> DataFrame:
    """page_id, title, redirects of the targets."""
    redirects = (titles.where(F.col("is_redirect") & (F.col("status") == "resolved"))
                 .groupBy(F.col("resolved_page_id").alias("page_id"))
                 .agg(F.array_sort(F.collect_list("title")).alias("redirects")))
    named = targets.select("page_id").join(titles.where(F.col("namespace") == 0).select("page_id", "title"),
                                           "page_id")
    return named.join(redirects, "page_id", "left")


def build_mentions(spark, titles: DataFrame, targets: DataFrame, anchors: DataFrame, config: Config) -> DataFrame:
    """orphan_id, title, anchor_key, form, from_redirect, stripped, too_short, anchor_probability and
    anchor_targets (the key as an anchor of other articles in the dictionary), anchor_of_others."""
    raw = spark.createDataFrame(target_redirects(titles, targets).rdd.mapPartitions(lambda r: _mentions(r, config)),
                                MENTION_SCHEMA, verifySchema=False)
    entries = anchors.select("anchor_key", "targets", "link_probability")
    joined = raw.join(entries, "anchor_key", "left")
    others = F.filter(F.coalesce("targets", F.array()), lambda t: t["page_id"] != F.col("orphan_id"))
    total = F.aggregate(F.coalesce("targets", F.array()), F.lit(0).cast("long"), lambda acc, t: acc + t["count"])
    other_count = F.aggregate(others, F.lit(0).cast("long"), lambda acc, t: acc + t["count"])
    # the key's link probability, counting only its links to other articles
    probability = F.when(total > 0, F.col("link_probability") * other_count / total).otherwise(F.lit(0.0))
    return joined.select(
        "orphan_id", "title", "anchor_key", "form", "from_redirect", "stripped", "stem", "too_short",
        probability.cast("double").alias("anchor_probability"), F.size(others).cast("int").alias("anchor_targets"),
        (probability >= F.lit(config.orphans.max_anchor_probability)).alias("anchor_of_others"))


# --- 3.-4. occurrences, entries and relations ---------------------------------------------------------


def common_text_limit(config: Config, articles: int) -> int:
    """Articles a mention may occur in before it counts as common text."""
    return max(config.orphans.min_plain_pages, int(config.orphans.max_plain_share * articles))


def occurrences(spark, warehouse, wiki: str, snapshot: str, units: DataFrame, mentions: DataFrame, name: str,
                config: Config) -> DataFrame:
    """(page_id, anchor_key) of every usable mention key in every article's text."""
    keys = mentions.where(~F.col("too_short") & ~F.col("anchor_of_others")).select("anchor_key").distinct()
    path = warehouse.table(f"{name}_keys", wiki, snapshot)
    _, shards = slices.write_sharded(keys, path, config.lookups.anchors_per_shard)
    texts = units.where(F.col("texts").isNotNull()).select("page_id", "texts")
    return slices.occurrences(spark, texts, path, shards, config.text.language, config.text.link_trail)


def entries(found: DataFrame, mentions: DataFrame, config: Config, articles: int) -> tuple[DataFrame, DataFrame]:
    """(per page and key: the orphans it names, with the key's facts), and the mentions with plain_pages
    and common_text (for the filter counts)."""
    plain = found.groupBy("anchor_key").agg(F.count(F.lit(1)).alias("plain_pages"))
    limit = common_text_limit(config, articles)
    counted = (mentions.join(plain, "anchor_key", "left").fillna(0, ["plain_pages"])
               .withColumn("common_text", F.col("plain_pages") > F.lit(limit)))
    usable = counted.where(~F.col("too_short") & ~F.col("anchor_of_others") & ~F.col("common_text"))
    sharing = usable.groupBy("anchor_key").agg(F.countDistinct("orphan_id").alias("orphans_sharing"))
    usable = usable.join(sharing, "anchor_key")
    per_page = found.join(usable, "anchor_key").where(F.col("page_id") != F.col("orphan_id"))
    return per_page, counted


FILTER_COUNTS = ("mentions", "too_short", "anchor_of_others", "common_text")


def filter_counts(counted: DataFrame) -> dict[str, int]:
    """Mentions, and how many each filter removed (in order: a mention is counted by the first that does)."""
    row = counted.agg(
        F.count(F.lit(1)).alias("mentions"), F.sum(F.col("too_short").cast("int")).alias("too_short"),
        F.sum((~F.col("too_short") & F.col("anchor_of_others")).cast("int")).alias("anchor_of_others"),
        F.sum((~F.col("too_short") & ~F.col("anchor_of_others") & F.col("common_text")).cast("int"))
        .alias("common_text")).first()
    return {key: int(row[key] or 0) for key in FILTER_COUNTS}


def relations(pairs: DataFrame, edges: DataFrame) -> DataFrame:
    """page_id, orphan_id, common, backlink, orphan_out_degree, source_degree (edges: the article graph
    without links into the targets)."""
    neighbours = (edges.select(F.col("source_page_id").alias("page_id"), F.col("target_page_id").alias("nb"))
                  .unionByName(edges.select(F.col("target_page_id").alias("page_id"),
                                            F.col("source_page_id").alias("nb"))).distinct())
    degree = neighbours.groupBy("page_id").agg(F.count(F.lit(1)).alias("source_degree"))
    out = edges.select(F.col("source_page_id").alias("orphan_id"), F.col("target_page_id").alias("nb"))
    out_degree = out.groupBy("orphan_id").agg(F.count(F.lit(1)).alias("orphan_out_degree"))
    common = (pairs.join(out, "orphan_id").join(neighbours, ["page_id", "nb"])
              .groupBy("page_id", "orphan_id").agg(F.count(F.lit(1)).alias("common")))
    backlink = out.select("orphan_id", F.col("nb").alias("page_id"), F.lit(True).alias("backlink"))
    return (pairs.join(common, ["page_id", "orphan_id"], "left").join(backlink, ["page_id", "orphan_id"], "left")
            .join(out_degree, "orphan_id", "left").join(degree, "page_id", "left")
            .fillna(0, ["common", "orphan_out_degree", "source_degree"]).fillna(False, ["backlink"]))


def page_inputs(units: DataFrame, per_page: DataFrame, related: DataFrame, how: str = "inner") -> DataFrame:
    """Units with `entries` (key, orphan facts) and `relations` (orphan, graph facts) per page (`how`
    "left": every unit, those without a mention too)."""
    grouped = per_page.groupBy("page_id").agg(F.collect_list(F.struct(
        "anchor_key", "orphan_id", "title", "form", "from_redirect", "stripped", "stem", "plain_pages",
        "anchor_probability",
        "anchor_targets", "orphans_sharing")).alias("entries"))
    rel = related.groupBy("page_id").agg(F.collect_list(F.struct(
        "orphan_id", "common", "backlink", "orphan_out_degree", "source_degree")).alias("relations"))
    return units.join(grouped, "page_id", how).join(rel, "page_id", "left")


def found_for(row, articles: int, config: Config):
    """The engine's candidates of one page input row."""
    table: dict[str, list[OrphanEntry]] = {}
    for e in row.entries or ():
        table.setdefault(e.anchor_key, []).append(OrphanEntry(
            int(e.orphan_id), e.title, e.form, bool(e.from_redirect), bool(e.stripped), bool(e.stem),
            int(e.plain_pages),
            float(e.anchor_probability), int(e.anchor_targets), int(e.orphans_sharing)))
    for values in table.values():
        values.sort(key=lambda entry: entry.orphan_id)
    related = {int(r.orphan_id): Relation(int(r.common), bool(r.backlink), int(r.orphan_out_degree),
                                          int(r.source_degree)) for r in row.relations or ()}
    segments = [Segment(s.offset, s.text, s.eligible) for s in row.segments or ()]
    return candidates(int(row.page_id), segments, table, related, articles, config.text.language,
                      config.orphans.case_check, link_trail=config.text.link_trail)


EXAMPLE_SCHEMA = T.StructType(
    [T.StructField("page_id", T.LongType()), T.StructField("start", T.IntegerType()),
     T.StructField("target", T.LongType()), T.StructField("label", T.IntegerType())]
    + [T.StructField(name, T.DoubleType()) for name in FEATURES])


def graph_edges(links: DataFrame, targets: DataFrame | None) -> DataFrame:
    """Article → article edges (self-links left out), without those into `targets`."""
    edges = orphan_table.wikitext_edges(links).where(F.col("source_page_id") != F.col("target_page_id"))
    if targets is not None:
        edges = edges.join(targets.select(F.col("page_id").alias("target_page_id")), "target_page_id", "left_anti")
    return edges.select("source_page_id", "target_page_id")
