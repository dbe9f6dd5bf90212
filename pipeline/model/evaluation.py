"""Backtesting and the release gate: micro precision and recall over held-out gold sentences at thresholds
0.0 … 0.9 under both protocols, for a wiki's own model or a joint one."""

from __future__ import annotations

import numpy as np
from pyspark.sql import functions as F

from pipeline.config import Config
from pipeline.model import lookups as lookup_paths
from pipeline.model.artifacts import curves_csv, load_model, model_root, plot_curves, publish_files, record_gate
from pipeline.model.features import choose_links, sentence_candidates
from pipeline.model.train import booster_from_bytes, build_tables, page_sentences, predict, table_stats
from pipeline.warehouse import current_snapshot

THRESHOLDS = [round(0.1 * i, 1) for i in range(10)]


def _backtest(pairs, model_broadcast, per_anchor: int):
    """Per task: score every candidate of every gold sentence in one model call, then count per threshold."""
    booster = booster_from_bytes(model_broadcast.value)
    sentences, candidates = [], []
    for page, lookups in pairs:
        for row in page.sentences:
            sentences.append(row)
            candidates.append(sentence_candidates(row.text, lookups, page.page_id, per_anchor))
    scores = predict(booster, [c.features for group in candidates for c in group])
    totals = np.zeros((len(THRESHOLDS), 3), dtype=np.int64)  # predicted, correct, true
    at = 0
    for row, group in zip(sentences, candidates, strict=True):
        scored = list(zip(group, scores[at:at + len(group)].tolist(), strict=True))
        at += len(group)
        gold = {(link.anchor_key, link.target_page_id) for link in row.links}
        for i, threshold in enumerate(THRESHOLDS):
            chosen = {(c.match.anchor, c.target_id) for c, _ in choose_links(scored, threshold)}
            totals[i] += (len(chosen), len(chosen & gold), len(gold))
    yield len(sentences), totals


def backtest(spark, warehouse, config: Config, protocol: str, model_raw: bytes, mode: str | None = None
             ) -> list[dict]:
    """Micro precision and recall over the gold sentences at thresholds 0.0 … 0.9."""
    snapshot = current_snapshot(warehouse, config.wiki)
    stats = table_stats(warehouse, config.wiki, protocol)
    model_b = spark.sparkContext.broadcast(model_raw)
    per_anchor = config.model.candidates_per_anchor
    rdd, release = lookup_paths.map_pages(spark, warehouse, config, snapshot, protocol,
                                          page_sentences(warehouse, config, F.col("gold")),
                                          lookup_paths.choose_mode(config, stats, mode), stats,
                                          lambda pairs: _backtest(pairs, model_b, per_anchor))
    try:
        parts = rdd.collect()  # one small array per task
    finally:
        release()
        model_b.unpersist()
    n = sum(p[0] for p in parts)
    totals = sum((p[1] for p in parts), np.zeros((len(THRESHOLDS), 3), dtype=np.int64))
    curve = []
    for threshold, (predicted, correct, true) in zip(THRESHOLDS, totals.tolist(), strict=True):
        curve.append({"threshold": threshold, "n_sentences": n,
                      "precision": round(correct / predicted, 4) if predicted else 0.0,
                      "recall": round(correct / true, 4) if true else 0.0,
                      "predicted": predicted, "correct": correct, "true": true})
    return curve


def gate(curves: dict[str, list[dict]], config: Config) -> tuple[bool, str]:
    point = next(p for p in curves[config.gate.protocol] if abs(p["threshold"] - config.gate.threshold) < 1e-9)
    failures = []
    if point["precision"] < config.gate.min_precision:
        failures.append(f"precision {point['precision']:.3f} < {config.gate.min_precision}")
    if point["recall"] < config.gate.min_recall:
        failures.append(f"recall {point['recall']:.3f} < {config.gate.min_recall}")
    where = f"at threshold {config.gate.threshold} ({config.gate.protocol} protocol)"
    if failures:
        return False, f"not released: {', '.join(failures)} {where}"
    return True, f"released: precision {point['precision']:.3f}, recall {point['recall']:.3f} {where}"


def evaluate(spark, warehouse, config: Config, model_name: str | None = None) -> dict:
    """Backtest a trained model (the wiki's own, or a joint one) on this wiki's gold sentences."""
    name = model_name or config.wiki
    record, boosters = load_model(warehouse, name)
    build_tables(spark, warehouse, config)
    curves = {protocol: backtest(spark, warehouse, config, protocol, raw) for protocol, raw in boosters.items()}
    released, reason = gate(curves, config)
    if name != config.wiki:
        folder = f"{model_root(warehouse, name)}/{record['version']}/evaluations/{config.wiki}"
        publish_files(warehouse, folder, {"metrics.csv": curves_csv(curves).encode(),
                                           "backtest.png": plot_curves(curves, f"{name} on {config.wiki}")})
        if config.wiki not in record.get("released_for", {}):  # a wiki it was trained on keeps that gate
            record_gate(warehouse, name, record["version"], config.wiki, released, reason)
    public = {p: [{k: point[k] for k in ("threshold", "n_sentences", "precision", "recall")} for point in curve]
              for p, curve in curves.items()}
    return {"wiki": config.wiki, "model": name, "version": record["version"],
            "released": record["released"] if name == config.wiki else released,
            "gate": reason, "protocols": public}
