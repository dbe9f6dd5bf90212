"""The search side of contracts.md §2: a development `<wiki>_content` index, topic tags from a topic table,
and the translation of `hasrecommendation:link` / `articletopic:` into the queries CirrusSearch runs."""

from __future__ import annotations

import json
import tomllib
from importlib import resources

from sinks.base import SinkError
from sinks.search import EXISTS

TOPIC_PREFIX = "classification.prediction.articletopic"
# `match` on the tag and `terms` on the topic label both hit: the weight after "|" is dropped when indexing.
SETTINGS = {"analysis": {
    "char_filter": {"drop_weight": {"type": "pattern_replace", "pattern": "\\|\\d+$", "replacement": ""}},
    "analyzer": {"weighted_tags": {"type": "custom", "tokenizer": "keyword", "char_filter": ["drop_weight"]}}}}
MAPPINGS = {"properties": {
    "title": {"type": "keyword"},
    "namespace": {"type": "integer"},
    "weighted_tags": {"type": "text", "analyzer": "weighted_tags", "search_analyzer": "keyword"}}}


class QueryError(ValueError):
    pass


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


def create_index(client, index: str, recreate: bool = False) -> None:
    if client.indices.exists(index=index):
        if not recreate:
            raise SinkError(f"index {index} exists already (--recreate drops it and every tag in it)")
        client.indices.delete(index=index)
    client.indices.create(index=index, settings=SETTINGS, mappings=MAPPINGS)


def index_documents(client, index: str, documents, bulk_size: int = 1000) -> int:
    """documents: (page id, title, namespace, weighted tags). Returns how many were indexed."""
    from elasticsearch import helpers

    actions = ({"_op_type": "index", "_index": index, "_id": str(page_id),
                "_source": {"title": title, "namespace": namespace, "weighted_tags": tags}}
               for page_id, title, namespace, tags in documents)
    indexed, errors = helpers.bulk(client, actions, chunk_size=bulk_size, raise_on_error=False, refresh=True)
    if errors:
        raise SinkError(f"index {index}: {len(errors)} documents were refused, first: {errors[0]}")
    return indexed


HAS_RECOMMENDATION = {"match": {"weighted_tags": {"query": EXISTS}}}


def parse_query(text: str, keywords: dict[str, str]) -> dict:
    """`hasrecommendation:link`, `-hasrecommendation:link`, `articletopic:a|b` (OR), `-articletopic:…`,
    combined by AND, in namespace 0 → an Elasticsearch bool query as CirrusSearch builds it."""
    filters: list[dict] = [{"term": {"namespace": 0}}]
    must: list[dict] = []
    must_not: list[dict] = []
    for token in text.split():
        negated = token.startswith("-")
        keyword, _, value = token.lstrip("-").partition(":")
        if keyword == "hasrecommendation":
            if value != "link":
                raise QueryError(f"{token!r}: only hasrecommendation:link is supported")
            (must_not if negated else filters).append(HAS_RECOMMENDATION)
        elif keyword == "articletopic":
            names = [v for v in value.lower().split("|") if v]
            unknown = [v for v in names if v not in keywords]
            if not names or unknown:
                raise QueryError(f"{token!r}: unknown topic {', '.join(unknown) or '(none)'}; known: "
                                 f"{', '.join(sorted(keywords))}")
            clause = {"terms": {"weighted_tags": [f"{TOPIC_PREFIX}/{keywords[v]}" for v in names]}}
            (must_not if negated else must).append(clause)
        else:
            raise QueryError(f"{token!r}: expected hasrecommendation:link or articletopic:<topic>")
    query: dict = {"filter": filters}
    if must:
        query["must"] = must
    if must_not:
        query["must_not"] = must_not
    return {"bool": query}


def search(client, index: str, query: dict, size: int, seed: int | None = None) -> list[tuple[int, str]]:
    """Hits as (page id, title), best first; with `seed`, a reproducible random order instead."""
    if seed is not None:
        query = {"function_score": {"query": query, "random_score": {"seed": seed, "field": "_seq_no"},
                                    "boost_mode": "replace"}}
    response = client.search(index=index, query=query, size=size, source=["title"])
    return [(int(hit["_id"]), hit["_source"].get("title", "")) for hit in response["hits"]["hits"]]


def count(client, index: str, query: dict) -> int:
    return int(client.count(index=index, query=query)["count"])


def tagged_pages(client, index: str) -> set[int]:
    """Every page carrying recommendation.link/exists."""
    from elasticsearch import helpers

    hits = helpers.scan(client, index=index, query={"query": {"bool": {"filter": [HAS_RECOMMENDATION]}}},
                        _source=False, size=1000)
    return {int(hit["_id"]) for hit in hits}
