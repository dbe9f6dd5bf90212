"""Spark ingestion: a dump (read in parallel chunks) or a Parquet/Hive page table → the `pages`
table of one wiki and snapshot, its siteinfo, and the derived `titles` and `links` tables."""

from __future__ import annotations

import errno
import json
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from pyspark import AccumulatorParam
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from pipeline import siteconfig
from pipeline.config import Config
from pipeline.ingest import derived
from pipeline.ingest.dumpreader import (
    DumpError,
    Page,
    Problem,
    SiteInfo,
    detect_format,
    plan_chunks,
    read_chunk,
    read_siteinfo,
)
from pipeline.text.titles import TitleNormaliser
from pipeline.warehouse import Warehouse

PAGES_SCHEMA = T.StructType([
    T.StructField("page_id", T.LongType(), False),
    T.StructField("namespace", T.IntegerType(), False),
    T.StructField("title", T.StringType(), False),
    T.StructField("redirect_target", T.StringType(), True),
    T.StructField("revision_id", T.LongType(), False),
    T.StructField("revision_timestamp", T.TimestampType(), False),
    T.StructField("wikitext", T.StringType(), False),
])

# column names of the Wikimedia data lake (wmf.mediawiki_wikitext_current) → ours
TABLE_ALIASES = {
    "page_namespace": "namespace", "page_title": "title", "page_redirect_title": "redirect_target",
    "revision_text": "wikitext", "wiki_db": "wiki",
}
FILE_DATE = re.compile(r"(?<![0-9])(20[0-9]{2}[01][0-9][0-3][0-9])(?![0-9])")


class ProblemList(AccumulatorParam):
    def zero(self, value):
        return []

    def addInPlace(self, left, right):
        left.extend(right)
        return left


@dataclass
class IngestResult:
    wiki: str
    snapshot: str
    source: str
    pages: int
    pages_per_namespace: dict[str, int]
    ns0_articles: int
    ns0_redirects: int
    truncated: bool
    problems: list[dict] = field(default_factory=list)
    derived: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    current: bool = True  # False: kept aside, a complete snapshot stays current

    def summary(self) -> dict:
        out = asdict(self)
        out["problems"] = len(self.problems)
        return out


UNREADABLE = "unreadable"
INCOMPLETE_SUFFIX = "-incomplete"


def accepted(problems: list[dict], allow_truncated: bool) -> bool:
    """A read may stand as a snapshot: no page lost, or truncation allowed and truncation is all there was."""
    return not problems or (allow_truncated and all(p["kind"] == "truncated" for p in problems))


def _complete(entry: dict | None) -> bool:
    return bool(entry) and not entry.get("problems") and not entry.get("incomplete")


def _pages_of_chunk(chunk, label, problems):
    """Runs in a Spark task: page rows of one chunk; problems go to the accumulator."""
    if not os.access(chunk.path, os.R_OK):
        # an executor that cannot see the file: not a truncated dump, and no page of it was lost by reading
        reason = os.strerror(errno.ENOENT if not os.path.exists(chunk.path) else errno.EACCES)
        problems.add([asdict(Problem(label, "whole input", f"cannot read {chunk.path} on this worker ({reason}); "
                                     "every executor must see the dump at the same absolute path",
                                     UNREADABLE))])
        return
    found = []
    for record in read_chunk(chunk, label):
        if isinstance(record, Page):
            yield (record.page_id, record.namespace, record.title, record.redirect_target,
                   record.revision_id, record.revision_timestamp, record.wikitext)  # aware: an instant in any zone
        else:
            found.append(asdict(record))
    if found:
        problems.add(found)


def _dedupe(problems: list[dict]) -> list[dict]:
    """A retried task reports its problems again."""
    seen, out = set(), []
    for problem in problems:
        key = json.dumps(problem, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return sorted(out, key=lambda p: (p["file"], p["where"]))


def ingest_dump(spark, warehouse: Warehouse, config: Config, dump_path: str, index_path: str | None = None,
                snapshot: str | None = None) -> IngestResult:
    started = time.time()
    # executors resolve paths from their own working directory: give them the driver's absolute one
    dump_path = os.path.abspath(dump_path)
    index_path = os.path.abspath(index_path) if index_path else None
    fmt = detect_format(dump_path)
    siteinfo = read_siteinfo(dump_path, fmt)
    if siteinfo.dbname and siteinfo.dbname != config.wiki:
        raise DumpError(f"{dump_path}: this is a dump of {siteinfo.dbname}, not {config.wiki}")
    chunks = plan_chunks(dump_path, config.ingest.chunk_bytes, index_path)
    label = os.path.basename(dump_path)
    warnings = []
    size = os.path.getsize(dump_path)
    if len(chunks) == 1 and fmt != "xml" and size > config.ingest.single_stream_warning_bytes:
        warnings.append(f"{label}: a single-stream {fmt} file of {size / 2**20:.0f} MiB is read by one task; for a "
                        "large wiki use the multistream dump with its --index, or a Parquet page table (--table)")
    problems = spark.sparkContext.accumulator([], ProblemList())
    rows = spark.sparkContext.parallelize(chunks, len(chunks)).flatMap(
        lambda chunk: _pages_of_chunk(chunk, label, problems))
    pages = spark.createDataFrame(rows, PAGES_SCHEMA, verifySchema=False)
    snapshot = snapshot or _date_in_name(dump_path)
    return _publish(spark, warehouse, config, pages, siteinfo, snapshot,
                    source={"kind": "dump", "path": source_path(dump_path), "format": fmt,
                            "chunks": len(chunks), **file_identity(dump_path)},
                    problems_of=lambda: _dedupe(problems.value), started=started, warnings=warnings)


def load_siteinfo_file(path: str) -> SiteInfo:
    try:
        with open(path, encoding="utf-8") as handle:
            return SiteInfo.from_json(json.load(handle))
    except FileNotFoundError:
        raise DumpError(f"{path}: no such siteinfo file") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DumpError(f"{path}: not a siteinfo JSON: {exc}") from None


def ingest_table(spark, warehouse: Warehouse, config: Config, table_path: str,
                 siteinfo_path: str | None = None, snapshot: str | None = None) -> IngestResult:
    started = time.time()
    siteinfo = load_siteinfo_file(siteinfo_path) if siteinfo_path else SiteInfo(
        dbname=config.wiki, sitename="", base="", generator="", case=config.text.case or "first-letter",
        language=config.text.language, export_version="")
    try:
        table = spark.read.parquet(table_path)
    except Exception as exc:  # Spark raises AnalysisException for missing paths and non-Parquet files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DumpError(f"{table_path}: cannot read as a Parquet table: {first_line}") from None
    for source_name, name in TABLE_ALIASES.items():
        if source_name in table.columns and name not in table.columns:
            table = table.withColumnRenamed(source_name, name)
    missing = [f.name for f in PAGES_SCHEMA.fields if f.name not in table.columns]
    if missing:
        raise DumpError(f"{table_path}: missing columns {', '.join(missing)} "
                        f"(expected {', '.join(f.name for f in PAGES_SCHEMA.fields)})")
    if "wiki" in table.columns:
        table = table.where(F.col("wiki") == config.wiki)
    required = ["page_id", "namespace", "title", "revision_id", "revision_timestamp"]
    bad_rule = F.lit(False)
    for name in required:
        bad_rule = bad_rule | F.col(name).isNull()
    bad = table.where(bad_rule).select("page_id", "title").limit(1000).collect()
    table = table.where(~bad_rule)
    label = os.path.basename(table_path.rstrip("/"))
    problems = [asdict(Problem(label, f"row of page id {row.page_id}", "a required column is null "
                               f"({', '.join(required)})", "malformed", row.title, row.page_id))
                for row in bad]
    normaliser = TitleNormaliser.from_siteinfo(siteinfo, config.text.case)
    display = F.udf(lambda ns, title: _display_title(normaliser, ns, title), T.StringType())
    pages = table.select(
        F.col("page_id").cast("long"), F.col("namespace").cast("int"),
        display(F.col("namespace").cast("int"), F.col("title")).alias("title"),
        F.regexp_replace(F.col("redirect_target"), "_", " ").alias("redirect_target"),
        F.col("revision_id").cast("long"), F.col("revision_timestamp").cast("timestamp"),
        F.coalesce(F.col("wikitext"), F.lit("")).alias("wikitext"),
    )
    return _publish(spark, warehouse, config, pages, siteinfo, snapshot,
                    source={"kind": "table", "path": source_path(table_path), **file_identity(table_path)},
                    problems_of=lambda: problems, started=started)


def _display_title(normaliser: TitleNormaliser, namespace: int, title: str) -> str:
    """Data-lake titles have underscores and no namespace prefix; dump titles are display titles."""
    title = title.replace("_", " ")
    prefix = normaliser.prefix(namespace)
    return title if not prefix or title.startswith(prefix) else prefix + title


def _date_in_name(path: str) -> str | None:
    match = FILE_DATE.search(os.path.basename(path))
    return match.group(1) if match else None


def source_path(path: str) -> str:
    """How an input is named in the manifest: local paths absolute, URIs as given."""
    return path if "://" in path else os.path.abspath(path)


def file_identity(path: str) -> dict:
    """What tells a later run whether the input changed."""
    try:
        stat = os.stat(path)
    except OSError:
        return {}
    if os.path.isdir(path):
        sizes = mtimes = 0
        for folder, _, files in os.walk(path):
            for name in files:
                info = os.stat(os.path.join(folder, name))
                sizes += info.st_size
                mtimes = max(mtimes, int(info.st_mtime))
        return {"bytes": sizes, "mtime": mtimes}
    return {"bytes": stat.st_size, "mtime": int(stat.st_mtime)}


def _publish(spark, warehouse: Warehouse, config: Config, pages: DataFrame, siteinfo: SiteInfo,
             snapshot: str | None, source: dict, problems_of, started: float,
             warnings: list[str] | None = None) -> IngestResult:
    """Write pages to a staging folder, count them, move them into place, build the derived tables; the
    staging folder is gone afterwards, whatever happened."""
    staging = warehouse.staging("pages", config.wiki, uuid.uuid4().hex[:12])
    try:
        return _publish_staged(spark, warehouse, config, pages, siteinfo, snapshot, source, problems_of, started,
                               warnings, staging)
    finally:
        for path in (staging, staging + "-dedup"):
            warehouse.delete(path)


def _publish_staged(spark, warehouse: Warehouse, config: Config, pages: DataFrame, siteinfo: SiteInfo,
                    snapshot: str | None, source: dict, problems_of, started: float, warnings, staging: str):
    wiki = config.wiki
    pages.write.mode("overwrite").parquet(staging)
    problems = problems_of()
    written = spark.read.parquet(staging)
    counts = written.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("page_id").alias("ids")).first()
    if counts["rows"] == 0:
        warehouse.delete(staging)
        unreadable = [p for p in problems if p["kind"] == UNREADABLE]
        if unreadable:
            raise DumpError(f"{source['path']}: {unreadable[0]['reason']}")
        reasons = "; ".join(p["reason"] for p in problems[:3])
        raise DumpError(f"{source['path']}: no page could be read" + (f" ({reasons})" if reasons else ""))
    if counts["ids"] != counts["rows"]:
        # the same page twice (a stitched input): keep its newest revision, say so
        problems.append(asdict(Problem(os.path.basename(source["path"]), "whole input",
                                       f"{counts['rows'] - counts['ids']} duplicate page rows; "
                                       "kept the newest revision of each page", "malformed")))
        newest = Window.partitionBy("page_id").orderBy(F.col("revision_id").desc())
        deduped = written.withColumn("_rank", F.row_number().over(newest)).where("_rank = 1").drop("_rank")
        staging_deduped = staging + "-dedup"
        deduped.write.mode("overwrite").parquet(staging_deduped)
        warehouse.delete(staging)
        staging = staging_deduped
        written = spark.read.parquet(staging)
    per_namespace = {str(r["namespace"]): r["count"] for r in
                     written.groupBy("namespace").count().orderBy("namespace").collect()}
    totals = written.agg(
        F.count(F.lit(1)).alias("pages"), F.max(F.unix_seconds("revision_timestamp")).alias("newest"),
        F.sum(F.when(derived.is_article(), 1).otherwise(0))
        .alias("articles"),
        F.sum(F.when((F.col("namespace") == 0) & F.col("redirect_target").isNotNull(), 1).otherwise(0))
        .alias("redirects"),
    ).first()
    snapshot = snapshot or datetime.fromtimestamp(totals["newest"], UTC).strftime("%Y%m%d")
    manifest = warehouse.manifest(wiki) or {"wiki": wiki, "snapshots": {}}
    current_name = manifest.get("current_snapshot")
    good = accepted(problems, config.ingest.allow_truncated)
    # an incomplete read never replaces or displaces a complete snapshot: it is kept aside under its own name
    if problems and _complete(manifest["snapshots"].get(snapshot)):
        snapshot += INCOMPLETE_SUFFIX
    make_current = good or not _complete(manifest["snapshots"].get(current_name))
    if not make_current:
        warnings = [*(warnings or []), f"snapshot {current_name} is complete and stays current; this incomplete "
                    f"read is kept as snapshot {snapshot} (--allow-truncated accepts a truncated read)"]
    final = warehouse.table("pages", wiki, snapshot)
    warehouse.move(staging, final)
    warehouse.write_text(f"{warehouse.root}/siteinfo/wiki={wiki}/snapshot={snapshot}/siteinfo.json",
                         json.dumps(siteinfo.to_json(), ensure_ascii=False, indent=2))
    if make_current:
        # what this dump implies (language, trail, disambiguation templates, sections) before links are read
        inferred = siteconfig.infer(spark, warehouse, wiki, snapshot, siteinfo)
        siteconfig.save(warehouse, inferred)
        config = config.with_inferred(inferred)
    derived_stats = derived.build(spark, warehouse, config, siteinfo, snapshot)
    truncated = any(p["kind"] == "truncated" for p in problems)
    result = IngestResult(
        wiki=wiki, snapshot=snapshot, source=source["path"], pages=totals["pages"], pages_per_namespace=per_namespace,
        ns0_articles=totals["articles"], ns0_redirects=totals["redirects"], truncated=truncated,
        problems=problems, derived=derived_stats, seconds=round(time.time() - started, 2), warnings=warnings or [],
        current=make_current)
    if make_current:
        manifest["current_snapshot"] = snapshot
    manifest["snapshots"][snapshot] = {
        "source": source, "ingested_at": int(time.time()), "pages": result.pages,
        "ns0_articles": result.ns0_articles, "ns0_redirects": result.ns0_redirects,
        "problems": len(problems), "truncated": truncated, "incomplete": not good,
        "newest_revision": int(totals["newest"] or 0),
    }
    warehouse.save_manifest(wiki, manifest)
    return result
