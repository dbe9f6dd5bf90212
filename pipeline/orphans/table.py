"""The orphans table of a wiki's current snapshot: every main-namespace article (not a redirect, not
excluded as a link target: disambiguation, dates, configured Wikidata types) that no other
main-namespace article links to, redirects resolved. Columns: page_id, title, redirects (titles of the
redirects to it, sorted), out_degree (distinct articles it links to), reason (`linked_from_nowhere`,
`linked_only_from_itself`, `linked_only_from_other_namespaces`).

Two definitions of "links to": the wikitext links of the `links` table (what the articles' own text
says), or a MediaWiki `pagelinks` table (source page id, target title, as the wiki records it: links
that templates expand to included, and sources in every namespace)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.ingest.derived import is_article_title
from pipeline.orphans import OrphanError

REASONS = ("linked_from_nowhere", "linked_only_from_itself", "linked_only_from_other_namespaces")


def wikitext_edges(links: DataFrame) -> DataFrame:
    """source_page_id, target_page_id: every wikilink of an article, its target resolved (the links table
    holds only main-namespace articles' links)."""
    return (links.where((F.col("kind") == "link") & (F.col("resolved_namespace") == 0)
                        & F.col("resolved_page_id").isNotNull())
            .select("source_page_id", F.col("resolved_page_id").alias("target_page_id")).distinct())


def read_pagelinks(spark, path: str) -> DataFrame:
    """source_page_id, target_namespace, target_title from a Parquet pagelinks table: our names or
    MediaWiki's (pl_from, pl_namespace, pl_title; titles with underscores). No namespace column: 0."""
    frame = spark.read.parquet(path)
    names = set(frame.columns)
    source = "pl_from" if "pl_from" in names else "source_page_id"
    title = "pl_title" if "pl_title" in names else "target_title"
    namespace = next((n for n in ("pl_namespace", "target_namespace") if n in names), None)
    if source not in names or title not in names:
        raise OrphanError(f"{path}: a pagelinks table needs source_page_id and target_title (or MediaWiki's "
                          f"pl_from and pl_title); it has {', '.join(sorted(names))}")
    return frame.select(F.col(source).cast("long").alias("source_page_id"),
                        (F.col(namespace).cast("int") if namespace else F.lit(0)).alias("target_namespace"),
                        F.regexp_replace(F.col(title), "_", " ").alias("target_title"))


def pagelinks_edges(pagelinks: DataFrame, titles: DataFrame) -> DataFrame:
    """source_page_id, target_page_id from pagelinks rows whose target is a main-namespace page,
    redirects resolved (titles of main-namespace pages carry no prefix)."""
    main = titles.where(F.col("namespace") == 0).select(
        F.col("title").alias("target_title"), F.col("resolved_page_id").alias("target_page_id"),
        "resolved_namespace")
    return (pagelinks.where(F.col("target_namespace") == 0).join(main, "target_title")
            .where(F.col("resolved_namespace") == 0).select("source_page_id", "target_page_id").distinct())


def orphans(titles: DataFrame, edges: DataFrame, excluded: DataFrame) -> DataFrame:
    """The orphans table from the titles, the edges (source, resolved target) and the excluded targets."""
    articles = (titles.where(is_article_title()).select("page_id", "title")
                .join(excluded.select("page_id"), "page_id", "left_anti"))
    source_kind = titles.select(F.col("page_id").alias("source_page_id"),
                                ((F.col("namespace") == 0) & ~F.col("is_redirect")).alias("from_article"))
    typed = edges.join(source_kind, "source_page_id", "left").fillna(False, ["from_article"])
    incoming = typed.groupBy(F.col("target_page_id").alias("page_id")).agg(
        F.sum((F.col("from_article") & (F.col("source_page_id") != F.col("target_page_id"))).cast("int"))
        .alias("from_articles"),
        F.sum((F.col("source_page_id") == F.col("target_page_id")).cast("int")).alias("from_itself"),
        F.sum((~F.col("from_article")).cast("int")).alias("from_elsewhere"))
    out_degree = (typed.where(F.col("source_page_id") != F.col("target_page_id"))
                  .groupBy(F.col("source_page_id").alias("page_id")).agg(F.count(F.lit(1)).alias("out_degree")))
    redirects = (titles.where(F.col("is_redirect") & (F.col("status") == "resolved"))
                 .groupBy(F.col("resolved_page_id").alias("page_id"))
                 .agg(F.array_sort(F.collect_list("title")).alias("redirects")))
    joined = (articles.join(incoming, "page_id", "left").join(out_degree, "page_id", "left")
              .join(redirects, "page_id", "left"))
    reason = (F.when(F.coalesce("from_elsewhere", F.lit(0)) > 0, REASONS[2])
              .when(F.coalesce("from_itself", F.lit(0)) > 0, REASONS[1])
              .otherwise(REASONS[0]))
    return (joined.where(F.coalesce("from_articles", F.lit(0)) == 0)
            .select("page_id", "title", F.coalesce("redirects", F.array().cast("array<string>")).alias("redirects"),
                    F.coalesce("out_degree", F.lit(0)).cast("long").alias("out_degree"), reason.alias("reason")))


def build(spark, warehouse, config, pagelinks: str | None = None) -> dict:
    """Write `orphans` for the current snapshot; return counts by reason and the definition used."""
    from pipeline.model import tables
    from pipeline.model.train import read_qid_table, wikidata_input
    from pipeline.warehouse import current_snapshot

    wiki = config.wiki
    snapshot = current_snapshot(warehouse, wiki)
    titles = warehouse.read("titles", wiki, snapshot)
    wikidata = wikidata_input(warehouse, wiki)
    excluded = tables.excluded_targets(spark, warehouse.read("pages", wiki, snapshot), titles, config,
                                       read_qid_table(spark, wikidata) if wikidata else None)
    if pagelinks:
        edges = pagelinks_edges(read_pagelinks(spark, pagelinks), titles)
    else:
        edges = wikitext_edges(warehouse.read("links", wiki, snapshot))
    path = warehouse.table("orphans", wiki, snapshot)
    orphans(titles, edges, excluded).write.mode("overwrite").parquet(path)
    table = spark.read.parquet(path)
    by_reason = {r["reason"]: r["count"] for r in table.groupBy("reason").count().collect()}
    return {"wiki": wiki, "snapshot": snapshot, "links": "pagelinks" if pagelinks else "wikitext",
            "orphans": sum(by_reason.values()), "by_reason": dict(sorted(by_reason.items())), "path": path}
