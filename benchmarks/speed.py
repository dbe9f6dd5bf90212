"""Articles per second per core for parsing alone, the per-article engine and the whole Spark recommend
job, on the same articles of an ingested wiki with a trained model. Figures, not tests.
Usage: python benchmarks/speed.py --wiki W [--warehouse DIR] [--model NAME] [--json]"""

from __future__ import annotations

import argparse
import json
import os
import time

import mwparserfromhell

from pipeline.config import Config
from pipeline.ingest.derived import is_article
from pipeline.model import train as model_train
from pipeline.model.artifacts import load_model
from pipeline.recommend.engine import EngineSettings, finish_batch, prepare
from pipeline.recommend.job import Selection, article_titles, recommend
from pipeline.text.titles import TitleNormaliser
from pipeline.warehouse import current_snapshot, siteinfo_of


def speed(spark, warehouse, config: Config, now, model_name: str | None = None) -> dict:
    wiki = config.wiki
    snapshot = current_snapshot(warehouse, wiki)
    record, boosters = load_model(warehouse, model_name or wiki)
    pages = warehouse.read("pages", wiki, snapshot)
    articles = [(r.page_id, r.wikitext) for r in pages.where(is_article())
                .select("page_id", "wikitext").orderBy("page_id").toLocalIterator()]
    started = time.perf_counter()
    for _, wikitext in articles:
        mwparserfromhell.parse(wikitext)
    parse_seconds = time.perf_counter() - started

    lookups = model_train.load_lookups(warehouse, config, "reference")
    titles = article_titles(warehouse, wiki, snapshot)
    normaliser = TitleNormaliser.from_siteinfo(siteinfo_of(warehouse, wiki, snapshot), config.text.case)
    settings = EngineSettings.from_config(config)
    booster = model_train.booster_from_bytes(boosters["reference"])
    links = 0
    started = time.perf_counter()
    for batch in range(0, len(articles), 200):
        prepared = [prepare(text, page_id, lookups, titles, normaliser, settings)
                    for page_id, text in articles[batch:batch + 200]]
        results = finish_batch(prepared, lambda f: model_train.predict(booster, f).tolist(), settings)
        links += sum(len(result.links) for result in results)
    engine_seconds = time.perf_counter() - started

    cores = spark.sparkContext.defaultParallelism or os.cpu_count() or 1
    started = time.perf_counter()
    result = recommend(spark, warehouse, config, Selection(), now, model_name, ignore_gate=True)
    spark_seconds = time.perf_counter() - started
    n = len(articles)
    return {
        "wiki": wiki, "articles": n, "model": record["version"], "cores": cores, "links": links,
        "parse_articles_per_s": round(n / parse_seconds, 1),
        "engine_articles_per_s": round(n / engine_seconds, 1),
        # the job also reads every page and writes its table; per core, as the reference was measured
        "spark_articles_per_s": round(n / spark_seconds / cores, 1),
        "spark_pages_read": result.pages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wiki", required=True)
    parser.add_argument("--warehouse")
    parser.add_argument("--model")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    from pipeline.jobs import Runtime, parse_now

    runtime = Runtime(options.warehouse)
    config = runtime.config(options.wiki)
    result = speed(runtime.spark(config), runtime.warehouse(config), config, parse_now(None), options.model)
    print(f"{options.wiki}: {result['articles']} articles; parse only {result['parse_articles_per_s']}/s, "
          f"engine {result['engine_articles_per_s']}/s, Spark job {result['spark_articles_per_s']}/s per core "
          f"({result['cores']} cores)")
    if options.json:
        print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
