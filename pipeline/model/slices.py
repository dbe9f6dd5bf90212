"""Lookups per page by joins, for wikis whose dictionary and link graph would not fit a process: the
tables stay distributed and each page receives only the dictionary entries its text matches and the
relatedness of its candidate pairs. Nothing proportional to the wiki reaches the driver or one task:

- anchor keys are stored in shards (`shard` = hash of the key mod N, N from the anchor count and
  `lookups.anchors_per_shard`); a Python worker builds the automaton of one shard from its Parquet
  files and keeps it while it works through that shard's pass over the texts;
- the keys a page contains are joined with the per-anchor entries (targets, counts, kurtosis, link
  probability), its candidate pairs (page, target) with both pages' neighbourhood sketches;
- `local_lookups` turns a page's slice into the `Lookups` the engine takes, with a matcher of the
  matched anchors only, which finds exactly what the whole dictionary's matcher finds in that text.
"""

from __future__ import annotations

import math

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.model.features import (
    EMPTY_SKETCH,
    ENTRY_COLUMNS,
    AnchorEntry,
    Lookups,
    Sketch,
    mix_array,
    padded_kurtosis,
    sketch_relatedness,
)
from pipeline.text.matcher import AnchorMatcher
from pipeline.warehouse import filesystem

FOUND_SCHEMA = T.StructType([T.StructField("page_id", T.LongType()), T.StructField("anchor_key", T.StringType())])
PAIR_SCHEMA = T.StructType([T.StructField("page_id", T.LongType()), T.StructField("target", T.LongType()),
                            T.StructField("relatedness", T.DoubleType())])


# --- sharded anchor keys --------------------------------------------------------------------------


def shard_count(anchors: int, per_shard: int) -> int:
    return max(1, math.ceil(anchors / max(1, per_shard)))


def with_shard(frame: DataFrame, shards: int) -> DataFrame:
    return frame.withColumn("shard", F.pmod(F.xxhash64("anchor_key"), F.lit(shards)).cast("int"))


def write_sharded(frame: DataFrame, path: str, per_shard: int) -> tuple[int, int]:
    """Write rows keyed by `anchor_key` partitioned by shard; return (rows, shards). The frame is
    persisted (on the executors) so that counting it and writing it compute it once."""
    frame = frame.persist()
    try:
        rows = frame.count()
        shards = shard_count(rows, per_shard)
        (with_shard(frame, shards).repartition(shards, "shard").write.partitionBy("shard").mode("overwrite")
         .parquet(path))
    finally:
        frame.unpersist()
    return rows, shards


def read_shard_keys(path: str, shard: int) -> list[str]:
    """The anchor keys of one shard, read on the executor (an empty shard has no folder)."""
    import pyarrow.parquet as pq
    from pyarrow import fs as pafs

    store, base = filesystem(f"{path}/shard={shard}")
    if store.get_file_info(base).type == pafs.FileType.NotFound:
        return []
    return pq.read_table(base, columns=["anchor_key"], filesystem=store).column("anchor_key").to_pylist()


_SHARD_MATCHERS: dict[tuple, AnchorMatcher] = {}


def shard_matcher(path: str, shard: int, language: str, link_trail: str = "") -> AnchorMatcher:
    """The automaton of one shard, built once per worker process; one shard is kept at a time."""
    key = (path, shard, language, link_trail)
    matcher = _SHARD_MATCHERS.get(key)
    if matcher is None:
        _SHARD_MATCHERS.clear()
        matcher = _SHARD_MATCHERS[key] = AnchorMatcher(read_shard_keys(path, shard), language, link_trail)
    return matcher


def _found(rows, path: str, shard: int, language: str, link_trail: str = ""):
    for row in rows:
        matcher = shard_matcher(path, shard, language, link_trail)
        keys = set()
        for text in row.texts or ():
            keys.update(match.anchor for match in matcher.find_all(text))
        for key in sorted(keys):
            yield (row.page_id, key)


def occurrences(spark, units: DataFrame, keys_path: str, shards: int, language: str, link_trail: str = ""
                ) -> DataFrame:
    """(page_id, anchor_key) for every sharded key occurring on word boundaries in a page's `texts`
    (`link_trail`: trail letters may follow a key, as they follow a link)."""
    found = None
    for shard in range(shards):
        part = spark.createDataFrame(
            units.rdd.mapPartitions(lambda rows, s=shard: _found(rows, keys_path, s, language, link_trail)),
            FOUND_SCHEMA,
            verifySchema=False)
        found = part if found is None else found.unionByName(part)
    return found.distinct()


def page_keys(spark, units: DataFrame, keys_path: str, shards: int, language: str) -> DataFrame:
    """page_id, anchor_keys: the sharded keys each page's `texts` contain (for a matcher of its own)."""
    found = occurrences(spark, units, keys_path, shards, language)
    return found.groupBy("page_id").agg(F.sort_array(F.collect_list("anchor_key")).alias("anchor_keys"))


# --- the model's per-anchor entries and neighbourhood sketches ------------------------------------


def anchor_entries(dictionary: DataFrame) -> DataFrame:
    """anchor_key, targets (page_id, title, count; most linked first, then lowest id), kurtosis,
    link_probability, capitalised: one row per anchor, what the engine's AnchorEntry holds."""
    grouped = dictionary.groupBy("anchor_key").agg(
        F.sort_array(F.collect_list(F.struct((-F.col("count")).alias("neg_count"), F.col("target_page_id"),
                                             F.col("target_title")))).alias("t"),
        F.first("link_probability").alias("link_probability"), F.first("capitalised").alias("capitalised"))
    kurtosis = F.udf(lambda counts: padded_kurtosis(list(counts)), T.DoubleType())
    targets = F.transform("t", lambda t: F.struct(t["target_page_id"].alias("page_id"),
                                                  t["target_title"].alias("title"), (-t["neg_count"]).alias("count")))
    return grouped.select("anchor_key", targets.alias("targets"),
                          kurtosis(F.transform("t", lambda t: -t["neg_count"])).alias("kurtosis"),
                          "link_probability", "capitalised")


def _mixed(ids: pd.Series) -> pd.Series:
    return pd.Series(mix_array(ids.to_numpy()))


def build_sketches(graph: DataFrame, size: int) -> DataFrame:
    """page_id, degree, smallest: the page's neighbourhood (in- and out-links) as at most `size`
    smallest `mix` values; exact below that degree."""
    pairs = graph.select(F.col("source_page_id").alias("page_id"), F.col("target_page_id").alias("nb")).unionByName(
        graph.select(F.col("target_page_id").alias("page_id"), F.col("source_page_id").alias("nb"))).distinct()
    return (pairs.withColumn("mixed", F.pandas_udf(_mixed, "long")("nb")).groupBy("page_id")
            .agg(F.count(F.lit(1)).alias("degree"),
                 F.slice(F.sort_array(F.collect_list("mixed")), 1, size).alias("smallest")))


def sketch_of(row, size: int) -> Sketch:
    return Sketch.of(int(row.degree), row.smallest, size)


# --- slices ---------------------------------------------------------------------------------------


SKETCH_CACHE = 10_000  # sketches kept per task (a hub target recurs in many pairs)


def _pair_relatedness(rows, articles: int, size: int):
    cache: dict[int, Sketch] = {}

    def sketch(page_id, degree, smallest) -> Sketch:
        if not degree:
            return EMPTY_SKETCH
        found = cache.get(page_id)
        if found is None:
            if len(cache) >= SKETCH_CACHE:
                cache.clear()
            found = cache[page_id] = Sketch.of(degree, smallest, size)
        return found

    for row in rows:
        source = sketch(row.page_id, row.degree_s, row.smallest_s)
        target = sketch(row.target, row.degree_t, row.smallest_t)
        yield (row.page_id, row.target, sketch_relatedness(source, target, row.page_id, row.target, articles))


def slices(spark, units: DataFrame, anchors_path: str, shards: int, sketches: DataFrame | None, per_anchor: int,
           articles: int, sketch_size: int, language: str) -> DataFrame:
    """page_id, entries (the anchors its `texts` contain), pairs (target, relatedness) for the
    targets the engine may offer from them (`sketches` None: relatedness off)."""
    found = occurrences(spark, units.select("page_id", "texts"), anchors_path, shards, language)
    entries = spark.read.parquet(anchors_path).select("anchor_key", *ENTRY_COLUMNS)
    matched = found.join(entries, "anchor_key")
    out = matched.groupBy("page_id").agg(F.collect_list(F.struct("anchor_key", *ENTRY_COLUMNS)).alias("entries"))
    if sketches is None:
        return out.withColumn("pairs", F.lit(None).cast("array<struct<target:long,relatedness:double>>"))
    # the engine skips the page itself and offers at most `per_anchor` targets of an anchor
    pairs = (matched.select("page_id", F.explode(F.slice("targets", 1, per_anchor + 1)).alias("t"))
             .select("page_id", F.col("t.page_id").alias("target")).where(F.col("page_id") != F.col("target"))
             .distinct())
    side = sketches.select("page_id", "degree", "smallest")
    joined = (pairs.join(side.select("page_id", F.col("degree").alias("degree_s"),
                                     F.col("smallest").alias("smallest_s")), "page_id", "left")
              .join(side.select(F.col("page_id").alias("target"), F.col("degree").alias("degree_t"),
                                F.col("smallest").alias("smallest_t")), "target", "left"))
    related = spark.createDataFrame(
        joined.rdd.mapPartitions(lambda rows: _pair_relatedness(rows, articles, sketch_size)), PAIR_SCHEMA,
        verifySchema=False)
    grouped = related.groupBy("page_id").agg(F.collect_list(F.struct("target", "relatedness")).alias("pairs"))
    return out.join(grouped, "page_id", "left")


def local_lookups(page_id: int, entries, pairs, articles: int, language: str, use_relatedness: bool) -> Lookups:
    """The engine's Lookups for one page, from its slice."""
    anchors = {e.anchor_key: AnchorEntry.of(e) for e in entries or ()}
    related = {(page_id, int(p.target)): float(p.relatedness) for p in pairs or ()}
    return Lookups(anchors, {}, articles, language, use_relatedness, related)
