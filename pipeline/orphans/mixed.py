"""Orphan candidates inside the link task (`recommend.include_orphans`): per page, the link task's links
and the orphan task's, merged in plain Python: the link task's links first, then orphan links whose
anchor overlaps none of them and whose target is not linked yet, best score first, at most the link
task's maximum, in text order; below the link task's minimum the page keeps a NULL row."""

from __future__ import annotations

import json

from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.recommend import eligibility as rules


def merge_links(link_data: str | None, orphan_data: str | None, maximum: int, minimum: int,
                meta: dict) -> str | None:
    """The merged gelr_data of one page (None: fewer links than `minimum`). The row is the link task's:
    its `meta` (the link task's, `meta`), whether or not the link model found anything on the page, with the
    orphan model's checksum beside the link model's when orphan links were added."""
    if orphan_data is None:
        return link_data
    orphan = json.loads(orphan_data)
    base = json.loads(link_data) if link_data is not None else {"links": [], "meta": meta}
    links = list(base["links"])
    taken = [(link["wikitext_offset"], link["wikitext_offset"] + len(link["link_text"])) for link in links]
    targets = {link["link_target"] for link in links}
    anchors = {link["link_text"].casefold() for link in links}
    for link in sorted(orphan["links"], key=lambda item: (-item["score"], item["wikitext_offset"])):
        if len(links) >= maximum:
            break
        start = link["wikitext_offset"]
        end = start + len(link["link_text"])
        if any(start < b and a < end for a, b in taken) or link["link_target"] in targets \
                or link["link_text"].casefold() in anchors:
            continue
        links.append(dict(link))
        taken.append((start, end))
        targets.add(link["link_target"])
        anchors.add(link["link_text"].casefold())
    if len(links) < minimum:
        return None
    added = len(links) > len(base["links"])
    links.sort(key=lambda item: item["wikitext_offset"])
    for index, link in enumerate(links):
        link["link_index"] = index
    meta = dict(base["meta"])
    if added:
        meta["dataset_checksums"] = {**meta.get("dataset_checksums", {}),
                                     **orphan["meta"].get("dataset_checksums", {})}
    return json.dumps({"links": links, "meta": meta}, ensure_ascii=False, separators=(",", ":"))


def merge_counts(link_counts: list[int] | None, orphan_counts: list[int] | None, maximum: int) -> list[int] | None:
    """Links available at each report threshold once orphan links join (at most the task's maximum; an
    overlapping pair counts twice, so this is an upper bound)."""
    if orphan_counts is None:
        return link_counts
    if link_counts is None:
        return [min(maximum, n) for n in orphan_counts]
    return [min(maximum, a + b) for a, b in zip(link_counts, orphan_counts, strict=True)]


def merged_output(spark, link_output: str, orphan_output: str, path: str, config, meta: dict) -> None:
    """The link task's output rows with the orphan task's links merged in, written to `path` (`meta`: the
    link task's)."""
    maximum, minimum = config.recommend.maximum_links_per_task, config.recommend.minimum_links_per_task
    links = spark.read.parquet(link_output)
    orphans = spark.read.parquet(orphan_output).select(
        "page_id", F.col("gelr_data").alias("orphan_data"), F.col("link_counts").alias("orphan_counts"),
        F.col("scores").alias("orphan_scores"))
    merge = F.udf(lambda a, b: merge_links(a, b, maximum, minimum, meta), T.StringType())
    counts = F.udf(lambda a, b: merge_counts(a, b, maximum), T.ArrayType(T.IntegerType()))
    eligible = F.col("reason").isin(rules.OK, rules.TOO_FEW_LINKS)
    data = F.when(eligible, merge("gelr_data", "orphan_data")).otherwise(F.col("gelr_data"))
    count = F.size(F.from_json(F.col("merged"), "struct<links:array<struct<link_target:string>>>")["links"])
    scores = F.when(F.col("orphan_scores").isNull(), F.col("scores")).otherwise(
        F.concat(F.coalesce("scores", F.array().cast("array<float>")), "orphan_scores"))
    (links.join(orphans, "page_id", "left").withColumn("merged", data)
     .select("wiki", "page_id", "revision_id", F.col("merged").alias("gelr_data"),
             F.when(eligible, F.when(F.col("merged").isNotNull(), rules.OK).otherwise(rules.TOO_FEW_LINKS))
             .otherwise(F.col("reason")).alias("reason"),
             F.coalesce(count, F.lit(0)).cast("int").alias("links"),
             F.when(eligible, counts("link_counts", "orphan_counts")).otherwise(F.col("link_counts"))
             .alias("link_counts"),
             F.when(eligible, scores).otherwise(F.col("scores")).alias("scores"),
             F.col("features"))  # the link task's; the orphan links' are the orphan model's, not kept here
     .write.mode("overwrite").parquet(path))
