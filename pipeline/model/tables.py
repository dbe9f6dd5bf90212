"""Spark stages that turn the ingested tables into the model's tables, each written under the
warehouse so it can be re-run alone:

- `article_text`: per article, its linked sentences (plain text, link spans) and the plain-text
  occurrences of every candidate anchor (one parse per article for both).
- `excluded_targets`: targets never recommended (Wikidata types, else disambiguation pages and
  year/date titles), with the reason.
- `sentences`: linked sentences with redirect-resolved links, the train/test split, the gold flag.
- `dictionary` per protocol (`reference`, `leakage_free`): anchor → target counts, link probability.
- `graph` per protocol: distinct article → article links, for relatedness.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.config import Config
from pipeline.ingest.derived import is_article, is_article_title
from pipeline.model import slices
from pipeline.recommend.eligibility import DISAMBIGUATION_MAGIC_WORD
from pipeline.text.matcher import AnchorMatcher, anchor_key
from pipeline.text.sentences import article_sentences, render_plain
from pipeline.text.titles import TitleNormaliser
from pipeline.text.wikilinks import parse

PROTOCOLS = ("reference", "leakage_free")
# bump when the layout or meaning of a model table changes, so that old tables are rebuilt
TABLES_VERSION = 6  # 5: Japanese matches stop at kanji/katakana compounds; 6: the anchors' capitalised share

SENTENCES_TYPE = T.ArrayType(T.StructType([
    T.StructField("index", T.IntegerType()),
    T.StructField("text", T.StringType()),
    T.StructField("wikitext", T.StringType()),
    T.StructField("links", T.ArrayType(T.StructType([
        T.StructField("start", T.IntegerType()), T.StructField("end", T.IntegerType()),
        T.StructField("offset", T.IntegerType())]))),
]))
PARSED_SCHEMA = T.StructType([
    T.StructField("page_id", T.LongType(), False),
    T.StructField("title", T.StringType(), False),
    T.StructField("texts", T.ArrayType(T.StringType()), False),
    T.StructField("sentences", SENTENCES_TYPE, False),
])
ARTICLE_TEXT_SCHEMA = T.StructType([
    T.StructField("page_id", T.LongType(), False),
    T.StructField("title", T.StringType(), False),
    T.StructField("plain_counts", T.MapType(T.StringType(), T.IntegerType()), False),
    T.StructField("sentences", SENTENCES_TYPE, False),
])


def plain_pieces(plain) -> list[str]:
    """The running text outside links, cut at every link (a plain occurrence never spans one)."""
    pieces, position = [], 0
    for link in sorted(plain.links, key=lambda link: link.start):
        pieces.append(plain.text[position:link.start])
        position = max(position, link.end)
    pieces.append(plain.text[position:])
    return [piece for piece in pieces if piece]


def count_matches(pieces, matcher: AnchorMatcher) -> Counter:
    counts: Counter = Counter()
    for piece in pieces:
        for match in matcher.find(piece):
            counts[match.anchor] += 1
    return counts


def count_plain_occurrences(plain, matcher: AnchorMatcher) -> Counter:
    """Occurrences of dictionary anchors in the text outside links (the matcher's segmentation)."""
    return count_matches(plain_pieces(plain), matcher)


def _parsed(rows, normaliser, config: Config):
    for row in rows:
        code = parse(row.wikitext)
        plain = render_plain(row.wikitext, normaliser, config.text.link_trail, code)
        sentences = [
            (s.index, s.text, row.wikitext[s.wikitext_start:s.wikitext_end],
             [(a, b, offset) for a, b, _, offset in s.links])
            for s in article_sentences(plain, config.text.sentence_ends) if s.links
        ]
        yield (row.page_id, row.title, plain_pieces(plain), sentences)


def _counted(rows, language: str):
    for row in rows:
        matcher = AnchorMatcher(row.anchor_keys or (), language)  # the keys this article contains
        yield (row.page_id, row.title, dict(count_matches(row.texts, matcher)), row.sentences)


def article_links(links: DataFrame, config: Config, excluded: DataFrame) -> DataFrame:
    """Article links usable as training signal: resolved to a main-namespace article, anchor kept
    by the exclusion patterns, target not excluded. Columns: source_page_id, offset, anchor_key,
    target_page_id, target_title."""
    language = config.text.language
    key = F.udf(lambda anchor: anchor_key(anchor, language), T.StringType())
    usable = links.where((F.col("kind") == "link") & (F.col("resolved_namespace") == 0)
                         & F.col("resolved_page_id").isNotNull())
    keyed = usable.select("source_page_id", "offset", key("anchor").alias("anchor_key"),
                          F.col("resolved_page_id").alias("target_page_id"),
                          F.col("resolved_title").alias("target_title"))
    # the configured patterns are Python regexes (\d matches every script's digits), so match in Python
    excluded_anchor = _matches_any(config.dictionary.excluded_anchor_patterns)
    keyed = keyed.where((F.col("anchor_key") != "") & ~excluded_anchor("anchor_key"))
    return keyed.join(excluded.select(F.col("page_id").alias("target_page_id")), "target_page_id", "left_anti")


def _matches_any(patterns: list[str]):
    compiled = [re.compile(p) for p in patterns]
    return F.udf(lambda text: text is not None and any(p.search(text) for p in compiled), T.BooleanType())


def hub_targets(usable_links: DataFrame, articles: int, config: Config) -> DataFrame:
    """page_id, linking_articles: targets that so many of the wiki's articles link to that everyone knows
    them (the Manual of Style's "what generally should not be linked": the home country, continents, broad
    fields), learned from the wiki's own links; none when `dictionary.hub_link_share` is 0."""
    linked = (usable_links.where(F.col("source_page_id") != F.col("target_page_id"))
              .groupBy(F.col("target_page_id").alias("page_id"))
              .agg(F.countDistinct("source_page_id").alias("linking_articles")))
    minimum = hub_minimum(config, articles)
    return linked.where(F.lit(False) if minimum is None else F.col("linking_articles") >= minimum)


def excluded_targets(spark, pages: DataFrame, titles: DataFrame, config: Config,
                     wikidata: DataFrame | None) -> DataFrame:
    """page_id, reason. With Wikidata: P31 in the configured QIDs (pages without P31 are kept).
    Without: disambiguation pages (the magic word, a configured template, or a template whose own
    text carries the magic word) and titles matching the date patterns."""
    articles = titles.where(is_article_title()).select("page_id", "title")
    if wikidata is not None:
        qids = config.dictionary.excluded_qids + config.dictionary.extra_excluded_qids
        return (wikidata.where(F.col("qid").isin(qids)).select("page_id").distinct()
                .join(articles.select("page_id"), "page_id").withColumn("reason", F.lit("wikidata_type")))
    names = {n.strip() for n in config.dictionary.disambiguation_templates}
    magic = (pages.where((F.col("namespace") == 10) & F.col("wikitext").contains(DISAMBIGUATION_MAGIC_WORD))
             .select("title"))
    names |= {row.title.split(":", 1)[1] for row in magic.collect() if ":" in row.title}
    folded = sorted({n[:1].lower() + n[1:] for n in names} | {n[:1].upper() + n[1:] for n in names})
    template = "|".join("[ _]+".join(re.escape(part) for part in n.split()) for n in folded)
    disambiguation_rule = F.col("wikitext").contains(DISAMBIGUATION_MAGIC_WORD)
    if template:
        disambiguation_rule = disambiguation_rule | F.col("wikitext").rlike(r"\{\{\s*(" + template + r")\s*[|}]")
    disambiguation = (pages.where(is_article()
                                  & disambiguation_rule)
                      .select("page_id").withColumn("reason", F.lit("disambiguation")))
    is_date = _matches_any(config.dictionary.date_title_patterns)
    dates = articles.where(is_date("title")).select("page_id").withColumn("reason", F.lit("date_title"))
    return disambiguation.unionByName(dates).dropDuplicates(["page_id"])


def parse_articles(spark, pages: DataFrame, normaliser: TitleNormaliser, config: Config) -> DataFrame:
    """page_id, title, texts (running text outside links, in pieces), sentences: one parse per article."""
    articles = pages.where(is_article()).select("page_id", "title", "wikitext")
    rows = articles.rdd.mapPartitions(lambda part: _parsed(part, normaliser, config))
    return spark.createDataFrame(rows, PARSED_SCHEMA, verifySchema=False)


def build_article_text(spark, parsed: DataFrame, candidates_path: str, shards: int, language: str) -> DataFrame:
    """`article_text`: the plain-text occurrences of every candidate anchor per article, counted by a
    matcher of the keys the article contains (found with the sharded matchers on the executors)."""
    keys = slices.page_keys(spark, parsed.select("page_id", "texts"), candidates_path, shards, language)
    joined = parsed.join(keys, "page_id", "left")
    return spark.createDataFrame(joined.rdd.mapPartitions(lambda part: _counted(part, language)),
                                 ARTICLE_TEXT_SCHEMA, verifySchema=False)


def effective_min_anchor_links(config: Config, articles: int) -> int:
    """The published minimum (an anchor linked more than once) for real-size wikis; on a small wiki
    most anchors are linked once and the minimum would leave almost no dictionary."""
    small = config.dictionary.small_wiki_articles
    if small and articles < small:
        return min(config.dictionary.small_wiki_min_anchor_links, config.dictionary.min_anchor_links)
    return config.dictionary.min_anchor_links


def effective_test_fraction(config: Config, articles: int) -> float:
    """Large wikis use `test_fraction`; small ones test more articles so that the backtest has at
    least `min_test_articles` of them, up to `max_test_fraction`."""
    wanted = config.model.min_test_articles / max(articles, 1)
    return min(config.model.max_test_fraction, max(config.model.test_fraction, wanted))


def test_split(page_id_column, fraction: float, seed: int):
    """Deterministic split by a hash of the page id (same page → same side in every run)."""
    bucket = F.pmod(F.xxhash64(F.lit(seed), page_id_column), F.lit(10_000))
    return F.when(bucket < F.lit(int(round(fraction * 10_000))), "test").otherwise("train")


def build_sentences(article_text: DataFrame, usable_links: DataFrame, fraction: float, seed: int) -> DataFrame:
    """One row per linked sentence with its links resolved; `gold` marks the first sentence with a
    usable link of each test article."""
    exploded = article_text.select("page_id", "title", F.explode("sentences").alias("s"))
    link_rows = (exploded.select("page_id", F.col("s.index").alias("sentence_index"), F.explode("s.links").alias("l"))
                 .select("page_id", "sentence_index", F.col("l.start").alias("start"), F.col("l.end").alias("end"),
                         F.col("l.offset").alias("offset")))
    resolved = link_rows.join(usable_links.withColumnRenamed("source_page_id", "page_id"), ["page_id", "offset"])
    grouped = resolved.groupBy("page_id", "sentence_index").agg(F.sort_array(F.collect_list(F.struct(
        "start", "end", "offset", "anchor_key", "target_page_id", "target_title"))).alias("links"))
    sentences = exploded.select(
        "page_id", "title", F.col("s.index").alias("sentence_index"), F.col("s.text").alias("text"),
        F.col("s.wikitext").alias("wikitext")).join(grouped, ["page_id", "sentence_index"])
    sentences = sentences.withColumn("split", test_split(F.col("page_id"), fraction, seed))
    first = sentences.groupBy("page_id").agg(F.min("sentence_index").alias("first_index"))
    return (sentences.join(first, "page_id")
            .withColumn("gold", (F.col("split") == "test") & (F.col("sentence_index") == F.col("first_index")))
            .drop("first_index"))


def gold_links(sentences: DataFrame) -> DataFrame:
    """source_page_id, offset of every link in a gold sentence: what the leakage-free protocol removes."""
    return (sentences.where("gold").select(F.col("page_id").alias("source_page_id"), F.explode("links").alias("l"))
            .select("source_page_id", F.col("l.offset").alias("offset")))


def build_dictionary(usable_links: DataFrame, article_text: DataFrame, config: Config, min_links: int,
                     removed_links: DataFrame | None = None, articles: int = 0) -> DataFrame:
    """anchor_key, target_page_id, target_title, count, anchor_links, anchor_plain, link_probability,
    capitalised (`written_case`; null: never linked inside a sentence), mention_articles.
    An anchor mentioned in `dictionary.common_mention_share` of the `articles` or more is a common word of
    the wiki (the Manual of Style's everyday words and places everyone knows) and is left out, as is a hub
    target (`hub_targets`); their links stay in the training data's counts and in the backtest's gold, so
    the recall they cost is measured.
    Links listed in `removed_links` (source_page_id, offset) are taken out; their anchors then count
    as plain text, which is what the text says once the link is gone."""
    links = usable_links
    extra_plain = None
    if removed_links is not None:
        links = usable_links.join(removed_links, ["source_page_id", "offset"], "left_anti")
        extra_plain = (usable_links.join(removed_links, ["source_page_id", "offset"])
                       .groupBy("anchor_key").agg(F.count(F.lit(1)).alias("removed")))
    pairs = links.groupBy("anchor_key", "target_page_id").agg(
        F.count(F.lit(1)).alias("count"), F.min("target_title").alias("target_title"))
    totals = links.groupBy("anchor_key").agg(F.count(F.lit(1)).alias("anchor_links"))
    plain = (article_text.select(F.explode("plain_counts").alias("anchor_key", "n"))
             .groupBy("anchor_key").agg(F.sum("n").alias("anchor_plain")))
    if extra_plain is not None:
        plain = (plain.join(extra_plain, "anchor_key", "full_outer")
                 .select("anchor_key", (F.coalesce("anchor_plain", F.lit(0)) + F.coalesce("removed", F.lit(0)))
                         .alias("anchor_plain")))
    stats = (totals.join(plain, "anchor_key", "left")
             .withColumn("anchor_plain", F.coalesce("anchor_plain", F.lit(0)).cast("long"))
             .withColumn("link_probability",
                         F.col("anchor_links") / (F.col("anchor_links") + F.col("anchor_plain"))))
    stats = stats.where((F.col("anchor_links") >= min_links)
                        & (F.col("link_probability") >= config.dictionary.min_link_probability))
    stats = (stats.join(mention_articles(usable_links, article_text), "anchor_key", "left")
             .join(written_case(links, article_text), "anchor_key", "left"))
    common = common_mention_minimum(config, articles)
    if common is not None:
        stats = stats.where(F.col("mention_articles") < common)
    if hub_minimum(config, articles) is not None:  # off by default: no aggregation of every link for nothing
        hubs = hub_targets(links, articles, config).select(F.col("page_id").alias("target_page_id"))
        pairs = pairs.join(hubs, "target_page_id", "left_anti")
    return pairs.join(stats, "anchor_key").select(
        "anchor_key", "target_page_id", "target_title", "count", "anchor_links", "anchor_plain",
        "link_probability", "capitalised", "mention_articles")


def written_case(usable_links: DataFrame, article_text: DataFrame) -> DataFrame:
    """anchor_key, capitalised: the share of the anchor's links written with an upper-case first letter
    where they stand inside a sentence (a sentence's first word is capitalised whatever it is); anchors
    never linked inside a sentence have no row."""
    inside = (article_text.select("page_id", F.explode("sentences").alias("s"))
              .select("page_id", F.col("s.text").alias("text"), F.explode("s.links").alias("l"))
              .where(F.col("l.start") > 0)
              .select(F.col("page_id").alias("source_page_id"), F.col("l.offset").alias("offset"),
                      F.expr("substring(text, l.start + 1, 1)").alias("first")))
    return (usable_links.select("source_page_id", "offset", "anchor_key").join(inside, ["source_page_id", "offset"])
            .groupBy("anchor_key").agg(F.avg((F.col("first") != F.lower("first")).cast("int")).alias("capitalised")))


def mention_articles(usable_links: DataFrame, article_text: DataFrame) -> DataFrame:
    """anchor_key, mention_articles: how many articles mention the anchor, linked or not (the same under
    both protocols: a removed link is still a mention)."""
    linked = usable_links.select("anchor_key", F.col("source_page_id").alias("page_id"))
    plain = (article_text.select("page_id", F.explode("plain_counts").alias("anchor_key", "n"))
             .where(F.col("n") > 0).select("anchor_key", "page_id"))
    return (linked.unionByName(plain).distinct().groupBy("anchor_key")
            .agg(F.count(F.lit(1)).alias("mention_articles")))


def common_mention_minimum(config: Config, articles: int) -> int | None:
    """The number of mentioning articles that makes an anchor a common word of the wiki (None: off)."""
    return _share_minimum(config.dictionary.common_mention_share, config.dictionary.common_min_articles, articles)


def hub_minimum(config: Config, articles: int) -> int | None:
    """The number of linking articles that makes a target a hub of the wiki (None: off)."""
    return _share_minimum(config.dictionary.hub_link_share, config.dictionary.hub_min_articles, articles)


def _share_minimum(share: float, floor: int, articles: int) -> int | None:
    return max(floor, math.ceil(share * articles - 1e-9)) if share > 0 else None


def build_graph(usable_links: DataFrame, removed_links: DataFrame | None = None) -> DataFrame:
    links = usable_links
    if removed_links is not None:
        links = links.join(removed_links, ["source_page_id", "offset"], "left_anti")
    return (links.where(F.col("source_page_id") != F.col("target_page_id"))
            .select("source_page_id", "target_page_id").distinct())
