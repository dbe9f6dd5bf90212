"""Stage 1, collect: one document per article (its key, then the keys of the articles it links to, in
the order of the text, redirects resolved) or per reading session (the keys of the pages read, in order).
A key is the page's Wikidata QID where a page → QID table is given, else `<wiki>:<page_id>`."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.embeddings import EmbeddingError
from pipeline.ingest.derived import is_article_title


def article_keys(titles: DataFrame, wiki: str, qids: DataFrame | None) -> DataFrame:
    """page_id, title, key, has_qid for every article; a page without a QID keeps its wiki key."""
    articles = titles.where(is_article_title()).select("page_id", "title")
    own_key = F.concat(F.lit(f"{wiki}:"), F.col("page_id").cast("string"))
    if qids is None:
        return articles.select("page_id", "title", own_key.alias("key"), F.lit(False).alias("has_qid"))
    # one QID per page: the smallest, so that a table listing two gives the same key every run
    first = qids.where(F.col("qid").rlike(r"^Q[1-9][0-9]*$")).groupBy("page_id").agg(F.min("qid").alias("qid"))
    joined = articles.join(first, "page_id", "left")
    return joined.select("page_id", "title", F.coalesce("qid", own_key).alias("key"),
                        F.col("qid").isNotNull().alias("has_qid"))


def missing_key(wiki: str, title):
    """The word of a link to a page the input does not have: a context word only, never an article's key."""
    return F.concat(F.lit(f"{wiki}:missing:"), title)


def out_link_documents(links: DataFrame, keys: DataFrame, wiki: str, missing_targets: bool = False) -> DataFrame:
    """page_id, out_keys: the distinct articles each article links to (redirects resolved, no self-links),
    in the order of their first link in the text; with `missing_targets`, links to main-namespace pages the
    input lacks too (red links; on a sample or a truncated dump, most links). Articles without such a link
    have no row."""
    links = links.where(F.col("kind") == "link")
    targets = links.where((F.col("resolved_namespace") == 0) & F.col("resolved_page_id").isNotNull()
                          & (F.col("resolved_page_id") != F.col("source_page_id")))
    first = targets.groupBy("source_page_id", "resolved_page_id").agg(F.min("offset").alias("offset"))
    target_keys = keys.select(F.col("page_id").alias("resolved_page_id"), F.col("key").alias("target_key"))
    # a link to a redirect whose target is not an article (a section of a non-article) has no key: dropped here
    keyed = first.join(target_keys, "resolved_page_id").select("source_page_id", "offset", "target_key")
    if missing_targets:
        missing = links.where((F.col("target_class") == "missing") & (F.col("target_namespace") == 0))
        keyed = keyed.unionByName(missing.groupBy("source_page_id", missing_key(wiki, F.col("target_title"))
                                                  .alias("target_key")).agg(F.min("offset").alias("offset")))
    ordered = keyed.groupBy("source_page_id").agg(
        F.array_sort(F.collect_list(F.struct("offset", "target_key"))).alias("items"))
    return ordered.select(F.col("source_page_id").alias("page_id"),
                          F.transform("items", lambda item: item["target_key"]).alias("out_keys"))


def read_sessions(spark, path: str) -> DataFrame:
    """A reading-session table: one row per session with an ordered list of page ids (the first column of
    type array<integer or long>), as `pages`."""
    try:
        frame = spark.read.parquet(path)
    except Exception as exc:  # noqa: BLE001 - Spark's analysis errors name no file: say which
        raise EmbeddingError(f"--sessions {path}: not a readable Parquet table ({str(exc).splitlines()[0]})") from None
    lists = [f.name for f in frame.schema.fields if isinstance(f.dataType, T.ArrayType)
             and isinstance(f.dataType.elementType, (T.IntegerType, T.LongType))]
    if not lists:
        columns = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in frame.schema.fields)
        raise EmbeddingError(f"--sessions {path}: no column holds a list of page ids (array<long>); it has {columns}")
    return frame.select(F.col(lists[0]).cast("array<long>").alias("pages"))


def session_documents(sessions: DataFrame, titles: DataFrame, keys: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(documents, counts): each session's read articles as keys in reading order (redirects resolved,
    a page read twice in a row counted once; pages that are not articles dropped), and the number of
    page views kept and dropped by reason."""
    numbered = sessions.withColumn("session", F.monotonically_increasing_id())
    views = numbered.select("session", F.posexplode("pages").alias("position", "page_id"))
    resolve = titles.select("page_id", "resolved_page_id", "resolved_namespace")
    article_key = keys.select(F.col("page_id").alias("resolved_page_id"), "key")
    resolved = views.join(resolve, "page_id", "left").join(article_key, "resolved_page_id", "left")
    reason = (F.when(F.col("page_id").isNull(), "empty_page_id")
              .when(F.col("resolved_namespace").isNull(), "unknown_page")
              .when(F.col("key").isNull(), "not_an_article"))
    tagged = resolved.withColumn("reason", reason)
    counts = tagged.groupBy(F.coalesce("reason", F.lit("kept")).alias("reason")).count()
    kept = tagged.where(F.col("reason").isNull())
    documents = kept.groupBy("session").agg(
        F.array_sort(F.collect_list(F.struct("position", "key"))).alias("items"))
    documents = documents.select("session", F.transform("items", lambda item: item["key"]).alias("keys"))
    # a reload or a redirect hop repeats a page: keep one of each run of the same key
    documents = documents.select("session", F.filter("keys", lambda k, i: (i == 0) | (k != F.element_at("keys", i)))
                                 .alias("keys"))
    return documents.where(F.size("keys") > 0), counts
