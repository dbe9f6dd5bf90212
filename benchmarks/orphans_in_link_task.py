"""What `recommend.include_orphans` does to the link model's backtest (README): the link model's
leakage-free curve, and the same with the orphan links the orphan task proposes inside the gold
sentences added to its predictions. No gold link points to an orphan (nothing links to one), so every
added link counts as wrong: precision can only fall, recall stays; the figure is an upper bound of the
cost (some added links are links the article lacks). Figures, not tests.

    python benchmarks/orphans_in_link_task.py --warehouse /tmp/owh [--model NAME] [--wikis …]"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import DUMPS  # noqa: E402

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--wikis", nargs="*", default=sorted(DUMPS))
    parser.add_argument("--model", help="orphan model [default: each wiki's own]")
    args = parser.parse_args()

    from pipeline import jobs
    from pipeline.model.artifacts import model_root
    from pipeline.warehouse import current_snapshot

    rt = jobs.Runtime(args.warehouse, overrides=("orphans.maximum_links_per_task=10",
                                                 "orphans.minimum_link_score=0.5"), quiet=True)
    print("| wiki | link model P / R at 0.5 | with orphan links | orphan links added in gold sentences "
          "(0.5 / 0.7 / 0.9) |")
    print("|---|---|---|---|")
    for wiki in args.wikis:
        config = rt.config(wiki)
        spark, warehouse = rt.spark(config), rt.warehouse(config)
        latest = warehouse.read_text(f"{model_root(warehouse, wiki)}/LATEST.json")
        if latest is None:
            print(f"| {wiki} | no link model of its own | | |")
            continue
        version = json.loads(latest)["version"]
        curve = {float(r["threshold"]): r for r in csv.DictReader(io.StringIO(
            warehouse.read_text(f"{model_root(warehouse, wiki)}/{version}/metrics.csv")))
            if r["protocol"] == "leakage_free"}
        summary = jobs.orphans(rt, config, dry_run=True, model_name=args.model, ignore_gate=True,
                               now="2030-01-01T00:00:00Z")
        snapshot = current_snapshot(warehouse, wiki)
        texts = {r.page_id: r.wikitext for r in warehouse.read("pages", wiki, snapshot).where("namespace = 0")
                 .select("page_id", "wikitext").collect()}
        gold: dict[int, list[tuple[int, int]]] = {}
        for row in warehouse.read("sentences", wiki, snapshot).where("gold").select("page_id", "wikitext").collect():
            at = texts.get(row.page_id, "").find(row.wikitext)
            if at >= 0:
                gold.setdefault(row.page_id, []).append((at, at + len(row.wikitext)))
        added = dict.fromkeys(THRESHOLDS, 0)
        for row in spark.read.parquet(summary["output"]).where("gelr_data IS NOT NULL").collect():
            for link in json.loads(row.gelr_data)["links"]:
                start = link["wikitext_offset"]
                if any(a <= start < b for a, b in gold.get(row.page_id, ())):
                    for t in THRESHOLDS:
                        added[t] += link["score"] >= t
        point = curve[0.5]
        predicted, correct, true = int(point["predicted"]), int(point["correct"]), int(point["true"])
        mixed = correct / (predicted + added[0.5]) if predicted + added[0.5] else 0.0
        print(f"| {wiki} | {correct / predicted if predicted else 0:.3f} / {correct / true if true else 0:.3f} | "
              f"{mixed:.3f} / {correct / true if true else 0:.3f} | {added[0.5]} / {added[0.7]} / {added[0.9]} "
              f"(of {predicted} predicted) |")


if __name__ == "__main__":
    main()
