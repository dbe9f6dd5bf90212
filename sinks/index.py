"""A development `<wiki>_content` index: the mapping that makes weighted tags searchable as CirrusSearch's
are, its creation, and one document per article."""

from __future__ import annotations

from sinks.base import SinkError

# `match` on the tag and `terms` on the topic label both hit: the weight after "|" is dropped when indexing.
SETTINGS = {"analysis": {
    "char_filter": {"drop_weight": {"type": "pattern_replace", "pattern": "\\|\\d+$", "replacement": ""}},
    "analyzer": {"weighted_tags": {"type": "custom", "tokenizer": "keyword", "char_filter": ["drop_weight"]}}}}
MAPPINGS = {"properties": {
    "title": {"type": "keyword"},
    "namespace": {"type": "integer"},
    "weighted_tags": {"type": "text", "analyzer": "weighted_tags", "search_analyzer": "keyword"}}}


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
