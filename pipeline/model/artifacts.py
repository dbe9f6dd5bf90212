"""Model artifacts: the folder of a model version (boosters, features, config, metrics, plots, checksums,
the test set), writing it wherever the warehouse lives, and reading a model back."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile

from pyspark.sql import functions as F

from pipeline.config import Config
from pipeline.model import ModelError
from pipeline.model.features import FEATURES, FEATURES_VERSION
from pipeline.warehouse import current_snapshot


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def table_checksum(frame, columns: list[str]) -> str:
    """sha256 of the table's content whatever its row order, computed in Spark: the row count and the
    sum of every row's 60-bit hash (no row reaches the driver)."""
    row_hash = F.conv(F.substring(F.sha2(F.to_json(F.struct(*columns)), 256), 1, 15), 16, 10).cast("decimal(38,0)")
    count, total = frame.agg(F.count(F.lit(1)), F.sum(row_hash)).first()
    return hashlib.sha256(f"{','.join(columns)}:{count}:{total or 0}".encode()).hexdigest()


def plot_curves(curves: dict[str, list[dict]], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4), dpi=100)
    for protocol, curve, style in ((p, c, "-" if p == "reference" else "--") for p, c in curves.items()):
        xs = [p["threshold"] for p in curve]
        axis.plot(xs, [p["precision"] for p in curve], style, color="tab:blue", label=f"precision ({protocol})")
        axis.plot(xs, [p["recall"] for p in curve], style, color="tab:orange", label=f"recall ({protocol})")
    axis.set_xlabel("threshold")
    axis.set_ylim(0, 1)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower left")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def curves_csv(curves: dict[str, list[dict]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["protocol", "threshold", "n_sentences", "precision", "recall", "predicted", "correct", "true"])
    for protocol, curve in curves.items():
        for p in curve:
            writer.writerow([protocol, p["threshold"], p["n_sentences"], p["precision"], p["recall"], p["predicted"],
                             p["correct"], p["true"]])
    return out.getvalue()


def write_test_set(warehouse, config: Config, folder: str) -> None:
    """`folder`/test_set/part-NNNNN.jsonl: the gold sentences (page id, title, sentence wikitext and text,
    gold anchor → target pairs) in page order across the files read in name order, written by every task
    at once (range-partitioned and sorted within each file): no sentence passes through the driver or one
    task."""
    sentences = warehouse.read("sentences", config.wiki, current_snapshot(warehouse, config.wiki)).where("gold")
    gold = F.transform("links", lambda link: F.struct(
        F.col("text").substr(link["start"] + 1, link["end"] - link["start"]).alias("anchor"),
        link["target_title"].alias("target")))
    lines = sentences.select("page_id", F.to_json(F.struct(
        "page_id", "title", F.col("wikitext").alias("sentence_wikitext"), F.col("text").alias("sentence_text"),
        gold.alias("gold"))).alias("value"))
    staging, target = f"{folder}/_test_set", f"{folder}/test_set"
    # a global sort writes its ranges as part files in order: part-00000 holds the lowest page ids
    lines.orderBy("page_id").select("value").write.mode("overwrite").text(staging)
    parts = sorted(path for path in warehouse.list(staging) if path.rsplit("/", 1)[-1].startswith("part-"))
    for number, part in enumerate(parts):
        warehouse.move(part, f"{target}/part-{number:05d}.jsonl")
    warehouse.delete(staging)
    for crc in warehouse.list(target):  # the local file system's checksums, moved along
        if crc.rsplit("/", 1)[-1].startswith("."):
            warehouse.delete(crc)


def model_root(warehouse, name: str) -> str:
    return f"{warehouse.root}/models/{name}"


def gate_path(warehouse, name: str, version: str, wiki: str) -> str:
    return f"{model_root(warehouse, name)}/{version}/gates/{wiki}.json"


def record_gate(warehouse, name: str, version: str, wiki: str, released: bool, reason: str) -> None:
    """What `evaluate` found for a wiki the model was not trained on: from now on it serves that wiki by it."""
    warehouse.write_text(gate_path(warehouse, name, version, wiki),
                         json.dumps({"wiki": wiki, "released": released, "reason": reason}, sort_keys=True))


def gate_for(warehouse, record: dict, wiki: str, evaluate_command: str) -> tuple[bool, str]:
    """(released, reason) of a model for one wiki: its own model's gate, the gate of a joint model trained on
    it, or the result `evaluate` recorded for this version; ModelError naming `evaluate_command` when the
    model was never gated on the wiki (a joint model that never saw it, another wiki's model)."""
    if record.get("wiki", record["name"]) == wiki and "released_for" not in record:
        return bool(record["released"]), record.get("reason", "")
    if wiki in record.get("released_for", {}):
        reasons = record.get("reasons", {})
        return bool(record["released_for"][wiki]), reasons.get(wiki, record.get("reason", ""))
    recorded = warehouse.read_text(gate_path(warehouse, record["name"], record["version"], wiki))
    if recorded is None:
        raise ModelError(f"model {record['name']} {record['version']} has no gate result for {wiki} (it was not "
                         f"trained on {wiki}); gate it on {wiki}'s own test data first: {evaluate_command}")
    gate = json.loads(recorded)
    return bool(gate["released"]), gate["reason"]


def model_config_sha(config: Config) -> str:
    """What a trained model depends on besides its tables."""
    relevant = {k: v for k, v in config.to_dict().items() if k in ("text", "dictionary", "model", "gate")}
    relevant["model"] = {k: v for k, v in relevant["model"].items() if k != "threads"}
    relevant["features_version"] = FEATURES_VERSION
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def model_files(boosters: dict[str, bytes], checksums: dict, config: dict, training: dict,
                metrics: dict) -> dict[str, bytes]:
    """The artifacts every model folder holds (a wiki's or a joint model's); curves and plots are added
    by the caller, one set per wiki."""
    return {
        "model.json": boosters["reference"], "model.leakage_free.json": boosters["leakage_free"],
        "features.json": json.dumps(FEATURES).encode(),
        "config.json": json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False).encode(),
        "training.json": json.dumps(training, indent=2, sort_keys=True).encode(),
        "metrics.json": json.dumps(metrics, indent=2, sort_keys=True).encode(),
        "checksums.json": json.dumps(checksums, indent=2, sort_keys=True).encode(),
    }


def publish_files(warehouse, target: str, files: dict[str, bytes]) -> None:
    local = tempfile.mkdtemp(prefix="linkrec-model-")
    try:
        for name, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(local, name)), exist_ok=True)  # names may hold folders
            with open(os.path.join(local, name), "wb") as handle:
                handle.write(data)
        warehouse.put_dir(local, target)
    finally:
        shutil.rmtree(local, ignore_errors=True)


def served_threshold(warehouse, record: dict, wiki: str, minimum: float, target: float) -> tuple[float, str]:
    """The score threshold to serve `wiki` with: the lowest backtest threshold at or above `minimum` where
    the wiki's own model reaches `target` leakage-free precision; `minimum` when the target is off, not
    reached, or the model is not the wiki's own (a joint model has no curve of this wiki's alone)."""
    if target <= 0:
        return minimum, ""
    if record.get("wikis") != [wiki]:
        return minimum, f"{record.get('name')} is not {wiki}'s own model: served at {minimum}"
    raw = warehouse.read_text(f"{model_root(warehouse, record['name'])}/{record['version']}/metrics.json")
    curve = json.loads(raw or "{}").get("protocols", {}).get("leakage_free", [])
    for point in sorted(curve, key=lambda p: p["threshold"]):
        if point["threshold"] >= minimum - 1e-9 and point["predicted"] and point["precision"] >= target:
            threshold = max(minimum, point["threshold"])
            return threshold, (f"leakage-free precision {point['precision']} ≥ {target} at {threshold}"
                               f" (recall {point['recall']})")
    return minimum, f"leakage-free precision {target} not reached at any threshold ≥ {minimum}: served at {minimum}"


def load_model(warehouse, name: str) -> tuple[dict, dict[str, bytes]]:
    """The LATEST record of a model and its two boosters."""
    root = model_root(warehouse, name)
    latest = warehouse.read_text(f"{root}/LATEST.json")
    if latest is None:
        raise ModelError(f"no model named {name!r} under {warehouse.root}/models; check the name, or train it: "
                         f"`linkrec train --wiki {name}` (a wiki's own) or `linkrec train --wikis A,B --name {name}` "
                         "(a joint one)")
    record = json.loads(latest)
    boosters = {}
    for protocol, file in (("reference", "model.json"), ("leakage_free", "model.leakage_free.json")):
        raw = warehouse.read_bytes(f"{root}/{record['version']}/{file}")
        if raw is None:
            raise ModelError(f"model {name} {record['version']}: {file} is missing")
        boosters[protocol] = raw
    return record, boosters
