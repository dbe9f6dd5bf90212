"""Does learning from editors' decisions raise the share of links they keep? A time split of the reading
protocol's judgements: the older ones (benchmarks/judged/history/) are the feedback a model learns from,
the newer ones (benchmarks/judged/<wiki>-link.tsv) the decisions it is tested on.

  linkrec --warehouse W ingest --wiki X --dump …   (each wiki; `linkrec run` does it too)
  python benchmarks/feedback_learning.py --warehouse W --wikis bnwiki,elwiki,… [--weights 1,20,100]

Per wiki and weight: the model is trained with the older judged links as weighted examples (their features
computed by the engine on the current tables, as the served-links ledger would have kept them), then each
newer judged link is scored by it; printed: links the model still serves at its served threshold, the
share of those the reader kept, and the backtest recall (reference protocol) at that threshold, beside the
same figures of the model without feedback. It retrains the wiki's model in W (use a scratch warehouse)."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
JUDGED = HERE / "judged"


def judged_rows(wiki: str) -> tuple[list[dict], list[dict]]:
    """(older, newer): history judgements, and the current one; a link judged in both counts as newer."""
    def read(path: Path) -> list[dict]:
        with open(path, encoding="utf-8", newline="") as handle:
            return [r for r in csv.DictReader(handle, delimiter="\t") if r["kept"] in ("yes", "no")]
    newer = read(JUDGED / f"{wiki}-link.tsv") if (JUDGED / f"{wiki}-link.tsv").exists() else []
    seen = {(r["page_id"], r["link_target"], r["link_text"]) for r in newer}
    older, taken = [], set(seen)
    for path in sorted((JUDGED / "history").glob(f"{wiki}-link-*.tsv")):
        for row in read(path):
            key = (row["page_id"], row["link_target"], row["link_text"])
            if key not in taken:
                taken.add(key)
                older.append(row)
    return older, newer


def featured(rows: list[dict], spark, warehouse, config) -> list[tuple[dict, tuple]]:
    """Each judged link with the features the engine gives its candidate in the page today (skipped when the
    candidate no longer exists: the dictionary changed)."""
    from pyspark.sql import functions as F

    from pipeline.model.train import load_lookups
    from pipeline.recommend.engine import EngineSettings, prepare
    from pipeline.recommend.job import article_titles
    from pipeline.text.titles import TitleNormaliser
    from pipeline.warehouse import current_snapshot, siteinfo_of

    wiki = config.wiki
    snapshot = current_snapshot(warehouse, wiki)
    lookups = load_lookups(warehouse, config, "reference")
    titles = article_titles(warehouse, wiki, snapshot)
    normaliser = TitleNormaliser.from_siteinfo(siteinfo_of(warehouse, wiki, snapshot), config.text.case)
    settings = EngineSettings.from_config(config)
    pages = {r.page_id: r.wikitext for r in warehouse.read("pages", wiki, snapshot).where(
        F.col("page_id").isin([int(r["page_id"]) for r in rows])).select("page_id", "wikitext").collect()}
    out = []
    for row in rows:
        text = pages.get(int(row["page_id"]))
        if text is None:
            continue
        prepared = prepare(text, int(row["page_id"]), lookups, titles, normaliser, settings)
        found = next((c.features for c, _ in prepared.candidates
                      if c.target_title == row["link_target"] and c.text == row["link_text"]), None)
        if found is not None:
            out.append((row, found))
    return out


def operating_point(warehouse, wiki: str, config, curves: dict) -> tuple[float, float]:
    """The served threshold of the LATEST model and its reference-protocol recall there."""
    from pipeline.model.artifacts import model_root, served_threshold

    record = json.loads(warehouse.read_text(f"{model_root(warehouse, wiki)}/LATEST.json"))
    threshold, _ = served_threshold(warehouse, record, wiki, config.recommend.minimum_link_score,
                                    config.recommend.target_precision)
    point = min(curves["reference"], key=lambda p: abs(p["threshold"] - threshold))
    return threshold, point["recall"]


def measured(spark, warehouse, config, feedback, newer) -> dict:
    from pipeline.model.train import booster_from_bytes, predict, train

    trained = train(spark, warehouse, config, feedback=feedback)
    booster = booster_from_bytes(warehouse.read_bytes(f"{trained.path}/model.json"))
    threshold, recall = operating_point(warehouse, config.wiki, config, trained.curves)
    scores = predict(booster, [f for _, f in newer]).tolist() if newer else []
    served = [row for (row, _), score in zip(newer, scores, strict=True) if score >= threshold]
    kept = sum(row["kept"] == "yes" for row in served)
    return {"version": trained.version, "threshold": threshold, "recall": recall, "served": len(served),
            "kept": kept, "kept_share": round(kept / len(served), 3) if served else None}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--wikis", default="bnwiki,elwiki,hywiki,jawiki,ltgwiki,mrwiki")
    parser.add_argument("--weights", default="1,20,100")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from pipeline.config import SparkConfig, load_config
    from pipeline.model.train import build_tables
    from pipeline.siteconfig import load as load_inferred
    from pipeline.spark import get_spark
    from pipeline.warehouse import Warehouse

    spark = get_spark(SparkConfig(master="local[2]", driver_memory="4g", shuffle_partitions=4))
    warehouse = Warehouse(spark, args.warehouse)
    results = {}
    for wiki in [w for w in args.wikis.split(",") if w]:
        config = load_config(wiki, inferred=load_inferred(warehouse, wiki))
        older, newer = judged_rows(wiki)
        build_tables(spark, warehouse, config)  # the tables the features are computed from
        older_f, newer_f = featured(older, spark, warehouse, config), featured(newer, spark, warehouse, config)
        examples = np.array([[1.0 if r["kept"] == "yes" else 0.0, *f] for r, f in older_f], dtype=np.float64)
        entry = {"older": len(older), "older_with_features": len(older_f), "older_kept": int(examples[:, 0].sum())
                 if len(examples) else 0, "newer": len(newer), "newer_with_features": len(newer_f),
                 "without": measured(spark, warehouse, config, None, newer_f)}
        for weight in [float(w) for w in args.weights.split(",") if w]:
            weighted = dataclasses.replace(config, feedback=dataclasses.replace(config.feedback, weight=weight))
            summary = {"examples": len(examples), "accepted": entry["older_kept"],
                       "rejected": len(examples) - entry["older_kept"], "weight": weight,
                       "checksum": f"judged-history-{len(examples)}"}
            entry[f"weight {weight:g}"] = measured(spark, warehouse, weighted, (examples, summary) if len(examples)
                                                   else None, newer_f)
        results[wiki] = entry
        print(f"{wiki}: older {entry['older_with_features']}/{entry['older']} judged links learned from "
              f"({entry['older_kept']} kept); newer {entry['newer_with_features']}/{entry['newer']} tested on",
              file=sys.stderr)
        for name, point in entry.items():
            if isinstance(point, dict):
                print(f"  {name:>12}: threshold {point['threshold']}, backtest recall {point['recall']}, "
                      f"serves {point['served']} of the newer judged links, kept {point['kept']} "
                      f"({point['kept_share']})", file=sys.stderr)
    if args.json:
        print(json.dumps(results, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1:])
