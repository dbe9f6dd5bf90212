"""What link-based embeddings bring to the link model (README table): the cosine similarity of the
source article (the mean of its out-links' vectors, the candidate target left out) and the candidate
target (its key's vector) as a seventh feature. The vectors are trained on the links of the
leakage-free protocol (the gold sentences' links removed), and both models, with and without the
feature, are trained here on the same training examples with the same settings and backtested on the
same gold sentences.

    python benchmarks/embedding_feature.py --wikis ltgwiki mrwiki ...

Figures, not tests."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import DUMPS  # noqa: E402


def word_vectors(spark, warehouse, config, snapshot):
    """({key: vector}, {page_id: [out-link keys]}, {page_id: key}) from the leakage-free links."""
    from pyspark.sql import functions as F

    from pipeline.embeddings import documents, vectors
    from pipeline.model import tables

    wiki = config.wiki
    removed = tables.gold_links(warehouse.read("sentences", wiki, snapshot))
    links = warehouse.read("links", wiki, snapshot).join(removed, ["source_page_id", "offset"], "left_anti")
    keys = documents.article_keys(warehouse.read("titles", wiki, snapshot), wiki, None)
    docs = documents.out_link_documents(links, keys, wiki, config.embeddings.missing_targets)
    training = (docs.join(keys.select("page_id", "key"), "page_id")
                .select("page_id", F.concat(F.array("key"), "out_keys").alias("tokens")).orderBy("page_id").coalesce(1))
    model = vectors.fit(training, "tokens", config.embeddings)
    word = {r.word: np.asarray(r.vector.toArray(), np.float64) for r in model.getVectors().collect()}
    out = {r.page_id: list(r.out_keys) for r in docs.collect()}
    key_of = {r.page_id: r.key for r in keys.collect()}
    return word, out, key_of


def similarity_feature(word, out, key_of):
    cache = {}

    def feature(source: int, target: int) -> float:
        if (source, target) in cache:
            return cache[(source, target)]
        target_key = key_of.get(target)
        target_vector = word.get(target_key)
        found = [word[k] for k in out.get(source, ()) if k != target_key and k in word]
        value = 0.0
        if found and target_vector is not None:
            mean = np.mean(found, axis=0)
            norm = np.linalg.norm(mean) * np.linalg.norm(target_vector)
            value = float(mean @ target_vector / norm) if norm else 0.0
        cache[(source, target)] = value
        return value
    return feature


def fit(examples: np.ndarray, names: list[str], config):
    import xgboost as xgb

    matrix = xgb.DMatrix(examples[:, 5:], label=examples[:, 4], feature_names=names, nthread=2)
    params = {"objective": "binary:logistic", "max_depth": config.model.max_depth, "eta": config.model.learning_rate,
              "seed": config.model.seed, "nthread": 2, "tree_method": "hist", "eval_metric": "logloss"}
    return xgb.train(params, matrix, num_boost_round=config.model.n_estimators)


def measure(spark, root: str, wiki: str, overrides: tuple[str, ...] = ()) -> dict:
    import xgboost as xgb
    from pyspark.sql import functions as F

    from pipeline.config import load_config
    from pipeline.model.evaluation import THRESHOLDS
    from pipeline.model.features import FEATURES, choose_links, sentence_candidates
    from pipeline.model.train import load_lookups, page_sentences, read_examples
    from pipeline.warehouse import Warehouse, current_snapshot

    config = load_config(wiki, overrides=overrides)
    warehouse = Warehouse(spark, root)
    snapshot = current_snapshot(warehouse, wiki)
    feature = similarity_feature(*word_vectors(spark, warehouse, config, snapshot))
    examples = read_examples(warehouse.table("examples_leakage_free", wiki, snapshot))
    extra = np.array([[feature(int(s), int(t))] for s, t in examples[:, [0, 3]]]).reshape(-1, 1)
    names = [*FEATURES, "embedding_similarity"]
    models = {"without": (fit(examples, FEATURES, config), FEATURES),
              "with": (fit(np.hstack([examples, extra]), names, config), names)}
    lookups = load_lookups(warehouse, config, "leakage_free")
    gold = page_sentences(warehouse, config, F.col("gold")).collect()
    per_sentence = {k: [] for k in models}  # one (thresholds × (predicted, correct, true)) array per sentence
    for page in gold:
        for row in page.sentences:
            group = sentence_candidates(row.text, lookups, page.page_id, config.model.candidates_per_anchor)
            truth = {(link.anchor_key, link.target_page_id) for link in row.links}
            for kind, (booster, columns) in models.items():
                rows = [c.features + ((feature(page.page_id, c.target_id),) if len(columns) > len(FEATURES) else ())
                        for c in group]
                scores = booster.predict(xgb.DMatrix(np.array(rows, np.float64).reshape(-1, len(columns)),
                                                     feature_names=columns)) if rows else []
                scored = list(zip(group, list(scores), strict=True))
                counts = np.zeros((len(THRESHOLDS), 3))
                for i, threshold in enumerate(THRESHOLDS):
                    chosen = {(c.match.anchor, c.target_id) for c, _ in choose_links(scored, threshold)}
                    counts[i] = (len(chosen), len(chosen & truth), len(truth))
                per_sentence[kind].append(counts)
    out = {"wiki": wiki, "training_examples": len(examples), "gold_sentences": sum(len(p.sentences) for p in gold),
           "gold_links": int(sum(c[0, 2] for c in per_sentence["without"]))}
    arrays = {k: np.array(v) for k, v in per_sentence.items()}
    for kind, a in arrays.items():
        p, r = curve(a.sum(axis=0))
        out[kind] = {"precision_0.5": round(float(p[5]), 3), "recall_0.5": round(float(r[5]), 3),
                     "best_recall_at_precision_0.75": round(best_recall(a.sum(axis=0)), 3)}
    # paired bootstrap over the gold sentences: how often the feature's gain in recall at precision ≥ 0.75 holds
    rng = np.random.default_rng(0)
    gains = []
    for _ in range(1000):
        pick = rng.integers(0, len(arrays["with"]), len(arrays["with"]))
        gains.append(best_recall(arrays["with"][pick].sum(axis=0)) - best_recall(arrays["without"][pick].sum(axis=0)))
    out["gain_bootstrap"] = {"mean": round(float(np.mean(gains)), 3), "share_positive": round(float(np.mean(
        np.array(gains) > 0)), 3), "interval_95": [round(float(np.percentile(gains, q)), 3) for q in (2.5, 97.5)]}
    return out


def curve(totals: np.ndarray):
    p = np.divide(totals[:, 1], totals[:, 0], out=np.zeros(len(totals)), where=totals[:, 0] > 0)
    r = np.divide(totals[:, 1], totals[:, 2], out=np.zeros(len(totals)), where=totals[:, 2] > 0)
    return p, r


def best_recall(totals: np.ndarray, precision: float = 0.75) -> float:
    p, r = curve(totals)
    return float(max([r[i] for i in range(len(totals)) if p[i] >= precision], default=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wikis", nargs="+", default=list(DUMPS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="Word2Vec seeds, one measure each.")
    args = parser.parse_args()
    from click.testing import CliRunner

    from pipeline.cli import main as cli
    from pipeline.config import SparkConfig
    from pipeline.spark import get_spark

    spark = get_spark(SparkConfig(master="local[2]", driver_memory="3g", shuffle_partitions=4))
    with tempfile.TemporaryDirectory() as root:
        for wiki in args.wikis:
            for command in (["ingest", "--wiki", wiki, "--dump", str(DUMPS[wiki]), "--allow-truncated"],
                            ["train", "--wiki", wiki]):
                done = CliRunner().invoke(cli, ["--quiet", "--warehouse", root, *command], catch_exceptions=False)
            if done.exit_code:
                print(json.dumps({"wiki": wiki, "skipped": done.stderr.strip()[-300:]}), flush=True)
                continue
            for seed in args.seeds:
                print(json.dumps({"seed": seed, **measure(spark, root, wiki, (f"embeddings.seed={seed}",))}),
                      flush=True)


if __name__ == "__main__":
    main()
