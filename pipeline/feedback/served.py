"""The served-links ledger: every link this project wrote to a task's table, one row per (revision, target,
offset, model version), with what `linkrec feedback` needs to read an editor's decision against it
(score, model, version, section, the anchor's length in UTF-8 bytes as GrowthExperiments stores it).
Appended by each writing run with only the links it did not hold yet (an anti-join, never a collect),
so a wiki served every night grows it by what changed, not by its size."""

from __future__ import annotations

import hashlib

from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.text.sections import section_at

KEY = ["revision_id", "target_id", "wikitext_offset", "model_version"]
LINKS_SCHEMA = T.StructType([T.StructField("links", T.ArrayType(T.StructType([
    T.StructField("link_text", T.StringType()), T.StructField("link_target", T.StringType()),
    T.StructField("wikitext_offset", T.IntegerType()), T.StructField("score", T.DoubleType()),
    T.StructField("link_index", T.IntegerType())]))),
    T.StructField("meta", T.StructType([T.StructField("task_timestamp", T.LongType())]))])
LEDGER_SCHEMA = T.StructType([
    T.StructField("page_id", T.LongType()), T.StructField("revision_id", T.LongType()),
    T.StructField("target_id", T.LongType()), T.StructField("wikitext_offset", T.IntegerType()),
    T.StructField("anchor_bytes", T.IntegerType()), T.StructField("link_text", T.StringType()),
    T.StructField("link_target", T.StringType()), T.StructField("link_index", T.IntegerType()),
    T.StructField("score", T.DoubleType()), T.StructField("section", T.StringType()),
    T.StructField("revision_chars", T.IntegerType()), T.StructField("model", T.StringType()),
    T.StructField("model_version", T.StringType()), T.StructField("task_timestamp", T.LongType()),
    T.StructField("run", T.StringType()), T.StructField("features", T.ArrayType(T.DoubleType()))])


def database_key(database: str) -> str:
    """A database URL as a folder name (its password never written)."""
    from sinks.base import redact

    return hashlib.sha256(redact(database).encode()).hexdigest()[:16]


def ledger_folder(root: str, task: str, wiki: str, database: str) -> str:
    """One ledger per database written to (a staging database's links are not the production one's)."""
    return f"{root}/served/task={task}/wiki={wiki}/db={database_key(database)}"


def reviewed_folder(root: str, task: str, wiki: str, database: str) -> str:
    """The links of that database that editors reviewed, with what they were served with (`train` learns
    from them); rewritten by each reading of the submissions."""
    return f"{root}/feedback/task={task}/wiki={wiki}/db={database_key(database)}"


def read_ledger(spark, warehouse, task: str, wiki: str, database: str):
    """Every link served for `wiki` by `task` into `database` (an empty frame before the first writing run)."""
    folder = ledger_folder(warehouse.root, task, wiki, database)
    # folders are named without "=", so that Spark infers no partition column from them
    runs = [path for path in warehouse.list(folder) if not path.rsplit("/", 1)[-1].startswith(("_", "."))]
    if not runs:
        return spark.createDataFrame([], LEDGER_SCHEMA)
    return spark.read.schema(LEDGER_SCHEMA).parquet(*runs)


@F.udf(T.StringType())
def _section(wikitext, offset):
    return None if wikitext is None or offset is None else section_at(wikitext, offset)


def served_links(spark, warehouse, wiki: str, snapshot: str, output: str, model: str, version: str):
    """The links of one recommend output, one row each, with target page id, section and revision length."""
    from pipeline.recommend.job import title_index

    rows = spark.read.parquet(output).where(F.col("gelr_data").isNotNull())
    kept = F.col("features") if "features" in rows.columns else F.lit(None).cast("map<int,array<double>>")
    parsed = rows.select("page_id", "revision_id", F.from_json("gelr_data", LINKS_SCHEMA).alias("data"),
                         kept.alias("by_offset"))
    links = parsed.select("page_id", "revision_id", F.col("data.meta.task_timestamp").alias("task_timestamp"),
                          "by_offset", F.explode("data.links").alias("link")).select(
        "page_id", "revision_id", "task_timestamp", "link.link_text", "link.link_target", "link.wikitext_offset",
        "link.score", "link.link_index",
        F.when(F.col("by_offset").isNotNull(), F.col("by_offset")[F.col("link.wikitext_offset")]).alias("features"))
    titles = title_index(warehouse, wiki, snapshot).select(F.col("title").alias("link_target"),
                                                           F.col("resolved_page_id").alias("target_id"))
    pages = warehouse.read("pages", wiki, snapshot).select("page_id", "revision_id", "wikitext")
    return (links.join(titles, "link_target", "left").join(pages, ["page_id", "revision_id"], "left")
            .select("page_id", "revision_id", "target_id", "wikitext_offset",
                    F.length(F.encode("link_text", "UTF-8")).cast("int").alias("anchor_bytes"),
                    "link_text", "link_target", "link_index", "score",
                    _section("wikitext", "wikitext_offset").alias("section"),
                    F.length("wikitext").cast("int").alias("revision_chars"),
                    F.lit(model).alias("model"), F.lit(version).alias("model_version"), "task_timestamp",
                    F.lit(output.rstrip("/").rsplit("/", 1)[-1]).alias("run"), "features"))


def record_served(spark, warehouse, task: str, wiki: str, database: str, snapshot: str, output: str, model: str,
                  version: str) -> int:
    """Append the output's links the ledger does not hold yet; how many were new."""
    fresh = served_links(spark, warehouse, wiki, snapshot, output, model, version)
    known = read_ledger(spark, warehouse, task, wiki, database).select(*KEY)
    new = fresh.join(known, KEY, "left_anti").persist()
    try:
        count = new.count()
        if count:
            run = output.rstrip("/").rsplit("/", 1)[-1].removeprefix("run=")
            new.select(*LEDGER_SCHEMA.fieldNames()).write.mode("overwrite").parquet(
                f"{ledger_folder(warehouse.root, task, wiki, database)}/{run}")
    finally:
        new.unpersist()
    return count
