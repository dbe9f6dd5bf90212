"""Quality of the link-based embeddings (README table). Per wiki: hide 10 % of each article's out-links
(a fixed hash of the pair, articles with at least 5 kept), build the embeddings without them, and count
how often a hidden target is among the article's k nearest neighbours, against the chance of a random
pick. On enwiki, also the share of an article's top-10 neighbours that share its topic (the shared
vital-articles topic table) against random pairs.

    python benchmarks/embeddings_quality.py --wikis ltgwiki enwiki ... [--set embeddings.iterations=5]

Figures, not tests."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import DUMPS  # noqa: E402

TOPICS = ROOT.parent / "shared" / "data" / "topics" / "enwiki-vital-articles-topics.json"
HIDDEN_SHARE = 0.10


def hidden_pairs(links):
    """(kept links, hidden (source, target) pairs): a fixed 10 % of each article's distinct article out-links."""
    from pyspark.sql import functions as F

    pairs = links.where((F.col("kind") == "link") & (F.col("resolved_namespace") == 0)
                        & (F.col("resolved_page_id") != F.col("source_page_id"))).select(
        "source_page_id", "resolved_page_id").distinct()
    bucket = F.abs(F.xxhash64("source_page_id", "resolved_page_id")) % 1000
    hidden = pairs.where(bucket < int(HIDDEN_SHARE * 1000))
    kept = links.join(hidden.withColumn("_hidden", F.lit(True)), ["source_page_id", "resolved_page_id"], "left")
    return kept.where(F.col("_hidden").isNull()).drop("_hidden"), hidden


def measure(spark, root: Path, wiki: str, overrides: tuple[str, ...], ks=(10, 50)) -> dict:
    from pipeline.config import load_config
    from pipeline.embeddings import snapshot
    from pipeline.warehouse import Warehouse, current_snapshot

    source = Warehouse(spark, str(root))
    snap = current_snapshot(source, wiki)
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Warehouse(spark, tmp)
        links, hidden = hidden_pairs(source.read("links", wiki, snap))
        links.write.parquet(warehouse.table("links", wiki, snap))
        shutil.copytree(source.table("titles", wiki, snap), warehouse.table("titles", wiki, snap))
        warehouse.save_manifest(wiki, source.manifest(wiki))
        built = snapshot.build(spark, warehouse, load_config(wiki, overrides=overrides), force=True)
        import pyarrow.parquet as pq

        rows = pq.read_table(Path(built["path"]) / "vectors").to_pylist()
    ids = np.array([r["page_id"] for r in rows])
    matrix = np.array([r["vector"] for r in rows], dtype=np.float32)
    row_of = {pid: i for i, pid in enumerate(ids)}
    hidden_by_source: dict[int, set[int]] = {}
    for r in hidden.collect():
        if r.source_page_id in row_of and r.resolved_page_id in row_of:
            hidden_by_source.setdefault(r.source_page_id, set()).add(r.resolved_page_id)
    scores = matrix @ matrix.T
    np.fill_diagonal(scores, -np.inf)
    order = np.argsort(-scores, axis=1)
    hits = {k: 0 for k in ks}
    total = 0
    for source_id, targets in hidden_by_source.items():
        ranked = ids[order[row_of[source_id]]]
        for k in ks:
            hits[k] += len(targets & set(ranked[:k].tolist()))
        total += len(targets)
    n = len(ids)
    out = {"wiki": wiki, "articles_with_vector": n, "hidden_links": total,
           **{f"hit_at_{k}": round(hits[k] / max(total, 1), 3) for k in ks},
           **{f"random_at_{k}": round(min(k, n - 1) / max(n - 1, 1), 3) for k in ks}}
    if wiki == "enwiki" and TOPICS.exists():
        topics = json.loads(TOPICS.read_text())
        titled = [(i, topics.get(r["title"])) for i, r in enumerate(rows)]
        with_topic = [(i, t) for i, t in titled if t]
        index = np.array([i for i, _ in with_topic])
        labels = np.array([t for _, t in with_topic])
        if len(index) > 11:
            sub = scores[np.ix_(index, index)]
            top = np.argsort(-sub, axis=1)[:, :10]
            same = float(np.mean(labels[top] == labels[:, None]))
            _, counts = np.unique(labels, return_counts=True)
            p = counts / counts.sum()
            out |= {"articles_with_topic": len(index), "top10_same_topic": round(same, 3),
                    "random_same_topic": round(float((p * p).sum()), 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wikis", nargs="+", default=list(DUMPS))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    from click.testing import CliRunner

    from pipeline.cli import main as cli
    from pipeline.config import SparkConfig
    from pipeline.spark import get_spark

    spark = get_spark(SparkConfig(master="local[2]", driver_memory="3g", shuffle_partitions=4))
    with tempfile.TemporaryDirectory() as root:
        for wiki in args.wikis:
            CliRunner().invoke(cli, ["--quiet", "--warehouse", root, "ingest", "--wiki", wiki, "--dump",
                                     str(DUMPS[wiki]), "--allow-truncated"], catch_exceptions=False)
            print(json.dumps(measure(spark, Path(root), wiki, tuple(args.overrides))), flush=True)


if __name__ == "__main__":
    main()
