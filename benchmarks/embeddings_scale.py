"""Scaling of the embeddings build (README table), two ways, each size in a process of its own:

1. --dump/--wiki/-k: the k-times corpora of benchmarks/scale.py (a shared dump copied in k "languages"),
   ingested, then `embeddings build`: CPU seconds per 1,000 articles per build and peak RSS of the Python
   driver and the JVM (local[2], fixed driver heap).
2. --vocabulary V …: Spark's Word2Vec alone on synthetic documents over V keys (every key in documents of
   25 keys drawn with a Zipf-like skew, as out-links are), to measure what the driver really holds
   against the formula 2 × V × dimensions × 4 bytes, and so what enwiki's 6.8 M keys need.

    python benchmarks/embeddings_scale.py --dump ../shared/data/dumps/ltgwiki-….xml.bz2 --wiki ltgwiki -k 1 4 16
    python benchmarks/embeddings_scale.py --vocabulary 250000 500000 1000000 --dimensions 100

Figures, not tests."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def corpus_run(dump: str, wiki: str, copies: int, workdir: Path, driver_memory: str) -> dict:
    import scale

    from pipeline.config import SparkConfig, load_config
    from pipeline.embeddings import snapshot
    from pipeline.ingest.job import ingest_table
    from pipeline.spark import get_spark
    from pipeline.warehouse import Warehouse

    table, siteinfo, articles = scale.make_corpus(dump, copies, workdir / "corpus")
    spark = get_spark(SparkConfig(master="local[2]", driver_memory=driver_memory, shuffle_partitions=8))
    warehouse = Warehouse(spark, str(workdir / "warehouse"))
    config = load_config(wiki)
    ingest_table(spark, warehouse, config, table, siteinfo, "20170901")
    with scale.Stage() as measured:
        built = snapshot.build(spark, warehouse, config, force=True)
    spark.stop()
    return {"k": copies, "articles": articles, "vocabulary": built["counts"]["vocabulary"],
            "vectors": built["counts"]["vectors"], "cpu_s": round(measured.cpu, 1), "wall_s": round(measured.wall, 1),
            "cpu_s_per_1000": round(measured.cpu / articles * 1000, 2), "seconds": built["seconds"],
            "driver_mb": round(measured.peaks["driver"]), "jvm_mb": round(measured.peaks["jvm"]),
            "index_bytes": built["files"]["index.usearch"]["bytes"],
            "vector_bytes": sum(v["bytes"] for k, v in built["files"].items() if k.startswith("vectors/"))}


def vocabulary_run(vocabulary: int, dimensions: int, driver_memory: str, result_size: str = "1g") -> dict:
    import scale
    from pyspark.sql import functions as F

    from pipeline.config import EmbeddingsConfig, SparkConfig
    from pipeline.embeddings import vectors
    from pipeline.spark import get_spark

    spark = get_spark(SparkConfig(master="local[2]", driver_memory=driver_memory, shuffle_partitions=8,
                                  conf={"spark.driver.maxResultSize": result_size}))
    # every key starts one document of 25 keys: itself and 24 others, skewed towards small numbers
    picks = [F.floor(F.pow(F.rand(seed=i), F.lit(3.0)) * vocabulary).cast("long") for i in range(24)]
    docs = spark.range(vocabulary).select(F.array(*[F.concat(F.lit("k"), c.cast("string"))
                                                    for c in [F.col("id"), *picks]]).alias("tokens"))
    docs.write.mode("overwrite").parquet(f"/tmp/linkrec-w2v-{vocabulary}")
    docs = spark.read.parquet(f"/tmp/linkrec-w2v-{vocabulary}").coalesce(1)
    settings = EmbeddingsConfig(dimensions=dimensions)
    with scale.Stage() as measured:
        model = vectors.fit(docs, "tokens", settings)
        kept = model.getVectors().count()
    spark.stop()
    shutil.rmtree(f"/tmp/linkrec-w2v-{vocabulary}", ignore_errors=True)
    return {"vocabulary": kept, "dimensions": dimensions, "driver_heap": driver_memory, "max_result_size": result_size,
            "formula_mb": round(vectors.driver_bytes(kept, dimensions) / 2**20),
            "jvm_peak_mb": round(measured.peaks["jvm"]), "wall_s": round(measured.wall, 1),
            "cpu_s": round(measured.cpu, 1)}


def in_own_process(call: str) -> dict:
    code = f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import embeddings_scale as e; " \
           f"print('RESULT ' + json.dumps({call}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        causes = [line.strip() for line in done.stderr.splitlines() if "Exception:" in line or "Error:" in line]
        return {"call": call, "failed": done.returncode, "error": causes[:3] or done.stderr[-1500:]}
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dump")
    parser.add_argument("--wiki")
    parser.add_argument("-k", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--vocabulary", type=int, nargs="+")
    parser.add_argument("--dimensions", type=int, default=100)
    parser.add_argument("--driver-memory", default="3g")
    parser.add_argument("--max-result-size", default="1g", help="spark.driver.maxResultSize (Spark's default: 1g).")
    args = parser.parse_args()
    if args.vocabulary:
        for size in args.vocabulary:
            print(json.dumps(in_own_process(f"e.vocabulary_run({size}, {args.dimensions}, {args.driver_memory!r}, "
                                            f"{args.max_result_size!r})")), flush=True)
        return
    for copies in args.k:
        workdir = Path(tempfile.mkdtemp(prefix="linkrec-emb-scale-"))
        try:
            print(json.dumps(in_own_process(f"e.corpus_run({args.dump!r}, {args.wiki!r}, {copies}, "
                                            f"__import__('pathlib').Path({str(workdir)!r}), "
                                            f"{args.driver_memory!r})")), flush=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
