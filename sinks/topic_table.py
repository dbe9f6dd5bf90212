"""Topic tables (JSON or Parquet: title → topics) and the article-topic vocabulary of configs/topics.toml:
topic labels, search keywords, and the weighted tags `classification.prediction.articletopic/<label>|<w>`."""

from __future__ import annotations

import json
import tomllib
from importlib import resources

from sinks.base import SinkError

TOPIC_PREFIX = "classification.prediction.articletopic"


def topic_vocabulary() -> tuple[dict[str, str], dict[str, str], set[str]]:
    """(search keyword → label, topic-table name → label, names that get no tag) from configs/topics.toml."""
    data = tomllib.loads(resources.files("configs").joinpath("topics.toml").read_text(encoding="utf-8"))
    return dict(data["keywords"]), dict(data.get("labels", {})), set(data.get("ignore", {}).get("names", []))


def _label(name: str, labels: dict[str, str], known: set[str]) -> str:
    if name in labels:
        return labels[name]
    if name in known:
        return name
    return name.replace(" ", "_")


def load_topic_table(path: str) -> dict[str, dict[str, float]]:
    """A topic table → display title → {label: probability}. JSON: {title: name | [names] | {name: p}};
    Parquet: columns title, topic and optionally probability."""
    _, labels, ignore = topic_vocabulary()
    known = set(topic_vocabulary()[0].values())
    out: dict[str, dict[str, float]] = {}

    def add(title, name, probability=1.0):
        if not isinstance(name, str) or name in ignore:
            return
        if not 0 <= float(probability) <= 1:
            raise SinkError(f"{path}: {title!r}: topic probability {probability!r} is not within 0..1")
        out.setdefault(str(title).replace("_", " "), {})[_label(name, labels, known)] = float(probability)

    if path.endswith(".parquet") or not path.endswith(".json"):
        import pyarrow.parquet as pq
        try:
            table = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several kinds for unreadable files
            raise SinkError(f"{path}: not a JSON or Parquet topic table ({exc})") from None
        for number, row in enumerate(table):
            if "title" not in row or "topic" not in row:
                raise SinkError(f"{path}: row {number}: expected columns title, topic [, probability]")
            add(row["title"], row["topic"], row.get("probability") or 1.0)
        return out
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise SinkError(f"{path}: cannot read the topic table ({exc})") from None
    if not isinstance(data, dict):
        raise SinkError(f"{path}: expected an object of title → topic")
    for title, value in data.items():
        if isinstance(value, str):
            add(title, value)
        elif isinstance(value, list):
            for name in value:
                add(title, name)
        elif isinstance(value, dict):
            for name, probability in value.items():
                add(title, name, probability)
        else:
            raise SinkError(f"{path}: {title!r}: topic must be a name, a list or an object of name → probability")
    return out


def topic_tags(topics: dict[str, float]) -> list[str]:
    """Weighted tags of one page's topics (weight = probability × 1000, at least 1)."""
    return [f"{TOPIC_PREFIX}/{label}|{max(1, min(1000, round(p * 1000)))}" for label, p in sorted(topics.items())]
