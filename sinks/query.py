"""CirrusSearch's keywords as Elasticsearch queries: `hasrecommendation:link`, `articletopic:a|b` and their
negations, counted, searched, and every tagged page listed (contracts.md §2)."""

from __future__ import annotations

from sinks.search import EXISTS
from sinks.topic_table import TOPIC_PREFIX


class QueryError(ValueError):
    pass


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
