"""Tables derived once from `pages` and shared by every later stage:

- `titles`: every page with its redirect resolved through chains (cycle-safe): status `page`
  (not a redirect), `resolved`, `broken` (target missing), `cycle` or `too_deep`.
- `links`: every wikilink of every main-namespace article, with its position, rendered anchor and
  target classified as `article`, `redirect` (to an article or not: see resolved_namespace),
  `missing`, `other` (an existing page outside the main namespace) or `invalid`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.config import Config
from pipeline.text.titles import TitleNormaliser
from pipeline.text.wikilinks import extract_links


def is_article():
    """The rule of an article in the `pages` table: main namespace, not a redirect."""
    return (F.col("namespace") == 0) & F.col("redirect_target").isNull()


def is_article_title():
    """The same rule on the `titles` table."""
    return (F.col("namespace") == 0) & ~F.col("is_redirect")

LINKS_SCHEMA = T.StructType([
    T.StructField("source_page_id", T.LongType(), False),
    T.StructField("source_title", T.StringType(), False),
    T.StructField("offset", T.IntegerType(), False),
    T.StructField("length", T.IntegerType(), False),
    T.StructField("anchor", T.StringType(), False),
    T.StructField("trail", T.StringType(), False),
    T.StructField("container", T.StringType(), False),
    T.StructField("kind", T.StringType(), False),
    T.StructField("target_raw", T.StringType(), False),
    T.StructField("target_namespace", T.IntegerType(), True),
    T.StructField("target_title", T.StringType(), True),
])


def _normalised_redirects(pages: DataFrame, normaliser: TitleNormaliser) -> DataFrame:
    display = F.udf(lambda raw: normaliser.display(raw) if raw is not None else None, T.StringType())
    return pages.select("page_id", "namespace", "title",
                        display("redirect_target").alias("redirect_title"))


def resolve_redirects(pages: DataFrame, normaliser: TitleNormaliser, max_hops: int) -> DataFrame:
    """Follow redirect chains with one join per hop; stop on cycles and after `max_hops`."""
    titled = _normalised_redirects(pages, normaliser).cache()
    lookup = titled.select(F.col("title").alias("l_title"), F.col("page_id").alias("l_page_id"),
                           F.col("namespace").alias("l_namespace"),
                           F.col("redirect_title").alias("l_redirect"))
    state = titled.where(F.col("redirect_title").isNotNull()).select(
        "page_id", F.col("redirect_title").alias("current"), F.lit(1).alias("hops"),
        F.array(F.col("title")).alias("path"))
    finished: list[DataFrame] = []
    for _ in range(max_hops):
        joined = state.join(lookup, state.current == lookup.l_title, "left").cache()
        status = (F.when(F.col("l_title").isNull(), "broken")
                  .when(F.col("l_redirect").isNull(), "resolved")
                  .when(F.array_contains("path", F.col("l_title")) | (F.col("l_redirect") == F.col("l_title")),
                        "cycle"))
        joined = joined.withColumn("status", status)
        finished.append(joined.where(F.col("status").isNotNull()).select(
            "page_id", "status", "hops",
            F.when(F.col("status") == "resolved", F.col("l_page_id")).alias("resolved_page_id"),
            F.when(F.col("status") == "resolved", F.col("l_title")).alias("resolved_title"),
            F.when(F.col("status") == "resolved", F.col("l_namespace")).alias("resolved_namespace")))
        state = joined.where(F.col("status").isNull()).select(
            "page_id", F.col("l_redirect").alias("current"), (F.col("hops") + 1).alias("hops"),
            F.concat("path", F.array(F.col("l_title"))).alias("path")).cache()
        if state.isEmpty():
            break
    finished.append(state.select("page_id", F.lit("too_deep").alias("status"), (F.col("hops") - 1).alias("hops"),
                                 F.lit(None).cast("long").alias("resolved_page_id"),
                                 F.lit(None).cast("string").alias("resolved_title"),
                                 F.lit(None).cast("int").alias("resolved_namespace")))
    redirects = finished[0]
    for part in finished[1:]:
        redirects = redirects.unionByName(part)
    plain = titled.where(F.col("redirect_title").isNull()).select(
        "page_id", F.lit("page").alias("status"), F.lit(0).alias("hops"),
        F.col("page_id").alias("resolved_page_id"), F.col("title").alias("resolved_title"),
        F.col("namespace").alias("resolved_namespace"))
    return titled.join(plain.unionByName(redirects), "page_id").select(
        "page_id", "namespace", "title", (F.col("redirect_title").isNotNull()).alias("is_redirect"),
        "redirect_title", "status", "hops", "resolved_page_id", "resolved_title", "resolved_namespace")


def _links_of_pages(rows, normaliser: TitleNormaliser, link_trail: str):
    for row in rows:
        for link in extract_links(row.wikitext, normaliser, link_trail):
            yield (row.page_id, row.title, link.offset, link.length, link.anchor, link.trail,
                   link.container, link.kind, link.target_raw, link.namespace, link.target_title)


def extract_article_links(spark, pages: DataFrame, normaliser: TitleNormaliser, link_trail: str) -> DataFrame:
    articles = pages.where(is_article()).select("page_id", "title", "wikitext")
    rows = articles.rdd.mapPartitions(lambda part: _links_of_pages(part, normaliser, link_trail))
    return spark.createDataFrame(rows, LINKS_SCHEMA, verifySchema=False)


def classify_links(links: DataFrame, titles: DataFrame) -> DataFrame:
    target = titles.select(
        F.col("title").alias("t_title"), F.col("page_id").alias("target_page_id"),
        F.col("namespace").alias("t_namespace"), "is_redirect", "resolved_page_id", "resolved_title",
        "resolved_namespace")
    joined = links.join(target, links.target_title == target.t_title, "left")
    target_class = (F.when(F.col("target_title").isNull(), "invalid")
                    .when(F.col("t_title").isNull(), "missing")
                    .when(F.col("is_redirect"), "redirect")
                    .when(F.col("t_namespace") == 0, "article")
                    .otherwise("other"))
    return joined.select(*LINKS_SCHEMA.fieldNames(), target_class.alias("target_class"), "target_page_id",
                         "resolved_page_id", "resolved_title", "resolved_namespace")


def build(spark, warehouse, config: Config, siteinfo, snapshot: str) -> dict:
    """Write `titles` and `links` for one snapshot; return their counts."""
    wiki = config.wiki
    normaliser = TitleNormaliser.from_siteinfo(siteinfo, config.text.case)
    pages = warehouse.read("pages", wiki, snapshot)
    titles = resolve_redirects(pages, normaliser, config.ingest.max_redirect_hops)
    titles_path = warehouse.table("titles", wiki, snapshot)
    titles.write.mode("overwrite").parquet(titles_path)
    titles = spark.read.parquet(titles_path)
    links = classify_links(extract_article_links(spark, pages, normaliser, config.text.link_trail), titles)
    links_path = warehouse.table("links", wiki, snapshot)
    links.write.mode("overwrite").parquet(links_path)
    links = spark.read.parquet(links_path)
    redirect_status = {r["status"]: r["count"] for r in
                       titles.where("is_redirect").groupBy("status").count().collect()}
    cycles = [r["title"] for r in titles.where(F.col("status") == "cycle").orderBy("title")
              .select("title").limit(20).collect()]
    link_classes = {r["target_class"]: r["count"] for r in
                    links.where(F.col("kind") == "link").groupBy("target_class").count().collect()}
    return {
        "redirects": dict(sorted(redirect_status.items())),
        "redirect_cycles": cycles,
        "links": int(sum(link_classes.values())),
        "links_by_target": dict(sorted(link_classes.items())),
    }
