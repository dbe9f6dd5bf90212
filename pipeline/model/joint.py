"""Joint models: one model for a group of wikis, trained on the union of their training examples.
The features are language-agnostic, so a joint model also scores wikis it has not seen (each wiki
keeps its own dictionary and link graph)."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np

from pipeline import __version__
from pipeline.config import Config
from pipeline.model import ModelError, tables
from pipeline.model.artifacts import curves_csv, model_files, model_root, plot_curves, publish_files, sha256_bytes
from pipeline.model.evaluation import backtest, gate
from pipeline.model.features import FEATURES
from pipeline.model.train import TrainedModel, build_tables, fit, training_examples


def train_joint(spark, warehouse, configs: list[Config], name: str, force: bool = False) -> TrainedModel:
    if not tables_ok_name(name):
        raise ModelError(f"--name {name!r}: use letters, digits, '-' and '_'")
    wikis = [c.wiki for c in configs]
    base = configs[0]
    examples: dict[str, list[np.ndarray]] = {p: [] for p in tables.PROTOCOLS}
    training: dict = {"wikis": wikis}
    for config in configs:
        build_tables(spark, warehouse, config, force=force)
        for protocol in tables.PROTOCOLS:
            rows, summary = training_examples(spark, warehouse, config, protocol)
            examples[protocol].append(rows)
            training.setdefault(config.wiki, {})[protocol] = summary
    boosters = {}
    for protocol in tables.PROTOCOLS:
        stacked = np.concatenate(examples[protocol]) if examples[protocol] else np.zeros((0, 5 + len(FEATURES)))
        boosters[protocol] = bytes(fit(stacked, base).save_raw("json"))
    curves_by_wiki, released_for, reasons = {}, {}, {}
    for config in configs:
        curves = {p: backtest(spark, warehouse, config, p, boosters[p]) for p in tables.PROTOCOLS}
        curves_by_wiki[config.wiki] = curves
        released_for[config.wiki], reasons[config.wiki] = gate(curves, config)
    checksums = {"model": sha256_bytes(boosters["reference"]),
                 "model_leakage_free": sha256_bytes(boosters["leakage_free"])}
    identity = checksums["model"] + json.dumps(base.to_dict()["model"], sort_keys=True) + ",".join(wikis)
    version = hashlib.sha256(identity.encode()).hexdigest()[:12]
    files = model_files(boosters, checksums, {c.wiki: c.to_dict() for c in configs}, training,
                        {"protocols_by_wiki": curves_by_wiki, "released_for": released_for, "reasons": reasons})
    for wiki, curves in curves_by_wiki.items():
        files[f"metrics.{wiki}.csv"] = curves_csv(curves).encode()
        files[f"backtest.{wiki}.png"] = plot_curves(curves, f"{name} on {wiki}")
    path = f"{model_root(warehouse, name)}/{version}"
    publish_files(warehouse, path, files)
    released = all(released_for.values())
    latest = {"name": name, "version": version, "released": released, "released_for": released_for,
              "reasons": reasons, "wikis": wikis, "trained_at": int(time.time()), "application_version": __version__}
    warehouse.write_text(f"{model_root(warehouse, name)}/LATEST.json", json.dumps(latest, indent=2, sort_keys=True))
    summary_curves = {f"{wiki}:{p}": c for wiki, curves in curves_by_wiki.items() for p, c in curves.items()}
    reason = "; ".join(f"{wiki}: {text}" for wiki, text in reasons.items())
    return TrainedModel(name, version, path, released, reason, summary_curves, training)


def tables_ok_name(name: str) -> bool:
    return bool(name) and all(ch.isalnum() or ch in "-_" for ch in name)
