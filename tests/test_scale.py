"""What lets a large wiki run: the join path (per-page slices, sharded matchers built on the executors)
gives exactly the broadcast path's model and metrics; training examples are sampled deterministically
to a cap; XGBoost's thread count does not change the model; sketches bound relatedness."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.model import train as model_train
from pipeline.model.features import mix
from pipeline.warehouse import Warehouse, current_snapshot
from tests.conftest import last_json, run_cli


def test_join_path_trains_the_same_model_with_several_matcher_shards(spark, ingested, warehouse_dir, ltg_model):
    """Three matcher shards (anchors_per_shard=500 for ~1,240 anchors) and slices by joins: the same
    tables, the same examples, the same model bytes and backtest as the broadcast path."""
    latest = json.loads((warehouse_dir / "models" / "ltgwiki" / "LATEST.json").read_text())
    before = json.loads((warehouse_dir / "models" / "ltgwiki" / latest["version"] / "metrics.json").read_text())
    args = ["--warehouse", str(warehouse_dir), "--set", "lookups.mode=join", "--set", "lookups.anchors_per_shard=500",
            "train", "--wiki", "ltgwiki", "--force", "--json"]
    same = False
    try:
        result = run_cli(args)
        assert result.exit_code == 0, result.stderr
        summary = last_json(result.stdout)
        tables = summary["training"]["tables"]
        assert tables["shards_reference"] == 3 and tables["reused"] is False
        assert summary["version"] == latest["version"]
        model = warehouse_dir / "models" / "ltgwiki" / summary["version"] / "model.json"
        assert model.read_bytes() == ltg_model
        for protocol, curve in summary["protocols"].items():
            assert curve == [{k: p[k] for k in ("threshold", "n_sentences", "precision", "recall")}
                             for p in before["protocols"][protocol]]
        same = True
    finally:
        if not same:  # the shared warehouse must hold the session's model again for the tests after this one
            run_cli(["--warehouse", str(warehouse_dir), "train", "--wiki", "ltgwiki", "--force"])


def test_training_sample_is_capped_deterministic_and_keeps_the_class_balance(spark, ingested, warehouse_dir,
                                                                              ltg_model):
    warehouse = Warehouse(spark, str(warehouse_dir))
    full, summary = model_train.training_examples(spark, warehouse, load_config("ltgwiki"), "reference")
    capped = load_config("ltgwiki", overrides=("model.max_training_examples=600",))
    first, first_summary = model_train.training_examples(spark, warehouse, capped, "reference")
    second, _ = model_train.training_examples(spark, warehouse, capped, "reference", mode="join")
    assert len(full) == summary["examples"] > 600
    assert first_summary["sampled"] == 600 and len(first) == 600
    assert np.array_equal(first, second)  # same rows whichever path built them, in the same order
    # every sampled row is a row of the full set, and the share of positives stays within 5 points
    keys = {tuple(row) for row in full.tolist()}
    assert all(tuple(row) in keys for row in first.tolist())
    assert abs(first[:, 4].mean() - full[:, 4].mean()) < 0.05


def test_xgboost_threads_do_not_change_the_model(spark, ingested, warehouse_dir, ltg_model):
    warehouse = Warehouse(spark, str(warehouse_dir))
    examples, _ = model_train.training_examples(spark, warehouse, load_config("ltgwiki"), "reference")
    digests = set()
    for threads in (1, 2):
        config = load_config("ltgwiki", overrides=(f"model.threads={threads}",))
        digests.add(hashlib.sha256(bytes(model_train.fit(examples, config).save_raw("json"))).hexdigest())
    assert len(digests) == 1


def test_sketch_table_holds_every_neighbour_below_its_size_and_at_most_its_size_above(spark, ingested,
                                                                                      warehouse_dir):
    from pyspark.sql import functions as F

    from pipeline.model.slices import build_sketches

    warehouse = Warehouse(spark, str(warehouse_dir))
    snapshot = current_snapshot(warehouse, "ltgwiki")
    graph = warehouse.read("graph_reference", "ltgwiki", snapshot)
    exact = {r.page_id: r for r in build_sketches(graph, 10_000).collect()}
    capped = {r.page_id: r for r in build_sketches(graph, 8).collect()}
    hub = max(exact.values(), key=lambda r: r.degree)
    assert hub.degree > 8
    neighbours = {r.target_page_id for r in graph.where(F.col("source_page_id") == hub.page_id).collect()} | {
        r.source_page_id for r in graph.where(F.col("target_page_id") == hub.page_id).collect()}
    assert sorted(exact[hub.page_id].smallest) == sorted(mix(n) for n in neighbours)
    assert capped[hub.page_id].smallest == sorted(mix(n) for n in neighbours)[:8]
    assert capped[hub.page_id].degree == hub.degree == len(neighbours)


def test_recommend_reports_the_lookup_path_it_chose(ingested, warehouse_dir, ltg_model):
    common = ["--warehouse", str(warehouse_dir)]
    tail = ["recommend", "--wiki", "ltgwiki", "--dry-run", "--now", "2026-01-01T00:00:00Z", "--json"]
    small = last_json(run_cli(common + tail).stdout)
    assert small["lookups"] == "broadcast"  # ltgwiki's lookups are far below the default 512 MiB
    tiny = run_cli(common + ["--set", "lookups.broadcast_max_bytes=1000"] + tail)
    assert tiny.exit_code == 0, tiny.stderr
    chosen = last_json(tiny.stdout)
    assert chosen["lookups"] == "join"
    assert (chosen["with_links"], chosen["null_rows"], chosen["links"]) == (
        small["with_links"], small["null_rows"], small["links"])
    assert json.dumps(chosen["skipped"], sort_keys=True) == json.dumps(small["skipped"], sort_keys=True)


@pytest.mark.slow  # a process of its own with a Spark session
def test_a_spark_limit_is_one_line_that_names_the_setting(tmp_path):
    """A driver result-size limit hit in a real run: exit 1, one line naming the setting, no Java stack
    trace on either stream, nothing on stdout (where --json goes)."""
    import os
    import subprocess
    import sys

    from tests.conftest import DUMPS

    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--warehouse", str(tmp_path), "--set",
         'spark.conf={"spark.driver.maxResultSize"="1k"}', "ingest", "--wiki", "ltgwiki", "--dump",
         str(DUMPS["ltgwiki"]), "--json"], capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert done.returncode == 1
    assert done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("linkrec: error: Spark stopped:") and "spark.driver.maxResultSize" in last
    assert not any(line.lstrip().startswith("at org.apache") for line in done.stderr.splitlines())
