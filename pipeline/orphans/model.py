"""The orphan-link model: simulated orphans (articles with a few incoming links, every link to them
turned into plain text and taken out of the link graph), examples from the training share, XGBoost
with a fixed seed, the backtest on the held-out share, the release gate, artifacts.

The split: a simulated orphan is a test orphan or a training one (by a hash of its id); no training
example has a test orphan as its target, a test orphan as its source, or a source that links to a
test orphan."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline import __version__
from pipeline.config import Config
from pipeline.ingest.derived import is_article_title
from pipeline.model import ModelError, artifacts
from pipeline.model.artifacts import model_root, plot_curves, publish_files, sha256_bytes
from pipeline.model.features import choose_links
from pipeline.model.train import booster_from_bytes, build_tables, capped, xgboost_threads
from pipeline.orphans import job
from pipeline.orphans.engine import FEATURES, FEATURES_VERSION, labelled
from pipeline.recommend.engine import scored_candidates
from pipeline.text.titles import TitleNormaliser
from pipeline.warehouse import current_snapshot, filesystem, siteinfo_of

TASK = "orphan_link"
PROTOCOL = "simulated_orphans"
THRESHOLDS = [round(0.1 * i, 1) for i in range(10)]


def model_name(wiki: str) -> str:
    return f"{wiki}-{TASK}"


def split_column(seed: int, fraction: float):
    bucket = F.pmod(F.xxhash64(F.lit(seed), F.lit("orphan-split"), F.col("page_id")), F.lit(10_000))
    return F.when(bucket < F.lit(int(round(fraction * 10_000))), "test").otherwise("train")


def simulated_orphans(edges: DataFrame, titles: DataFrame, excluded: DataFrame, config: Config) -> DataFrame:
    """page_id, incoming, split: articles (not excluded as link targets) with between
    `simulated_min_incoming` and `simulated_max_incoming` linking articles, at most `simulated_max` of
    them (the smallest hashes of their ids: the same sample every run)."""
    o = config.orphans
    incoming = edges.groupBy(F.col("target_page_id").alias("page_id")).agg(
        F.countDistinct("source_page_id").alias("incoming"))
    articles = titles.where(is_article_title()).select("page_id").join(excluded.select("page_id"), "page_id",
                                                                        "left_anti")
    chosen = (articles.join(incoming, "page_id")
              .where(F.col("incoming").between(o.simulated_min_incoming, o.simulated_max_incoming))
              .withColumn("h", F.xxhash64(F.lit(config.model.seed), F.lit("simulated"), F.col("page_id")))
              .orderBy("h", "page_id").limit(o.simulated_max).drop("h"))
    return chosen.withColumn("split", split_column(config.model.seed, o.simulated_test_fraction))


def fingerprint(config: Config, snapshot: str) -> str:
    relevant = {"snapshot": snapshot, "orphans": config.to_dict()["orphans"], "text": config.to_dict()["text"],
                "dictionary": config.to_dict()["dictionary"], "seed": config.model.seed,
                "learning_rate": config.model.learning_rate, "recommend_sections": config.recommend.excluded_sections,
                "version": __version__, "features": FEATURES_VERSION}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Prepared:
    train_inputs: str  # page inputs of the training share (path)
    test_inputs: str
    stats: dict


def prepare(spark, warehouse, config: Config, force: bool = False) -> Prepared:
    """Every table of the simulated-orphan protocol for the wiki's current snapshot (reused when up to date)."""
    wiki = config.wiki
    build_tables(spark, warehouse, config)  # the dictionary and the excluded targets
    snapshot = current_snapshot(warehouse, wiki)
    paths = {name: warehouse.table(f"orphan_sim_{name}", wiki, snapshot) for name in ("train", "test")}
    manifest = warehouse.manifest(wiki)
    previous = manifest.get("orphan_simulation", {})
    key = fingerprint(config, snapshot)
    if not force and previous.get("fingerprint") == key and all(warehouse.exists(p) for p in paths.values()):
        return Prepared(paths["train"], paths["test"], {**previous, "reused": True})
    started = time.time()
    normaliser = TitleNormaliser.from_siteinfo(siteinfo_of(warehouse, wiki, snapshot), config.text.case)
    pages, titles = warehouse.read("pages", wiki, snapshot), warehouse.read("titles", wiki, snapshot)
    links = warehouse.read("links", wiki, snapshot)
    excluded = warehouse.read("excluded_targets", wiki, snapshot)
    articles = titles.where(is_article_title()).count()

    def write(name, frame):
        path = warehouse.table(name, wiki, snapshot)
        frame.write.mode("overwrite").parquet(path)
        return spark.read.parquet(path)

    full = job.graph_edges(links, None)
    simulated = write("orphan_sim_targets", simulated_orphans(full, titles, excluded, config))
    disambiguation = excluded.where(F.col("reason") == "disambiguation").select(
        "page_id", F.lit(True).alias("is_disambiguation"))
    units = write("orphan_sim_units", job.build_units(spark, pages, links, simulated, disambiguation, normaliser,
                                                      config))
    anchors = spark.read.parquet(warehouse.table("anchors_reference", wiki, snapshot))
    mentions = write("orphan_sim_mentions", job.build_mentions(spark, titles, simulated, anchors, config))
    found = write("orphan_sim_found", job.occurrences(spark, warehouse, wiki, snapshot, units, mentions,
                                                      "orphan_sim", config))
    per_page, counted = job.entries(found, mentions, config, articles)
    per_page = per_page.join(simulated.select(F.col("page_id").alias("orphan_id"), "split"), "orphan_id")
    test_orphans = simulated.where(F.col("split") == "test").select(F.col("page_id").alias("target_page_id"))
    held_out = (full.join(test_orphans, "target_page_id").select(F.col("source_page_id").alias("page_id"))
                .unionByName(test_orphans.select(F.col("target_page_id").alias("page_id"))).distinct())
    shares = {"train": per_page.where(F.col("split") == "train").join(held_out, "page_id", "left_anti"),
              "test": per_page.where(F.col("split") == "test")}
    pairs = per_page.select("page_id", "orphan_id").distinct()
    related = write("orphan_sim_relations", job.relations(pairs, job.graph_edges(links, simulated)))
    for share, frame in shares.items():
        write(f"orphan_sim_{share}", job.page_inputs(units, frame.drop("split"), related))
    gold = full.join(test_orphans, "target_page_id").count()
    split_counts = {r.split: r["count"] for r in simulated.groupBy("split").count().collect()}
    stats = {"snapshot": snapshot, "fingerprint": key, "articles": articles,
             "simulated_orphans": sum(split_counts.values()), "train_orphans": split_counts.get("train", 0),
             "test_orphans": split_counts.get("test", 0), "gold_links": gold,
             "mentions": job.filter_counts(counted),
             "common_text_limit": job.common_text_limit(config, articles), "seconds": round(time.time() - started, 2)}
    manifest = warehouse.manifest(wiki)
    manifest["orphan_simulation"] = stats
    warehouse.save_manifest(wiki, manifest)
    return Prepared(paths["train"], paths["test"], {**stats, "reused": False})


def _examples(rows, articles: int, config: Config):
    for row in rows:
        found = job.found_for(row, articles, config)
        spans = [(r.start, r.end, int(r.orphan_id)) for r in row.removed or ()]
        for (candidate, index), label in zip(found.prepared.candidates, labelled(found, spans), strict=True):
            start = found.prepared.segments[index].offset + candidate.match.start
            yield (int(row.page_id), start, candidate.target_id, label, *candidate.features)


def training_examples(spark, warehouse, config: Config, prepared: Prepared) -> np.ndarray:
    """(page_id, start, target, label, *FEATURES) sorted, written by Spark, read with pyarrow."""
    import pyarrow.parquet as pq

    wiki = config.wiki
    snapshot = current_snapshot(warehouse, wiki)
    articles = prepared.stats["articles"]
    path = warehouse.table("orphan_sim_examples", wiki, snapshot)
    inputs = spark.read.parquet(prepared.train_inputs)
    spark.createDataFrame(inputs.rdd.mapPartitions(lambda rows: _examples(rows, articles, config)),
                          job.EXAMPLE_SCHEMA, verifySchema=False).write.mode("overwrite").parquet(path)
    written = spark.read.parquet(path)
    # at most model.max_training_examples reach the driver, whatever the wiki's size
    path = capped(written, path, written.count(), config.model.max_training_examples, config.model.seed,
                  ["page_id", "start", "target"])
    store, base = filesystem(path)
    table = pq.read_table(base, filesystem=store, columns=["page_id", "start", "target", "label", *FEATURES])
    if not table.num_rows:
        return np.zeros((0, 4 + len(FEATURES)))
    rows = np.column_stack([table.column(n).to_numpy().astype(np.float64) for n in table.column_names])
    return rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]  # task order must not change the model


def fit(examples: np.ndarray, config: Config) -> xgb.Booster:
    labels = examples[:, 3]
    if labels.size == 0 or labels.min() == labels.max():
        raise ModelError(f"{config.wiki}: the orphan model needs positive and negative examples; the simulated "
                         f"orphans gave {int(labels.sum())} positives among {labels.size} candidates")
    threads = xgboost_threads(config)
    matrix = xgb.DMatrix(examples[:, 4:], label=labels, feature_names=FEATURES, nthread=threads)
    params = {"objective": "binary:logistic", "max_depth": config.orphans.max_depth,
              "eta": config.model.learning_rate, "seed": config.model.seed, "nthread": threads,
              "tree_method": "hist", "eval_metric": "logloss"}
    return xgb.train(params, matrix, num_boost_round=config.orphans.n_estimators)


def predict(booster: xgb.Booster, features: list[tuple[float, ...]]) -> np.ndarray:
    if not features:
        return np.zeros(0)
    return booster.predict(xgb.DMatrix(np.array(features, dtype=np.float64), feature_names=FEATURES))


def _backtest(rows, model_broadcast, articles: int, config: Config):
    booster = booster_from_bytes(model_broadcast.value)
    totals = np.zeros((len(THRESHOLDS), 2), dtype=np.int64)  # predicted, correct
    for row in rows:
        found = job.found_for(row, articles, config)
        gold = {int(r.orphan_id) for r in row.removed or ()}
        prepared = found.prepared
        scores = predict(booster, [c.features for c, _ in prepared.candidates]).tolist()
        scored, _ = scored_candidates(prepared, scores)
        for i, threshold in enumerate(THRESHOLDS):
            chosen = {c.target_id for c, _ in choose_links(scored, threshold, prepared.linked_targets)}
            totals[i] += (len(chosen), len(chosen & gold))
    yield totals


def backtest(spark, config: Config, prepared: Prepared, model_raw: bytes) -> list[dict]:
    """Precision and recall of the (article, orphan) links found again, over every link from an article
    to a test orphan (links inside templates and tables too: a missed one counts against recall)."""
    articles = prepared.stats["articles"]
    model_b = spark.sparkContext.broadcast(model_raw)
    try:
        parts = spark.read.parquet(prepared.test_inputs).rdd.mapPartitions(
            lambda rows: _backtest(rows, model_b, articles, config)).collect()  # one small array per task
    finally:
        model_b.unpersist()
    totals = sum(parts, np.zeros((len(THRESHOLDS), 2), dtype=np.int64))
    true = int(prepared.stats["gold_links"])
    curve = []
    for threshold, (predicted, correct) in zip(THRESHOLDS, totals.tolist(), strict=True):
        curve.append({"threshold": threshold, "n_links": true,
                      "precision": round(correct / predicted, 4) if predicted else 0.0,
                      "recall": round(correct / true, 4) if true else 0.0,
                      "predicted": predicted, "correct": correct, "true": true})
    return curve


def gate(curve: list[dict], config: Config) -> tuple[bool, str]:
    o = config.orphans
    point = next(p for p in curve if abs(p["threshold"] - o.gate_threshold) < 1e-9)
    failures = []
    if point["precision"] < o.gate_min_precision:
        failures.append(f"precision {point['precision']:.3f} < {o.gate_min_precision}")
    if point["recall"] < o.gate_min_recall:
        failures.append(f"recall {point['recall']:.3f} < {o.gate_min_recall}")
    where = f"at threshold {o.gate_threshold} (simulated orphans)"
    if failures:
        return False, f"not released: {', '.join(failures)} {where}"
    return True, f"released: precision {point['precision']:.3f}, recall {point['recall']:.3f} {where}"


def curve_csv(curve: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = ["threshold", "n_links", "precision", "recall", "predicted", "correct", "true"]
    writer.writerow(columns)
    for point in curve:
        writer.writerow([point[c] for c in columns])
    return out.getvalue()


def public_curve(curve: list[dict]) -> list[dict]:
    return [{k: p[k] for k in ("threshold", "n_links", "precision", "recall")} for p in curve]


def orphan_config_sha(config: Config) -> str:
    relevant = {"orphans": config.to_dict()["orphans"], "seed": config.model.seed,
                "learning_rate": config.model.learning_rate, "features": FEATURES_VERSION}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def up_to_date(warehouse, config: Config) -> dict | None:
    """The LATEST record of the wiki's orphan model when it was trained on this snapshot and config."""
    text = warehouse.read_text(f"{model_root(warehouse, model_name(config.wiki))}/LATEST.json")
    if text is None:
        return None
    record = json.loads(text)
    snapshot = current_snapshot(warehouse, config.wiki)
    if record.get("fingerprint") == fingerprint(config, snapshot):
        return record
    return None


def train(spark, warehouse, config: Config, force: bool = False) -> dict:
    """Simulated orphans → examples → XGBoost → backtest → gate → artifacts; the summary."""
    wiki = config.wiki
    prepared = prepare(spark, warehouse, config, force)
    examples = training_examples(spark, warehouse, config, prepared)
    raw = bytes(fit(examples, config).save_raw("json"))
    curve = backtest(spark, config, prepared, raw)
    released, reason = gate(curve, config)
    version = hashlib.sha256((sha256_bytes(raw) + orphan_config_sha(config)).encode()).hexdigest()[:12]
    training = {"simulation": prepared.stats, "examples": int(len(examples)),
                "positives": int(examples[:, 3].sum()) if len(examples) else 0}
    name = model_name(wiki)
    path = f"{model_root(warehouse, name)}/{version}"
    publish_files(warehouse, path, {
        "model.json": raw, "features.json": json.dumps(FEATURES).encode(),
        "config.json": json.dumps(config.to_dict(), indent=2, sort_keys=True, ensure_ascii=False).encode(),
        "training.json": json.dumps(training, indent=2, sort_keys=True).encode(),
        "metrics.json": json.dumps({"wiki": wiki, "protocols": {PROTOCOL: curve}, "released": released,
                                    "reason": reason}, indent=2, sort_keys=True).encode(),
        "checksums.json": json.dumps({"model": sha256_bytes(raw)}, indent=2).encode(),
        "metrics.csv": curve_csv(curve).encode(),
        "backtest.png": plot_curves({PROTOCOL: curve}, f"{wiki} orphan links (simulated orphans)")})
    latest = {"name": name, "version": version, "released": released, "reason": reason, "wiki": wiki,
              "task": TASK, "snapshot": prepared.stats["snapshot"], "fingerprint": fingerprint(
                  config, prepared.stats["snapshot"]), "trained_at": int(time.time()),
              "application_version": __version__}
    warehouse.write_text(f"{model_root(warehouse, name)}/LATEST.json", json.dumps(latest, indent=2, sort_keys=True))
    return {"wiki": wiki, "model": name, "version": version, "path": path, "released": released, "reason": reason,
            "training": training, "protocols": {PROTOCOL: public_curve(curve)}}


def train_joint(spark, warehouse, configs: list[Config], name: str, force: bool = False) -> dict:
    """One orphan model for a group of wikis, trained on the union of their training shares (each wiki's
    test orphans and their sources stay out) and backtested and gated per wiki. The features do not
    depend on the language, so it also serves wikis too small to train their own."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ModelError(f"--name {name!r}: use letters, digits, '-' and '_'")
    prepared = {config.wiki: prepare(spark, warehouse, config, force) for config in configs}
    stacked = np.concatenate([training_examples(spark, warehouse, config, prepared[config.wiki])
                              for config in configs])
    raw = bytes(fit(stacked, configs[0]).save_raw("json"))
    version = hashlib.sha256((sha256_bytes(raw) + "".join(orphan_config_sha(c) for c in configs)).encode()
                             ).hexdigest()[:12]
    path = f"{model_root(warehouse, name)}/{version}"
    curves, released_for, reasons = {}, {}, {}
    files = {"model.json": raw, "features.json": json.dumps(FEATURES).encode(),
             "training.json": json.dumps({"wikis": [c.wiki for c in configs], "examples": int(len(stacked)),
                                          "positives": int(stacked[:, 3].sum()),
                                          "simulation": {w: p.stats for w, p in prepared.items()}},
                                         indent=2, sort_keys=True).encode()}
    for config in configs:
        curve = backtest(spark, config, prepared[config.wiki], raw)
        curves[config.wiki] = curve
        released_for[config.wiki], reasons[config.wiki] = gate(curve, config)
        files[f"evaluations/{config.wiki}/metrics.csv"] = curve_csv(curve).encode()
    first = configs[0].wiki
    files["metrics.csv"], files["backtest.png"] = files[f"evaluations/{first}/metrics.csv"], plot_curves(
        {w: c for w, c in curves.items()}, f"{name}: simulated orphans per wiki")
    files["metrics.json"] = json.dumps({"protocols_by_wiki": {w: {PROTOCOL: c} for w, c in curves.items()},
                                        "released_for": released_for, "reasons": reasons}, indent=2,
                                       sort_keys=True).encode()
    publish_files(warehouse, path, files)
    latest = {"name": name, "version": version, "released": all(released_for.values()),
              "released_for": released_for, "reason": "; ".join(f"{w}: {r}" for w, r in reasons.items()),
              "wikis": [c.wiki for c in configs], "task": TASK, "trained_at": int(time.time()),
              "application_version": __version__}
    warehouse.write_text(f"{model_root(warehouse, name)}/LATEST.json", json.dumps(latest, indent=2, sort_keys=True))
    return {"model": name, "version": version, "path": path, "released_for": released_for, "reasons": reasons,
            "protocols_by_wiki": {w: {PROTOCOL: public_curve(c)} for w, c in curves.items()}}


def recorded_summary(warehouse, record: dict) -> dict:
    """What `train` printed for a model trained earlier (its curve from the version's metrics.json)."""
    folder = f"{model_root(warehouse, record['name'])}/{record['version']}"
    metrics = json.loads(warehouse.read_text(f"{folder}/metrics.json") or "{}")
    return {"wiki": record.get("wiki"), "model": record["name"], "version": record["version"], "path": folder,
            "released": record["released"], "reason": record["reason"],
            "protocols": {PROTOCOL: public_curve(metrics.get("protocols", {}).get(PROTOCOL, []))}}


def gate_for(warehouse, record: dict, wiki: str) -> tuple[bool, str]:
    """(released, reason) of an orphan model (the wiki's own or a joint one) for this wiki; ModelError
    naming the command that gates it when it never was."""
    return artifacts.gate_for(warehouse, record, wiki,
                              f"linkrec evaluate --wiki {wiki} --task {TASK} --model {record['name']}")


def load(warehouse, config: Config, name: str | None = None) -> tuple[dict, bytes]:
    """The LATEST record and booster of the wiki's orphan model, or of another wiki's (`name`)."""
    name = name or model_name(config.wiki)
    text = warehouse.read_text(f"{model_root(warehouse, name)}/LATEST.json")
    if text is None:
        wiki = name.removesuffix("-" + TASK) if name.endswith("-" + TASK) else None  # a wiki's own model
        how = (f"train it: linkrec train --wiki {wiki} --task {TASK}" if wiki == config.wiki else
               f"check the name, or train it: linkrec train --wiki {wiki} --task {TASK}" if wiki else
               f"check the name, or train a joint orphan model by that name: linkrec train --task {TASK} "
               f"--wikis {config.wiki},… --name {name}")
        raise ModelError(f"no orphan model {name!r} under {warehouse.root}/models; {how}")
    record = json.loads(text)
    raw = warehouse.read_bytes(f"{model_root(warehouse, name)}/{record['version']}/model.json")
    if raw is None:
        raise ModelError(f"orphan model {name} {record['version']}: model.json is missing")
    return record, raw


def evaluate(spark, warehouse, config: Config, name: str | None = None) -> dict:
    """The wiki's orphan model (or `name`, e.g. a joint one) backtested on the current snapshot's
    simulated orphans."""
    record, raw = load(warehouse, config, name)
    prepared = prepare(spark, warehouse, config)
    curve = backtest(spark, config, prepared, raw)
    released, reason = gate(curve, config)
    gated = record.get("wiki") == config.wiki or config.wiki in record.get("released_for", {})
    if not gated:  # a wiki the model was trained on keeps that gate
        artifacts.record_gate(warehouse, record["name"], record["version"], config.wiki, released, reason)
    return {"wiki": config.wiki, "model": record["name"], "version": record["version"], "released": released,
            "gate": reason, "protocols": {PROTOCOL: public_curve(curve)}}
