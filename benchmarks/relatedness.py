"""What bounded relatedness costs in quality: each shared wiki trained with exact neighbourhoods
(the default sketch of 1,024 values holds every neighbour of every page of these dumps) and with a
small sketch that samples most pages' neighbourhoods; backtest precision and recall at 0.5 under both
protocols, and how many pages the small sketch samples.

    python benchmarks/relatedness.py --dumps ../shared/data [--small 16]

Figures, not tests: the README's table comes from this script."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WIKIS = ("bnwiki", "elwiki", "hywiki", "jawiki", "ltgwiki", "mrwiki")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dumps", default=str(Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "dumps"))
    parser.add_argument("--small", type=int, default=16)
    args = parser.parse_args()

    from pyspark.sql import functions as F

    from pipeline.config import SparkConfig, load_config
    from pipeline.ingest.job import ingest_dump
    from pipeline.model import train as model_train
    from pipeline.spark import get_spark
    from pipeline.warehouse import Warehouse

    spark = get_spark(SparkConfig(master="local[2]", driver_memory="3g", shuffle_partitions=4))
    warehouse = Warehouse(spark, tempfile.mkdtemp(prefix="linkrec-relatedness-"))
    for wiki in WIKIS:
        dump = next(Path(args.dumps).glob(f"{wiki}-*"))
        ingest_dump(spark, warehouse, load_config(wiki, flags={"ingest": {"allow_truncated": True}}), str(dump))
        row = {"wiki": wiki}
        for label, size in (("exact", 1024), ("small", args.small)):
            config = load_config(wiki, overrides=(f"model.relatedness_sketch={size}",))
            trained = model_train.train(spark, warehouse, config, force=True)
            tables = trained.training["tables"]
            sketches = warehouse.read("sketches_reference", wiki, tables["snapshot"])
            row[f"sampled_pages_{label}"] = sketches.where(F.col("degree") > size).count()
            row["pages_with_neighbours"] = tables["sketch_pages_reference"]
            row["max_degree"] = tables["max_degree_reference"]
            for protocol in ("reference", "leakage_free"):
                point = trained.curves[protocol][5]
                row[f"{label}_{protocol}"] = (point["precision"], point["recall"])
        print(json.dumps(row), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
