"""CirrusSearch's keywords as Elasticsearch queries: `hasrecommendation:link`, `articletopic:a|b` and their
negations, counted, searched, and every tagged page listed (contracts.md §2)."""

from __future__ import annotations

from sinks.base import LINK, ORPHAN_LINK, Task
from sinks.topic_table import TOPIC_PREFIX


class QueryError(ValueError):
    pass


TASKS = (LINK.name, ORPHAN_LINK)


def has_recommendation(task: Task | str = LINK) -> dict:
    name = task if isinstance(task, str) else task.name
    return {"match": {"weighted_tags": {"query": f"recommendation.{name}/exists"}}}


HAS_RECOMMENDATION = has_recommendation(LINK)


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
            if value not in TASKS:
                raise QueryError(f"{token!r}: expected hasrecommendation:{' or hasrecommendation:'.join(TASKS)}")
            (must_not if negated else filters).append(has_recommendation(value))
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


def tagged_pages(client, index: str, task: Task = LINK) -> set[int]:
    """Every page carrying the task's tag (recommendation.link/exists, …)."""
    from elasticsearch import helpers

    hits = helpers.scan(client, index=index, query={"query": {"bool": {"filter": [has_recommendation(task)]}}},
                        _source=False, size=1000)
    return {int(hit["_id"]) for hit in hits}
