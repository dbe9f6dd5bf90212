"""Topic targeting: keep at least `minimum` tasks per article topic. Topics below it get random articles
of theirs that have no recommendation yet (seeded, so a re-run picks the same), until the topic is filled
or its candidates run out; topics at or above the minimum are left alone."""

from __future__ import annotations

import random
import zlib

from sinks.topic_table import TOPIC_PREFIX


class IndexTopics:
    """Topics, task counts and candidates from the search index (articletopic weighted tags)."""

    def __init__(self, client, index: str, labels: list[str]):
        from sinks import query

        self.client, self.index, self.search = client, index, query
        self.labels = [label for label in labels if self._count(self._topic(label)) > 0]

    def _topic(self, label: str) -> dict:
        return {"terms": {"weighted_tags": [f"{TOPIC_PREFIX}/{label}"]}}

    def _count(self, clause: dict, tasks: bool | None = None) -> int:
        return self.search.count(self.client, self.index, self._query(clause, tasks))

    def _query(self, clause: dict, tasks: bool | None) -> dict:
        query: dict = {"filter": [{"term": {"namespace": 0}}, clause]}
        if tasks is True:
            query["filter"].append(self.search.HAS_RECOMMENDATION)
        elif tasks is False:
            query["must_not"] = [self.search.HAS_RECOMMENDATION]
        return {"bool": query}

    def refresh(self) -> None:
        self.client.indices.refresh(index=self.index)

    def tasks(self, label: str) -> int:
        return self._count(self._topic(label), tasks=True)

    def candidates(self, label: str) -> list[int]:
        from elasticsearch import helpers

        hits = helpers.scan(self.client, index=self.index, query={"query": self._query(self._topic(label), False)},
                            _source=False, size=1000)
        return sorted(int(hit["_id"]) for hit in hits)


class TableTopics:
    """Topics from a topic table (page → labels); task counts from the database rows."""

    def __init__(self, members: dict[str, set[int]], database):
        self.members = members
        self.labels = sorted(label for label, pages in members.items() if pages)
        self.database = database
        self.refresh()

    def refresh(self) -> None:
        from sinks.base import newest_rows

        self.with_task = {page for page, (_, task) in newest_rows(self.database.rows()).items() if task}

    def tasks(self, label: str) -> int:
        return len(self.members[label] & self.with_task)

    def candidates(self, label: str) -> list[int]:
        return sorted(self.members[label] - self.with_task)


def shuffled(pages: list[int], seed: int, label: str) -> list[int]:
    order = list(pages)
    random.Random(seed * 1_000_003 + zlib.crc32(label.encode())).shuffle(order)
    return order


def picks(topics, minimum: int, seed: int, evaluated: set[int], overfetch: float = 2.0) -> dict[str, list[int]]:
    """Per topic below the minimum, the next random candidates to evaluate (more than the deficit: not every
    article yields a task)."""
    chosen: dict[str, list[int]] = {}
    taken: set[int] = set(evaluated)
    for label in topics.labels:
        deficit = minimum - topics.tasks(label)
        if deficit <= 0:
            continue
        fresh = [page for page in shuffled(topics.candidates(label), seed, label) if page not in taken]
        batch = fresh[:max(1, int(deficit * overfetch))]
        if batch:
            chosen[label] = batch
            taken.update(batch)
    return chosen
