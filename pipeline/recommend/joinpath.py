"""The join-based path of the recommend job, for wikis whose dictionary, link graph or title index
would not fit an executor's memory. Nothing large is broadcast:

1. each article is parsed once into its top-level text segments and its existing links;
2. anchors are found with the same matcher, built per shard of the anchor keys (one broadcast
   shard at a time), and the longest-first choice is made per article over all shards' matches;
3. candidate targets, their features and relatedness come from joins with the dictionary, the
   link graph and the title index;
4. the job scores and chooses exactly as on the broadcast path (`job.output_rows`).

It gives the same rows as the broadcast path (tested on a shared dump)."""

from __future__ import annotations

import zlib

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.model.features import Candidate, milne_witten_counts, padded_kurtosis, similarity
from pipeline.recommend.engine import PreparedArticle, Segment, top_level_segments
from pipeline.text.matcher import AnchorMatcher, Match, anchor_key, word_count
from pipeline.text.wikilinks import extract_links, parse

SEGMENTS_SCHEMA = T.StructType([
    T.StructField("page_id", T.LongType()), T.StructField("revision_id", T.LongType()),
    T.StructField("segments", T.ArrayType(T.StructType([
        T.StructField("offset", T.IntegerType()), T.StructField("text", T.StringType()),
        T.StructField("eligible", T.BooleanType())]))),
    T.StructField("linked_titles", T.ArrayType(T.StringType())),
    T.StructField("linked_anchors", T.ArrayType(T.StringType())),
])
MATCH_SCHEMA = T.StructType([
    T.StructField("page_id", T.LongType()), T.StructField("segment", T.IntegerType()),
    T.StructField("start", T.IntegerType()), T.StructField("end", T.IntegerType()),
    T.StructField("anchor_key", T.StringType()),
])


def _segments(rows, normaliser, settings, language):
    for row in rows:
        code = parse(row.wikitext)
        links = [link for link in extract_links(row.wikitext, normaliser, settings.link_trail, code)
                 if link.kind == "link" and link.target_title is not None]
        yield (row.page_id, row.revision_id,
               [(s.offset, s.text, s.eligible) for s in top_level_segments(code, settings)],
               sorted({link.target_title for link in links}),
               sorted({anchor_key(link.anchor, language) for link in links if link.anchor}))


def _shard_matches(rows, matcher_broadcast):
    matcher: AnchorMatcher = matcher_broadcast.value
    for row in rows:
        for index, segment in enumerate(row.segments):
            if segment.eligible:
                for match in matcher.find_all(segment.text):
                    yield (row.page_id, index, match.start, match.end, match.anchor)


def _longest_first(matches: list[Match]) -> list[Match]:
    """The matcher's own choice (longest first, then leftmost, no overlaps), over merged shard results."""
    taken, used = [], set()
    for match in sorted(matches, key=lambda m: (m.start - m.end, m.start)):
        if any(i in used for i in range(match.start, match.end)):
            continue
        used.update(range(match.start, match.end))
        taken.append(match)
    return taken


def _select(rows):
    by_segment: dict[tuple[int, int], list[Match]] = {}
    for row in rows:
        by_segment.setdefault((row.page_id, row.segment), []).append(Match(row.start, row.end, row.anchor_key))
    for (page_id, segment), matches in by_segment.items():
        for match in _longest_first(matches):
            yield (page_id, segment, match.start, match.end, match.anchor)


def candidates_by_join(spark, articles: DataFrame, dictionary: DataFrame, graph: DataFrame, titles: DataFrame,
                       normaliser, settings, language: str, shards: int) -> DataFrame:
    """One row per article: page_id, revision_id, segments, linked target ids, candidates with features."""
    segments = spark.createDataFrame(
        articles.rdd.mapPartitions(lambda part: _segments(part, normaliser, settings, language)), SEGMENTS_SCHEMA,
        verifySchema=False).cache()
    anchors = [r.anchor_key for r in dictionary.select("anchor_key").distinct().toLocalIterator()]
    shard_of = {key: zlib.crc32(key.encode("utf-8")) % shards for key in anchors}
    found = None
    for shard in range(shards):
        matcher = spark.sparkContext.broadcast(AnchorMatcher([k for k in anchors if shard_of[k] == shard], language))
        part = spark.createDataFrame(segments.rdd.mapPartitions(lambda rows, m=matcher: _shard_matches(rows, m)),
                                     MATCH_SCHEMA, verifySchema=False).localCheckpoint()
        matcher.unpersist()
        found = part if found is None else found.unionByName(part)
    selected = spark.createDataFrame(
        found.repartition("page_id").sortWithinPartitions("page_id", "segment").rdd.mapPartitions(_select),
        MATCH_SCHEMA, verifySchema=False)

    linked = (segments.select("page_id", F.explode("linked_titles").alias("title"))
              .join(titles, "title").select("page_id", F.col("resolved_page_id").alias("linked_id")).distinct())
    linked_anchors = segments.select("page_id", F.explode("linked_anchors").alias("anchor_key"))
    per_anchor = (dictionary.groupBy("anchor_key").agg(F.sort_array(F.collect_list(F.struct(
        (-F.col("count")).alias("neg_count"), "target_page_id", "target_title"))).alias("targets")))
    kurtosis = F.udf(lambda targets: padded_kurtosis([-t.neg_count for t in targets]), T.DoubleType())
    per_anchor = per_anchor.withColumn("kurtosis", kurtosis("targets")).withColumn("ambig", F.size("targets"))
    # skip anchors already linked as text, or one of whose targets is already linked
    targets_linked = (selected.join(per_anchor, "anchor_key")
                      .select("page_id", "anchor_key", F.explode("targets").alias("t"))
                      .join(linked.withColumnRenamed("linked_id", "target_id"),
                            ["page_id"]).where(F.col("t.target_page_id") == F.col("target_id"))
                      .select("page_id", "anchor_key").distinct())
    kept = (selected.join(linked_anchors, ["page_id", "anchor_key"], "left_anti")
            .join(targets_linked, ["page_id", "anchor_key"], "left_anti"))
    exploded = kept.join(per_anchor, "anchor_key").select(
        "page_id", "segment", "start", "end", "anchor_key", "kurtosis", "ambig",
        F.posexplode("targets").alias("rank", "t"))
    exploded = exploded.where(F.col("t.target_page_id") != F.col("page_id"))
    order = Window.partitionBy("page_id", "segment", "start").orderBy("rank")
    candidates = (exploded.withColumn("n", F.row_number().over(order)).where(F.col("n") <= settings.per_anchor)
                  .select("page_id", "segment", "start", "end", "anchor_key", "kurtosis", "ambig",
                          F.col("t.target_page_id").alias("target_id"), F.col("t.target_title").alias("target_title"),
                          (-F.col("t.neg_count")).alias("freq")))
    # relatedness: neighbourhood sizes and overlap by joins (the pair's own link left out)
    neighbours = graph.select(F.col("source_page_id").alias("page"), F.col("target_page_id").alias("nb")).unionByName(
        graph.select(F.col("target_page_id").alias("page"), F.col("source_page_id").alias("nb"))).distinct()
    degree = neighbours.groupBy("page").agg(F.count(F.lit(1)).alias("degree"))
    pairs = candidates.select(F.col("page_id").alias("s"), F.col("target_id").alias("t")).distinct()
    common = (pairs.join(neighbours.withColumnRenamed("page", "s").withColumnRenamed("nb", "x"), "s")
              .join(neighbours.withColumnRenamed("page", "t").withColumnRenamed("nb", "x"), ["t", "x"])
              .groupBy("s", "t").agg(F.count(F.lit(1)).alias("common")))
    direct = neighbours.select(F.col("page").alias("s"), F.col("nb").alias("t"), F.lit(1).alias("direct"))
    pair_stats = (pairs.join(common, ["s", "t"], "left").join(direct, ["s", "t"], "left")
                  .join(degree.select(F.col("page").alias("s"), F.col("degree").alias("degree_s")), "s", "left")
                  .join(degree.select(F.col("page").alias("t"), F.col("degree").alias("degree_t")), "t", "left")
                  .fillna(0, ["common", "direct", "degree_s", "degree_t"]))
    candidates = candidates.join(pair_stats.withColumnRenamed("s", "page_id").withColumnRenamed("t", "target_id"),
                                 ["page_id", "target_id"], "left")
    grouped = candidates.groupBy("page_id").agg(F.collect_list(F.struct(
        "segment", "start", "end", "anchor_key", "target_id", "target_title", "freq", "ambig", "kurtosis",
        "common", "direct", "degree_s", "degree_t")).alias("candidates"))
    linked_ids = linked.groupBy("page_id").agg(F.collect_set("linked_id").alias("linked_ids"))
    return (segments.join(grouped, "page_id", "left").join(linked_ids, "page_id", "left")
            .select("page_id", "revision_id", "segments", "candidates", "linked_ids"))


def prepared_from_row(row, article_count: int, use_relatedness: bool) -> PreparedArticle:
    """Rebuild the engine's PreparedArticle from the joined row, features computed as the engine does."""
    segments = [Segment(s.offset, s.text, s.eligible) for s in row.segments]
    candidates = []
    for c in sorted(row.candidates or [], key=lambda c: (c.segment, c.start, c.freq * -1, c.target_id)):
        text = segments[c.segment].text[c.start:c.end]
        relatedness = milne_witten_counts(c.degree_s - c.direct, c.degree_t - c.direct, c.common, article_count) \
            if use_relatedness else 0.0
        features = (float(word_count(text)), float(c.freq), float(c.ambig), c.kurtosis,
                    similarity(text, c.target_title), relatedness)
        candidates.append((Candidate(Match(c.start, c.end, c.anchor_key), text, c.target_id, c.target_title, features),
                           c.segment))
    return PreparedArticle(row.page_id, segments, candidates, set(row.linked_ids or []))

