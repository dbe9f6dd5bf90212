"""How the linkability operating point is chosen: read links (benchmarks/judged/) against the wiki's own
statistics, for a grid of `dictionary.common_mention_share` × `dictionary.hub_link_share`.

  python benchmarks/operating_point.py --warehouse W [FILES…] [--floor 5]

For each judged link of the link task: how many articles mention its anchor (linked or not) and how many
link its target, in the warehouse's current tables of that wiki; then, per setting, the links that would
remain and the share of them the reader kept. The setting is then checked by the backtest (recall under
the reference protocol not below the reference system's) and by a fresh reading of the new run's links:
this table only says which settings are worth a run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from judge import read  # noqa: E402

SHARES = (0.0, 0.02, 0.05, 0.1, 0.2)


def statistics(spark, root: str, wiki: str, language: str):
    """anchor key → mentioning articles, target title → linking articles, the number of articles, and the
    gold links (anchor key, target title) of the backtest."""
    from pyspark.sql import functions as F

    from pipeline.model import tables
    from pipeline.warehouse import Warehouse, current_snapshot

    warehouse = Warehouse(spark, root)
    snapshot = current_snapshot(warehouse, wiki)
    usable = warehouse.read("usable_links", wiki, snapshot)
    text = warehouse.read("article_text", wiki, snapshot)
    links = warehouse.read("links", wiki, snapshot)
    mentions = {r.anchor_key: r.mention_articles for r in tables.mention_articles(usable, text).collect()}
    gold = [(r.anchor_key, r.target_title) for r in warehouse.read("sentences", wiki, snapshot).where("gold")
            .select(F.explode("links").alias("l")).select("l.anchor_key", "l.target_title").collect()]
    linked = (links.where((F.col("kind") == "link") & (F.col("resolved_namespace") == 0)
                          & (F.col("resolved_page_id") != F.col("source_page_id")))
              .groupBy("resolved_title").agg(F.countDistinct("source_page_id").alias("n")))
    return mentions, {r.resolved_title: r.n for r in linked.collect()}, text.count(), gold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--floor", type=int, default=5, help="common_min_articles = hub_min_articles")
    args = parser.parse_args()
    from pipeline.config import SparkConfig, load_config
    from pipeline.model import tables
    from pipeline.spark import get_spark
    from pipeline.text.matcher import anchor_key

    files = args.files or sorted((HERE / "judged").glob("*-link.tsv"))
    spark = get_spark(SparkConfig(master="local[2]", driver_memory="2g", shuffle_partitions=4), "operating-point")
    judged, golds = [], {}
    for path in files:
        rows = read(path)
        wiki = rows[0]["wiki"]
        language = load_config(wiki).text.language
        mentions, linking, articles, gold = statistics(spark, args.warehouse, wiki, language)
        for row in rows:
            judged.append((wiki, articles, mentions.get(anchor_key(row["link_text"], language), 0),
                           linking.get(row["link_target"], 0), row["kept"] == "yes"))
        golds[wiki] = [(mentions.get(key, 0), linking.get(title, 0)) for key, title in gold]
    wikis = sorted({j[0] for j in judged})
    print("Per wiki: kept / read links left; then the share of the backtest's gold links left (an upper bound"
          " on the recall kept).\n")
    print("| common_mention_share | hub_link_share | links left | kept of them | " + " | ".join(wikis)
          + " | gold left: " + " | ".join(wikis) + " |")
    print("|---|---|---|---|" + "---|" * (2 * len(wikis)))
    for common in SHARES:
        for hub in SHARES:
            per, left_all, kept_all, gold_left = [], 0, 0, []
            for wiki in wikis:
                rows = [j for j in judged if j[0] == wiki]
                config = load_config(wiki, overrides=(
                    f"dictionary.common_mention_share={common}", f"dictionary.hub_link_share={hub}",
                    f"dictionary.common_min_articles={args.floor}", f"dictionary.hub_min_articles={args.floor}"))
                common_min = tables.common_mention_minimum(config, rows[0][1])
                hub_min = tables.hub_minimum(config, rows[0][1])
                left = [j for j in rows if (common_min is None or j[2] < common_min)
                        and (hub_min is None or j[3] < hub_min)]
                kept = sum(j[4] for j in left)
                gold = [g for g in golds[wiki] if (common_min is None or g[0] < common_min)
                        and (hub_min is None or g[1] < hub_min)]
                gold_left.append(f"{len(gold) / max(len(golds[wiki]), 1):.0%}")
                left_all, kept_all = left_all + len(left), kept_all + kept
                per.append(f"{kept}/{len(left)}")
            share = f"{kept_all / left_all:.0%}" if left_all else "–"
            print(f"| {common} | {hub} | {left_all} of {len(judged)} | {share} | " + " | ".join(per) + " | "
                  + " | ".join(gold_left) + " |")


if __name__ == "__main__":
    main()
