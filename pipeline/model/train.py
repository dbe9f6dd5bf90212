"""Training: the model tables, the lookups and examples built from them, XGBoost with a fixed seed, and
the train job (examples → two boosters → backtests → gate → artifacts), skipped when up to date."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline import __version__
from pipeline.config import Config
from pipeline.ingest.derived import is_article_title
from pipeline.model import ModelError, slices, tables
from pipeline.model import lookups as lookup_paths
from pipeline.model.artifacts import (
    curves_csv,
    model_config_sha,
    model_files,
    model_root,
    plot_curves,
    publish_files,
    sha256_bytes,
    table_checksum,
    write_test_set,
)
from pipeline.model.features import FEATURES, sentence_candidates
from pipeline.text.titles import TitleNormaliser
from pipeline.warehouse import current_snapshot, filesystem, siteinfo_of

MODEL_TABLES = ("excluded_targets", "usable_links", "article_text", "sentences", "dictionary_reference",
                "dictionary_leakage_free", "graph_reference", "graph_leakage_free", "anchors_reference",
                "anchors_leakage_free", "sketches_reference", "sketches_leakage_free")


def tables_fingerprint(config: Config, snapshot: str, wikidata: str | None) -> str:
    model = config.model
    relevant = {"snapshot": snapshot, "text": config.to_dict()["text"], "dictionary": config.to_dict()["dictionary"],
                "split": [model.test_fraction, model.min_test_articles, model.max_test_fraction, model.seed,
                          model.min_training_links],
                "wikidata": wikidata, "version": __version__, "tables": tables.TABLES_VERSION,
                "sketch": model.relatedness_sketch}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def wikidata_input(warehouse, wiki: str, given: str | None = None) -> str | None:
    """The Wikidata table the wiki's model tables use: the one given (recorded in the manifest for the
    commands that follow), else the one recorded (evaluate, recommend, run and nightly reuse it)."""
    manifest = warehouse.manifest(wiki) or {}
    if given is None:
        return manifest.get("wikidata")
    from pipeline.ingest.job import source_path

    given = None if given == "none" else source_path(given)  # "none": stop using the recorded one
    if manifest and manifest.get("wikidata") != given:
        manifest["wikidata"] = given
        warehouse.save_manifest(wiki, manifest)
    return given


def build_tables(spark, warehouse, config: Config, wikidata: str | None = None, force: bool = False) -> dict:
    """Write every model table of the wiki's current snapshot, unless up to date; return their stats."""
    wiki = config.wiki
    snapshot = current_snapshot(warehouse, wiki)
    wikidata = wikidata_input(warehouse, wiki, wikidata)
    fingerprint = tables_fingerprint(config, snapshot, wikidata)
    manifest = warehouse.manifest(wiki)
    previous = manifest.get("model_tables", {})
    if not force and previous.get("fingerprint") == fingerprint and all(
            warehouse.exists(warehouse.table(name, wiki, snapshot)) for name in MODEL_TABLES):
        return {**previous, "reused": True}
    started = time.time()
    siteinfo = siteinfo_of(warehouse, wiki, snapshot)
    normaliser = TitleNormaliser.from_siteinfo(siteinfo, config.text.case)
    pages = warehouse.read("pages", wiki, snapshot)
    titles = warehouse.read("titles", wiki, snapshot)
    links = warehouse.read("links", wiki, snapshot)
    wikidata_table = read_qid_table(spark, wikidata) if wikidata else None

    def write(name, frame):
        path = warehouse.table(name, wiki, snapshot)
        frame.write.mode("overwrite").parquet(path)
        return spark.read.parquet(path)

    articles = titles.where(is_article_title()).count()
    excluded = tables.excluded_targets(spark, pages, titles, config, wikidata_table)
    excluded = write("excluded_targets", excluded)
    usable = write("usable_links", tables.article_links(links, config, excluded))
    min_links = tables.effective_min_anchor_links(config, articles)
    per_shard = config.lookups.anchors_per_shard
    candidates_path = warehouse.table("candidate_anchors", wiki, snapshot)
    _, candidate_shards = slices.write_sharded(
        usable.groupBy("anchor_key").count().where(F.col("count") >= min_links).select("anchor_key"),
        candidates_path, per_shard)
    parsed_path = warehouse.table("article_parsed", wiki, snapshot)
    tables.parse_articles(spark, pages, normaliser, config).write.mode("overwrite").parquet(parsed_path)
    article_text = write("article_text", tables.build_article_text(
        spark, spark.read.parquet(parsed_path), candidates_path, candidate_shards, config.text.language))
    warehouse.delete(parsed_path)
    warehouse.delete(candidates_path)
    usable_links = usable.count()
    test_only = usable_links < config.model.min_training_links
    fraction = 1.0 if test_only else tables.effective_test_fraction(config, articles)
    sentences = write("sentences", tables.build_sentences(article_text, usable, fraction, config.model.seed))
    removed = tables.gold_links(sentences)
    stats = {"snapshot": snapshot, "fingerprint": fingerprint, "wikidata": wikidata, "articles": articles,
             "test_fraction": fraction, "test_only": test_only, "min_anchor_links": min_links,
             "excluded_targets": excluded.count(), "usable_links": usable_links}
    for protocol in tables.PROTOCOLS:
        cut = removed if protocol == "leakage_free" else None
        built = tables.build_dictionary(usable, article_text, config, min_links, cut, articles)
        dictionary = write(f"dictionary_{protocol}", built)
        graph = write(f"graph_{protocol}", tables.build_graph(usable, cut))
        anchors_path = warehouse.table(f"anchors_{protocol}", wiki, snapshot)
        stats[f"anchors_{protocol}"], stats[f"shards_{protocol}"] = slices.write_sharded(
            slices.anchor_entries(dictionary), anchors_path, per_shard)
        sketches = write(f"sketches_{protocol}", slices.build_sketches(graph, config.model.relatedness_sketch))
        sizes = sketches.agg(F.count(F.lit(1)).alias("pages"), F.sum(F.size("smallest")).alias("values"),
                             F.max("degree").alias("max_degree")).first()
        stats[f"dictionary_rows_{protocol}"] = dictionary.count()
        stats[f"sketch_pages_{protocol}"] = int(sizes.pages or 0)
        stats[f"sketch_values_{protocol}"] = int(sizes["values"] or 0)
        stats[f"max_degree_{protocol}"] = int(sizes.max_degree or 0)
    counts = sentences.groupBy("split").agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("gold").cast("int")).alias("g"))
    for row in counts.collect():
        stats[f"{row.split}_sentences"] = row.n
        if row.split == "test":
            stats["gold_sentences"] = row.g
    stats["seconds"] = round(time.time() - started, 2)
    manifest["model_tables"] = stats
    warehouse.save_manifest(wiki, manifest)
    return {**stats, "reused": False}


def read_qid_table(spark, path: str):
    """page_id → QID rows (P31 types for the model, the item itself for embeddings), from Parquet
    (page_id, qid) or a TSV `page_id<TAB>qid`."""
    if path.endswith((".tsv", ".txt", ".tsv.gz")):
        frame = spark.read.csv(path, sep="\t", schema="page_id LONG, qid STRING")
    else:
        frame = spark.read.parquet(path)
    return frame.select(F.col("page_id").cast("long"), F.trim("qid").alias("qid"))


def load_lookups(warehouse, config: Config, protocol: str):
    """The whole broadcast-path Lookups of the wiki's current tables (small wikis, tests, benchmarks)."""
    stats = table_stats(warehouse, config.wiki, protocol)
    return lookup_paths.load_lookups(warehouse, config, current_snapshot(warehouse, config.wiki), protocol,
                                     stats.articles)


def table_stats(warehouse, wiki: str, protocol: str) -> lookup_paths.TableStats:
    stats = (warehouse.manifest(wiki) or {}).get("model_tables", {})
    try:
        return lookup_paths.TableStats.of(stats, protocol)
    except KeyError as missing:
        raise ModelError(f"{wiki}: the model tables lack {missing}; rebuild them (linkrec train --wiki {wiki} "
                         "--force)") from None


def page_sentences(warehouse, config: Config, condition) -> DataFrame:
    """One row per page: page_id, texts (its sentences' text, for the matcher), sentences."""
    sentences = warehouse.read("sentences", config.wiki, current_snapshot(warehouse, config.wiki)).where(condition)
    return sentences.groupBy("page_id").agg(
        F.sort_array(F.collect_list(F.struct("sentence_index", "text", "links"))).alias("sentences")).select(
        "page_id", F.transform("sentences", lambda s: s["text"]).alias("texts"), "sentences")


def _examples(pairs, per_anchor: int):
    for page, lookups in pairs:
        for row in page.sentences:
            gold = {(link.start, link.end, link.target_page_id) for link in row.links}
            for candidate in sentence_candidates(row.text, lookups, page.page_id, per_anchor):
                label = int((candidate.match.start, candidate.match.end, candidate.target_id) in gold)
                yield (page.page_id, row.sentence_index, candidate.match.start, candidate.target_id, label,
                       *candidate.features)


EXAMPLE_SCHEMA = T.StructType(
    [T.StructField("page_id", T.LongType()), T.StructField("sentence_index", T.IntegerType()),
     T.StructField("start", T.IntegerType()), T.StructField("target", T.LongType()),
     T.StructField("label", T.IntegerType())] + [T.StructField(name, T.DoubleType()) for name in FEATURES])


def training_examples(spark, warehouse, config: Config, protocol: str, mode: str | None = None
                      ) -> tuple[np.ndarray, dict]:
    """The training sentences' examples, built in Spark and written to Parquet; at most
    `model.max_training_examples` of them (a deterministic, class-proportional sample) reach the
    driver, as rows (page_id, index, start, target, label, *FEATURES) sorted."""
    wiki = config.wiki
    snapshot = current_snapshot(warehouse, wiki)
    stats = table_stats(warehouse, wiki, protocol)
    units = page_sentences(warehouse, config, F.col("split") == "train")
    per_anchor = config.model.candidates_per_anchor
    rdd, release = lookup_paths.map_pages(spark, warehouse, config, snapshot, protocol, units,
                                          lookup_paths.choose_mode(config, stats, mode), stats,
                                          lambda pairs: _examples(pairs, per_anchor))
    path = warehouse.table(f"examples_{protocol}", wiki, snapshot)
    try:
        spark.createDataFrame(rdd, EXAMPLE_SCHEMA, verifySchema=False).write.mode("overwrite").parquet(path)
    finally:
        release()
    examples = spark.read.parquet(path)
    counts = examples.agg(F.count(F.lit(1)).alias("n"), F.sum("label").alias("positives"),
                          F.countDistinct("page_id", "sentence_index").alias("sentences")).first()
    total = int(counts.n)
    cap = config.model.max_training_examples
    positives = int(counts.positives or 0)
    summary = {"examples": total, "positives": positives, "negatives": total - positives,
               "sentences": int(counts.sentences), "anchors": stats.anchors, "sampled": min(total, cap)}
    path = capped(examples, path, total, cap, config.model.seed, ["page_id", "sentence_index", "start", "target"])
    rows = read_examples(path)
    return rows, summary


def capped(examples: DataFrame, path: str, total: int, cap: int, seed: int, identity: list[str]) -> str:
    """`path` when it holds at most `cap` examples, else the path of a sample of `cap` of them: the same
    share of each class, chosen by a hash of the example's identity (the same rows every run)."""
    if total <= cap:
        return path
    key = F.xxhash64(F.lit(seed), *identity)
    rate = cap / total
    sample = (examples.withColumn("h", F.pmod(key, F.lit(1 << 40)))
              .where(F.col("h") < F.lit(int(rate * 1.02 * (1 << 40))))
              .orderBy("h", *identity).limit(cap).drop("h"))
    sample_path = path + "-sample"
    sample.write.mode("overwrite").parquet(sample_path)
    return sample_path


def read_examples(path: str) -> np.ndarray:
    """The examples under `path` as one float array sorted by identity (read by pyarrow: no Spark
    collect, so no driver result-size limit)."""
    import pyarrow.parquet as pq

    store, base = filesystem(path)
    table = pq.read_table(base, filesystem=store,
                          columns=["page_id", "sentence_index", "start", "target", "label", *FEATURES])
    rows = np.column_stack([table.column(name).to_numpy().astype(np.float64) for name in table.column_names]) \
        if table.num_rows else np.zeros((0, 5 + len(FEATURES)))
    order = np.lexsort((rows[:, 3], rows[:, 2], rows[:, 1], rows[:, 0])) if len(rows) else []
    return rows[order]  # task order must not change the model


def xgboost_threads(config: Config) -> int:
    return config.model.threads or os.cpu_count() or 1


def fit(examples: np.ndarray, config: Config, reviewed: np.ndarray | None = None) -> xgb.Booster:
    """`reviewed`: editors' decisions (label, *FEATURES), weighted feedback.weight, after the sentences' examples."""
    labels = examples[:, 4]
    if labels.size == 0 or labels.min() == labels.max():
        raise ModelError(f"{config.wiki}: training needs positive and negative examples; got "
                         f"{int(labels.sum())} positives among {labels.size} candidates")
    features, weights = examples[:, 5:], np.ones(len(examples))
    if reviewed is not None and len(reviewed):
        features = np.vstack([features, reviewed[:, 1:]])
        labels = np.concatenate([labels, reviewed[:, 0]])
        weights = np.concatenate([weights, np.full(len(reviewed), config.feedback.weight)])
    matrix = xgb.DMatrix(features, label=labels, weight=weights, feature_names=FEATURES,
                         nthread=xgboost_threads(config))
    params = {"objective": "binary:logistic", "max_depth": config.model.max_depth, "eta": config.model.learning_rate,
              "seed": config.model.seed, "nthread": xgboost_threads(config), "tree_method": "hist",
              "eval_metric": "logloss"}
    return xgb.train(params, matrix, num_boost_round=config.model.n_estimators)


def predict(booster: xgb.Booster, features: list[tuple[float, ...]]) -> np.ndarray:
    """One model call for a whole batch of candidates."""
    if not features:
        return np.zeros(0)
    return booster.predict(xgb.DMatrix(np.array(features, dtype=np.float64), feature_names=FEATURES))


def booster_from_bytes(raw: bytes) -> xgb.Booster:
    booster = xgb.Booster(params={"nthread": 1})
    booster.load_model(bytearray(raw))
    return booster


@dataclass
class TrainedModel:
    name: str
    version: str
    path: str
    released: bool
    reason: str
    curves: dict
    training: dict

    def summary(self) -> dict:
        return {"model": self.name, "version": self.version, "path": self.path, "released": self.released,
                "reason": self.reason, "training": self.training,
                "protocols": {p: [{k: v for k, v in point.items() if k in ("threshold", "n_sentences", "precision",
                                                                            "recall")} for point in curve]
                              for p, curve in self.curves.items()}}


def feedback_identity(feedback: dict | None) -> str | None:
    """What of the editors' decisions a model depends on: which decisions, and their weight."""
    return f"{feedback['checksum']}:{feedback['weight']}" if feedback else None


def up_to_date_model(warehouse, config: Config, wikidata: str | None = None, feedback: dict | None = None
                     ) -> dict | None:
    """The wiki's LATEST model record when it was trained on the current tables with this config and the same
    editors' decisions (`feedback`: the summary of `feedback.learn.reviewed_examples`, None for none)."""
    text = warehouse.read_text(f"{model_root(warehouse, config.wiki)}/LATEST.json")
    if text is None:
        return None
    record = json.loads(text)
    snapshot = current_snapshot(warehouse, config.wiki)
    wikidata = wikidata if wikidata is not None else wikidata_input(warehouse, config.wiki)
    if (record.get("snapshot") == snapshot
            and record.get("tables_fingerprint") == tables_fingerprint(config, snapshot, wikidata)
            and record.get("model_config") == model_config_sha(config)
            and record.get("feedback") == feedback_identity(feedback)):
        return record
    return None


def train(spark, warehouse, config: Config, wikidata: str | None = None, force: bool = False,
          mode: str | None = None, feedback: tuple[np.ndarray, dict] | None = None) -> TrainedModel:
    """Every stage for one wiki: tables, a model per protocol, backtests, gate, artifacts. `feedback`:
    editors' decisions as extra examples (`feedback.learn.reviewed_examples`)."""
    from pipeline.model.evaluation import backtest, gate  # evaluation reads this module's tables

    wiki = config.wiki
    table_stats = build_tables(spark, warehouse, config, wikidata, force)
    if table_stats.get("test_only"):
        raise ModelError(f"{wiki}: only {table_stats['usable_links']} usable links (model.min_training_links "
                         f"{config.model.min_training_links}): too few to train a model of its own; all its articles "
                         "are test articles: serve and evaluate it with a joint model (linkrec train --wikis … --name "
                         f"…; linkrec evaluate --wiki {wiki} --model …)")
    snapshot = table_stats["snapshot"]
    boosters, curves, training = {}, {}, {"tables": table_stats}
    for protocol in tables.PROTOCOLS:
        examples, training[protocol] = training_examples(spark, warehouse, config, protocol, mode)
        raw = bytes(fit(examples, config, feedback[0] if feedback else None).save_raw("json"))
        boosters[protocol] = raw
        curves[protocol] = backtest(spark, warehouse, config, protocol, raw, mode)
    released, reason = gate(curves, config)
    checksums = {"model": sha256_bytes(boosters["reference"]),
                 "model_leakage_free": sha256_bytes(boosters["leakage_free"])}
    for protocol in tables.PROTOCOLS:
        checksums[f"anchors_{protocol}" if protocol == "leakage_free" else "anchors"] = table_checksum(
            warehouse.read(f"dictionary_{protocol}", wiki, snapshot),
            ["anchor_key", "target_page_id", "count", "link_probability"])
    # what changes the model, not where it ran (spark, sinks, lookups and thread settings are left out)
    learned = feedback[1] if feedback else None
    if learned:
        training["feedback"] = learned
    identity = checksums["model"] + model_config_sha(config) + (feedback_identity(learned) or "")
    version = hashlib.sha256(identity.encode()).hexdigest()[:12]
    files = model_files(boosters, checksums, config.to_dict(), training,
                        {"wiki": wiki, "protocols": curves, "released": released, "reason": reason})
    files["metrics.csv"] = curves_csv(curves).encode()
    files["backtest.png"] = plot_curves(curves, f"{wiki} backtest")
    path = f"{model_root(warehouse, wiki)}/{version}"
    publish_files(warehouse, path, files)
    write_test_set(warehouse, config, path)
    latest = {"name": wiki, "version": version, "released": released, "reason": reason, "wikis": [wiki],
              "snapshot": snapshot, "trained_at": int(time.time()), "application_version": __version__,
              "tables_fingerprint": table_stats["fingerprint"], "model_config": model_config_sha(config),
              "feedback": feedback_identity(learned)}
    warehouse.write_text(f"{model_root(warehouse, wiki)}/LATEST.json", json.dumps(latest, indent=2, sort_keys=True))
    return TrainedModel(wiki, version, path, released, reason, curves, training)
