"""The orphan-link task on every shared dump (README "Links to orphan articles"): per wiki the orphans
(wikitext definition), the simulated-orphan backtest of the wiki's own model, of a joint model of all
the wikis, and of a joint model of the others (the wiki unseen: what a new wiki gets), and the share
of real orphans that receive a suggestion. `--filters` also measures each mention filter switched off.

    python benchmarks/orphans.py --warehouse /tmp/owh [--wikis ltgwiki mrwiki …] [--filters]

The warehouse is filled (ingest, link model) where a wiki is missing. Figures, not tests."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import DUMPS  # noqa: E402

FILTERS = {"too_short": ("orphans.min_mention_chars=1", "orphans.min_mention_chars_spaceless=1"),
           "anchor_of_others": ("orphans.max_anchor_probability=1.0",),
           "common_text": ("orphans.max_plain_share=1.0", "orphans.min_plain_pages=1000000"),
           "case_check": ("orphans.case_check=false",),
           "stems": ("orphans.stem_min_letters=0",)}


def point(curve: list[dict], threshold: float = 0.5) -> tuple[float, float]:
    found = next(p for p in curve if abs(p["threshold"] - threshold) < 1e-9)
    return found["precision"], found["recall"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--wikis", nargs="*", default=sorted(DUMPS))
    parser.add_argument("--filters", action="store_true")
    args = parser.parse_args()

    from pipeline import jobs
    from pipeline.config import load_config
    from pipeline.orphans import model as orphan_model

    rt = jobs.Runtime(args.warehouse, quiet=True)
    spark = rt.spark(rt.config(args.wikis[0]))
    warehouse = rt.warehouse(rt.config(args.wikis[0]))
    for wiki in args.wikis:
        if not warehouse.manifest(wiki):
            jobs.ingest(rt, wiki, str(DUMPS[wiki]), None, None, None, None, True)
    configs = [load_config(w) for w in args.wikis]
    rows = {}
    for config in configs:
        started = time.time()
        own = orphan_model.train(spark, warehouse, config)
        rows[config.wiki] = {"own": point(own["protocols"][orphan_model.PROTOCOL]),
                             "simulated": own["training"]["simulation"]["simulated_orphans"],
                             "hidden_links": own["training"]["simulation"]["gold_links"],
                             "train_seconds": round(time.time() - started, 1)}
    joint = orphan_model.train_joint(spark, warehouse, configs, "bench-joint-orphan_link")
    for wiki, curves in joint["protocols_by_wiki"].items():
        rows[wiki]["joint"] = point(curves[orphan_model.PROTOCOL])
    for config in configs:
        others = [c for c in configs if c.wiki != config.wiki]
        name = f"bench-without-{config.wiki}"
        orphan_model.train_joint(spark, warehouse, others, name)
        unseen = orphan_model.evaluate(spark, warehouse, config, name)
        rows[config.wiki]["unseen"] = point(unseen["protocols"][orphan_model.PROTOCOL])
    for config in configs:
        summary = jobs.orphans(rt, config, dry_run=True, model_name="bench-joint-orphan_link", ignore_gate=True,
                               now="2030-01-01T00:00:00Z")
        rows[config.wiki].update(orphans=summary["orphans"], with_suggestion=summary["orphans_with_suggestion"],
                                 links=summary["links"], pages_with_links=summary["pages_with_links"],
                                 mentions=summary["mentions"])
    print("| wiki | orphans | with a suggestion | simulated orphans (hidden links) | own model P / R at 0.5 "
          "| joint P / R | joint without the wiki P / R |")
    print("|---|---|---|---|---|---|---|")
    for wiki, r in rows.items():
        share = 100 * r["with_suggestion"] / r["orphans"] if r["orphans"] else 0.0
        print(f"| {wiki} | {r['orphans']} | {r['with_suggestion']} ({share:.0f} %) | {r['simulated']} "
              f"({r['hidden_links']}) | {r['own'][0]:.2f} / {r['own'][1]:.2f} | {r['joint'][0]:.2f} / "
              f"{r['joint'][1]:.2f} | {r['unseen'][0]:.2f} / {r['unseen'][1]:.2f} |")
    passing = {k: sum(1 for r in rows.values() if r[k][0] >= 0.75 and r[k][1] >= 0.20)
               for k in ("own", "joint", "unseen")}
    print(f"wikis meeting precision ≥ 0.75 and recall ≥ 0.20 at 0.5: {passing}")
    if args.filters:
        print("\n| filter off | " + " | ".join(args.wikis) + " |")
        print("|---|" + "---|" * len(args.wikis))
        for name, overrides in [("(all on)", ())] + list(FILTERS.items()):
            cells = []
            for wiki in args.wikis:
                config = load_config(wiki, overrides=overrides)
                trained = orphan_model.train(spark, warehouse, config)
                cells.append("{:.2f} / {:.2f}".format(*point(trained["protocols"][orphan_model.PROTOCOL])))
            print(f"| {name} | " + " | ".join(cells) + " |")
    print(json.dumps(rows, sort_keys=True))


if __name__ == "__main__":
    main()
