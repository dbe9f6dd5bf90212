"""How the per-page code gets its lookups (dictionary, matcher, relatedness): one object broadcast to
every task while it is small, else per-page slices by joins (`slices.py`); chosen by estimated size."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame

from pipeline.config import Config
from pipeline.model import slices
from pipeline.model.features import AnchorEntry, Lookups, Sketch

# bytes per item of a broadcast Lookups in one Python process, rounded up from tracemalloc on ltgwiki
# (entries ~270 B and automaton ~310 B per anchor, ~115 B per neighbour value with its page's set)
BYTES_PER_ANCHOR = 900
BYTES_PER_TARGET = 120
BYTES_PER_SKETCH_PAGE = 300
BYTES_PER_SKETCH_VALUE = 70
# the title index recommend broadcasts too: an article and about one redirect, ~120 B each
BYTES_PER_ARTICLE_TITLES = 250


@dataclass(frozen=True)
class TableStats:
    """What the model tables of one protocol hold (from the manifest, counted when they were built)."""

    articles: int
    anchors: int
    targets: int
    sketch_pages: int
    sketch_values: int
    shards: int

    @classmethod
    def of(cls, stats: dict, protocol: str) -> TableStats:
        """Raises KeyError for tables built before these statistics were kept."""
        return cls(int(stats["articles"]), int(stats[f"anchors_{protocol}"]), int(stats[f"dictionary_rows_{protocol}"]),
                   int(stats[f"sketch_pages_{protocol}"]), int(stats[f"sketch_values_{protocol}"]),
                   int(stats[f"shards_{protocol}"]))

    def broadcast_bytes(self) -> int:
        return (self.anchors * BYTES_PER_ANCHOR + self.targets * BYTES_PER_TARGET
                + self.sketch_pages * BYTES_PER_SKETCH_PAGE + self.sketch_values * BYTES_PER_SKETCH_VALUE
                + self.articles * BYTES_PER_ARTICLE_TITLES)


def choose_mode(config: Config, stats: TableStats, requested: str | None = None) -> str:
    """"broadcast" or "join": the requested mode, else the configured one; auto picks by size."""
    mode = requested or config.lookups.mode
    if mode == "auto":
        return "broadcast" if stats.broadcast_bytes() <= config.lookups.broadcast_max_bytes else "join"
    return mode


def load_lookups(warehouse, config: Config, snapshot: str, protocol: str, articles: int) -> Lookups:
    """The whole dictionary and every sketch of one protocol, read for broadcast (small wikis only)."""
    wiki = config.wiki
    anchors = {}
    for row in warehouse.read(f"anchors_{protocol}", wiki, snapshot).toLocalIterator():
        anchors[row.anchor_key] = AnchorEntry.of(row)
    size = config.model.relatedness_sketch
    neighbours: dict[int, Sketch] = {}
    if config.model.relatedness:
        for row in warehouse.read(f"sketches_{protocol}", wiki, snapshot).toLocalIterator():
            neighbours[int(row.page_id)] = slices.sketch_of(row, size)
    return Lookups(anchors, neighbours, articles, config.text.language, config.model.relatedness)


def map_pages(spark, warehouse, config: Config, snapshot: str, protocol: str, units: DataFrame, mode: str,
              stats: TableStats, func):
    """RDD of `func(iterator of (unit row, Lookups))` per partition. `units` has `page_id` and `texts`
    (what the matcher must search). Returns (rdd, release) where release() frees a broadcast."""
    if mode == "broadcast":
        broadcast = spark.sparkContext.broadcast(load_lookups(warehouse, config, snapshot, protocol, stats.articles))

        def run(rows):
            lookups = broadcast.value
            return func((row, lookups) for row in rows)

        return units.rdd.mapPartitions(run), broadcast.unpersist
    wiki = config.wiki
    language, use_relatedness = config.text.language, config.model.relatedness
    articles = stats.articles
    sketches = warehouse.read(f"sketches_{protocol}", wiki, snapshot) if use_relatedness else None
    anchors_path = warehouse.table(f"anchors_{protocol}", wiki, snapshot)
    sliced = slices.slices(spark, units.select("page_id", "texts"), anchors_path, stats.shards, sketches,
                           config.model.candidates_per_anchor, articles, config.model.relatedness_sketch, language)
    joined = units.join(sliced, "page_id", "left")

    def run_sliced(rows):
        return func((row, slices.local_lookups(row.page_id, row.entries, row.pairs, articles, language,
                                               use_relatedness)) for row in rows)

    return joined.rdd.mapPartitions(run_sliced), lambda: None
