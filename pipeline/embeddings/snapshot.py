"""One embeddings build, end to end: collect → train → embed → index → a versioned snapshot folder
`<warehouse>/embeddings/<model>/<snapshot>/` (model = `<wiki>-links` or `<wiki>-reading`, snapshot = the
ingested snapshot it was built from) holding `vectors/part-NNNNN.parquet` (key, page_id, title, vector:
L2-normalised float32), `index.usearch` and `manifest.json` (counts, parameters, input, sha256 of every
file). A snapshot already built from the same input with the same parameters is reused."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from datetime import UTC, datetime

from pyspark.sql import functions as F

from pipeline import __version__
from pipeline.config import Config
from pipeline.embeddings import KINDS, EmbeddingError, ann, documents, model_name, vectors
from pipeline.warehouse import current_snapshot

MANIFEST = "manifest.json"
INDEX_FILE = "index.usearch"
VECTORS = "vectors"
# bump when the layout or meaning of a snapshot changes, so that old ones are rebuilt
SNAPSHOT_VERSION = 1


def snapshots_root(warehouse) -> str:
    return f"{warehouse.root}/embeddings"


def build_parameters(config: Config) -> dict:
    """The `[embeddings]` settings that shape a build (not where it is published nor how many are kept)."""
    return {k: v for k, v in config.to_dict()["embeddings"].items() if not k.startswith(("publish", "keep"))}


def fingerprint(config: Config, kind: str, snapshot: str, qids: str | None, sessions: str | None) -> str:
    relevant = {"kind": kind, "snapshot": snapshot, "qids": qids, "sessions": sessions,
                "embeddings": build_parameters(config), "version": SNAPSHOT_VERSION}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def sha256_of(warehouse, path: str) -> tuple[int, str]:
    """(bytes, sha256) of a warehouse file, read as a stream."""
    from pipeline.warehouse import filesystem

    fs, inner = filesystem(path)
    digest, size = hashlib.sha256(), 0
    with fs.open_input_stream(inner) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _source(path: str | None, option: str) -> str | None:
    if path is None:
        return None
    from pipeline.ingest.job import source_path

    resolved = source_path(path)
    if "://" not in resolved and not os.path.exists(resolved):
        raise EmbeddingError(f"{option} {path}: no such file or folder")
    return resolved


def _name_parts(warehouse, folder: str) -> list[str]:
    """Give Spark's part files stable names (part-00000.parquet, …, in their order) and drop the rest."""
    names = []
    for path in warehouse.list(folder):
        base = path.rsplit("/", 1)[-1]
        if base.startswith("part-") and base.endswith(".parquet"):
            names.append(path)
        else:
            warehouse.delete(path)
    for number, path in enumerate(names):
        warehouse.move(path, f"{folder}/part-{number:05d}.parquet")
    return [f"{VECTORS}/part-{n:05d}.parquet" for n in range(len(names))]


def build(spark, warehouse, config: Config, kind: str = "links", qids: str | None = None,
          sessions: str | None = None, force: bool = False, say=lambda line: None) -> dict:
    """Build (or reuse) the wiki's current embeddings snapshot of one kind; return its manifest."""
    if kind not in KINDS:
        raise EmbeddingError(f"--model {kind!r}: expected one of {', '.join(KINDS)}")
    if kind == "reading" and not sessions:
        raise EmbeddingError("--model reading needs --sessions TABLE (one row per session, a list of page ids)")
    wiki, settings = config.wiki, config.embeddings
    qids, sessions = _source(qids, "--qids"), _source(sessions, "--sessions")
    snapshot = current_snapshot(warehouse, wiki)
    name = model_name(wiki, kind)
    folder = f"{snapshots_root(warehouse)}/{name}/{snapshot}"
    stamp = fingerprint(config, kind, snapshot, qids, sessions)
    existing = json.loads(warehouse.read_text(f"{folder}/{MANIFEST}") or "null")
    if existing and existing.get("fingerprint") == stamp and not force:
        say(f"linkrec: embeddings {name}/{snapshot} are up to date (built {existing['built_at']})")
        return {**existing, "reused": True}
    started = time.time()
    seconds = {}
    titles = warehouse.read("titles", wiki, snapshot)
    from pipeline.model.train import read_qid_table

    keys = documents.article_keys(titles, wiki, read_qid_table(spark, qids) if qids else None).cache()
    staging = f"{snapshots_root(warehouse)}/{name}/_staging-{snapshot}"
    warehouse.delete(staging)
    work = f"{staging}/_work"

    say(f"linkrec: embeddings {name}: collecting documents …")
    view_counts = {}
    if kind == "links":
        docs = documents.out_link_documents(warehouse.read("links", wiki, snapshot), keys, wiki,
                                            settings.missing_targets)
        # the article's own key first, then its out-links: the key learns from the company it keeps
        training = docs.join(keys.select("page_id", "key"), "page_id").select(
            "page_id", F.concat(F.array("key"), "out_keys").alias("tokens"), "out_keys")
        order = "page_id"
    else:
        docs, counts = documents.session_documents(documents.read_sessions(spark, sessions), titles, keys)
        view_counts = {r["reason"]: r["count"] for r in counts.collect()}
        training = docs.select("session", F.col("keys").alias("tokens"), "keys")
        order = "session"
    training.orderBy(order).write.mode("overwrite").parquet(f"{work}/documents")
    training = spark.read.parquet(f"{work}/documents")
    if settings.partitions == 1:
        training = training.coalesce(1)  # one input partition: Word2Vec sees the documents in one fixed order
    n_documents = training.count()
    if n_documents == 0:
        raise EmbeddingError(f"{wiki}: no {'article links to another article' if kind == 'links' else 'session'} "
                             f"in snapshot {snapshot}: nothing to embed")
    seconds["collect"] = round(time.time() - started, 1)

    say(f"linkrec: embeddings {name}: training Word2Vec on {n_documents} documents "
        f"({settings.dimensions} dimensions, window {settings.window}, min count {settings.min_count}) …")
    mark = time.time()
    model = vectors.fit(training, "tokens", settings)
    key_vectors = vectors.key_vectors(model)
    key_vectors.write.mode("overwrite").parquet(f"{work}/key_vectors")
    key_vectors = spark.read.parquet(f"{work}/key_vectors")
    vocabulary = key_vectors.count()
    seconds["train"] = round(time.time() - mark, 1)

    say(f"linkrec: embeddings {name}: embedding every article …")
    mark = time.time()
    articles = keys.select("page_id", "title", "key")
    if kind == "links":
        embedded = vectors.link_vectors(articles, spark.read.parquet(f"{work}/documents"), key_vectors)
    else:
        embedded = vectors.reading_vectors(articles, spark.read.parquet(f"{work}/documents"), key_vectors)
    embedded.write.mode("overwrite").parquet(f"{work}/embedded")
    embedded = spark.read.parquet(f"{work}/embedded")
    reasons = {r["reason"]: r["count"] for r in embedded.groupBy("reason").count().collect()}
    with_vector = reasons.pop(None, 0)
    (embedded.where(F.col("vector").isNotNull()).select("key", "page_id", "title", "vector")
     .orderBy("page_id").write.mode("overwrite").parquet(f"{staging}/{VECTORS}"))
    files = _name_parts(warehouse, f"{staging}/{VECTORS}")
    without_qid = keys.where(~F.col("has_qid")).count() if qids else None
    n_articles = keys.count()
    keys.unpersist()
    seconds["embed"] = round(time.time() - mark, 1)

    say(f"linkrec: embeddings {name}: indexing {with_vector} vectors …")
    mark = time.time()
    index_settings = ann.IndexSettings.of(settings)
    import pyarrow.dataset as ds

    from pipeline.progress import Progress
    from pipeline.warehouse import filesystem

    fs, inner = filesystem(f"{staging}/{VECTORS}")
    dataset = ds.dataset([f"{inner}/{f.split('/', 1)[1]}" for f in files], format="parquet", filesystem=fs)
    with tempfile.TemporaryDirectory(prefix="linkrec-index-") as local:
        ann.build_index(dataset, index_settings, os.path.join(local, INDEX_FILE),
                        Progress("index", with_vector, say))
        from pyarrow import fs as pafs

        pafs.copy_files(os.path.join(local, INDEX_FILE), filesystem(f"{staging}/{INDEX_FILE}")[1],
                        source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    warehouse.delete(work)
    seconds["index"] = round(time.time() - mark, 1)

    checksums = {}
    for relative in [*files, INDEX_FILE]:
        size, digest = sha256_of(warehouse, f"{staging}/{relative}")
        checksums[relative] = {"bytes": size, "sha256": digest}
    vector_bytes = with_vector * settings.dimensions * 4
    manifest = {
        "model": name, "wiki": wiki, "kind": kind, "snapshot": snapshot, "fingerprint": stamp,
        "built_at": datetime.now(UTC).replace(microsecond=0).isoformat(), "linkrec": __version__,
        "input": {"snapshot": snapshot, "qids": qids, "sessions": sessions},
        "parameters": build_parameters(config),
        "vectors": {"normalised": "l2", "dtype": "float32", "columns": ["key", "page_id", "title", "vector"]},
        "index": {**index_settings.to_dict(), "file": INDEX_FILE, "labels": "page_id",
                  "bytes_per_float32_vector_byte": round(checksums[INDEX_FILE]["bytes"] / max(vector_bytes, 1), 3)},
        "counts": {"articles": n_articles, "documents": n_documents, "vocabulary": vocabulary,
                   "vectors": with_vector, "without_vector": dict(sorted(reasons.items())),
                   "without_qid": without_qid, "session_page_views": view_counts or None,
                   "word2vec_driver_bytes": vectors.driver_bytes(vocabulary, settings.dimensions)},
        "seconds": {**seconds, "total": round(time.time() - started, 1)},
        "files": checksums,
    }
    warehouse.write_text(f"{staging}/{MANIFEST}", json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True))
    warehouse.move(staging, folder)
    say(f"linkrec: embeddings {name}/{snapshot}: {with_vector} of {n_articles} articles have a vector "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items())) or 'none without'}); at {folder}")
    return {**manifest, "reused": False, "path": folder}


def local_snapshots(warehouse, name: str) -> list[str]:
    """The built snapshots of a model in the warehouse, oldest first by name (snapshot names sort by date)."""
    return sorted(p.rsplit("/", 1)[-1] for p in warehouse.list(f"{snapshots_root(warehouse)}/{name}")
                  if not p.rsplit("/", 1)[-1].startswith("_"))
