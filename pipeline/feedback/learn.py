"""Editors' decisions as training examples: an accepted link is a positive, a rejected one a negative, each
with the features it was served with and the weight `feedback.weight`; skipped links teach nothing. The
reviewed links are as many as editors made decisions (not as many as the wiki's articles), read by pyarrow."""

from __future__ import annotations

import hashlib

import numpy as np

from pipeline.feedback.served import reviewed_folder
from pipeline.model.features import FEATURES
from pipeline.warehouse import filesystem


def reviewed_examples(warehouse, config, database: str, task: str = "link") -> tuple[np.ndarray, dict] | None:
    """Rows (label, *FEATURES) of the decided links served into `database` that kept their features, in a fixed
    order, and what they are (counts, weight, checksum); None when there are none or feedback.weight is 0."""
    import pyarrow.parquet as pq

    folder = reviewed_folder(warehouse.root, task, config.wiki, database)
    if config.feedback.weight <= 0 or not warehouse.exists(folder) or not warehouse.list(folder):
        return None
    store, base = filesystem(folder)
    table = pq.read_table(base, filesystem=store, columns=["revision_id", "target_id", "wikitext_offset",
                                                           "gels_feedback", "features"]).to_pylist()
    rows = sorted((r["revision_id"], r["target_id"], r["wikitext_offset"], 1.0 if r["gels_feedback"] == "a" else 0.0,
                   *r["features"]) for r in table
                  if r["gels_feedback"] in ("a", "r") and r["features"] and len(r["features"]) == len(FEATURES))
    if not rows:
        return None
    examples = np.array([row[3:] for row in rows], dtype=np.float64)
    accepted = int(examples[:, 0].sum())
    return examples, {"examples": len(rows), "accepted": accepted, "rejected": len(rows) - accepted,
                      "weight": config.feedback.weight,
                      "checksum": hashlib.sha256(np.array(rows, dtype=np.float64).tobytes()).hexdigest()[:16]}
