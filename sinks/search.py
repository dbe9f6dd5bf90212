"""A task's weighted tag (`recommendation.link/exists`, `recommendation.orphan_link/exists`) in the search
index, three ways (contracts.md §2, §4):
`cirrus` (super_detect_noop + multilist), `painless` (vanilla Elasticsearch / OpenSearch), and `events`
(page_weighted_tags_change events as NDJSON)."""

from __future__ import annotations

import json
import logging
import os
import uuid
from contextlib import contextmanager
from datetime import datetime

from sinks.base import LINK, SET, SinkError, SinkUnusable, TagChange, TagCounts, Tags, Task, backoff, parse_url, redact

log = logging.getLogger(__name__)

PREFIX = LINK.prefix
EXISTS = LINK.tag
EVENT_SCHEMA = "/mediawiki/cirrussearch/page_weighted_tags_change/1.0.0"
EVENT_STREAM = "mediawiki.cirrussearch.page_weighted_tags_change.v1"
MODES = ("cirrus", "painless")
# Keep every tag of other producers; replace only the task's group (recommendation.link/, …), and say "noop" when
# nothing changes so that a re-run leaves the index untouched. A tag already set keeps its place, so that two
# tasks setting their tags in turn do not reorder the list on every run. (`==` compares lists by value.)
PAINLESS = """
def current = ctx._source.weighted_tags;
List tags = new ArrayList();
if (current instanceof List) { tags.addAll(current); } else if (current != null) { tags.add(current); }
List kept = new ArrayList();
boolean had = false;
for (t in tags) {
  if (!t.startsWith(params.prefix)) { kept.add(t); }
  else if (params.tag != null && t == params.tag && !had) { kept.add(t); had = true; }
}
if (params.tag != null && !had) { kept.add(params.tag); }
if (kept == tags) { ctx.op = 'noop'; } else { ctx._source.weighted_tags = kept; }
""".strip()


def update_script(mode: str, action: str, task: Task = LINK) -> dict:
    """The script of one partial update: set the task's tag or clear its group."""
    if mode == "cirrus":
        # never an empty list: multilist would keep the group
        value = task.tag if action == SET else f"{task.prefix}/__DELETE_GROUPING__"
        return {"source": "super_detect_noop", "lang": "super_detect_noop",
                "params": {"source": {"weighted_tags": [value]}, "handlers": {"weighted_tags": "multilist"}}}
    return {"source": PAINLESS, "lang": "painless",
            "params": {"prefix": f"{task.prefix}/", "tag": task.tag if action == SET else None}}


def bulk_operations(changes: list[TagChange], index: str, mode: str, task: Task = LINK) -> list[dict]:
    """The `_bulk` body: a partial update per page, no upsert (a missing document stays missing)."""
    operations: list[dict] = []
    for change in changes:
        operations.append({"update": {"_index": index, "_id": str(change.page_id)}})
        operations.append({"script": update_script(mode, change.action, task)})
    return operations


def client_for(url: str, timeout: float = 30.0):
    """An Elasticsearch client; user and password may sit in the URL or in LINKREC_SEARCH_USER / _PASSWORD."""
    from elasticsearch import Elasticsearch

    parts = parse_url(url)
    if parts.scheme not in ("http", "https") or not parts.host:
        raise SinkUnusable(f"search URL {redact(url)!r}: expected http(s)://host:port")
    user = parts.user or os.environ.get("LINKREC_SEARCH_USER")
    password = parts.password or os.environ.get("LINKREC_SEARCH_PASSWORD")
    host = f"{parts.scheme}://{parts.host}{f':{parts.port}' if parts.port else ''}{parts.path}"
    auth = {"basic_auth": (user, password or "")} if user else {}
    # Our own retries decide what is retried and count it; the client's would hide failures from the summary.
    return Elasticsearch(host, request_timeout=timeout, max_retries=0, retry_on_timeout=False, **auth)


def _retryable(status: int) -> bool:
    """Overloaded or briefly away (429, 500, 502, 503, 504); 501 and the like will not change on a retry."""
    return status in (429, 500, 502, 503, 504)


@contextmanager
def search_errors(url: str, index: str):
    """Failures of a search request as one-line SinkUnusable errors (a re-run would fail the same way)."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError, NotFoundError, UnsupportedProductError

    try:
        yield
    except NotFoundError:
        raise SinkUnusable(f"{redact(url)}: the index {index} does not exist (check sinks.search_index; "
                           "`linkrec index init` creates a development index)") from None
    except UnsupportedProductError:
        raise SinkUnusable(f"{redact(url)}: not an Elasticsearch-compatible server") from None
    except ApiError as exc:
        raise SinkUnusable(f"{redact(url)}: the server answered HTTP {exc.meta.status} on {index}; is it an "
                           "Elasticsearch-compatible server?") from None
    except TransportError as exc:
        raise SinkUnusable(f"{redact(url)}: the search server does not answer ({type(exc).__name__})") from None


def check_index(client, url: str, index: str) -> None:
    """Before any expensive work: the server answers as a search server and holds `index`."""
    with search_errors(url, index):
        client.info()
        client.count(index=index)  # a missing index answers 404: search_errors says so in its one message


class IndexTags(Tags):
    """Partial updates in bounded `_bulk` requests; 429 / 5xx and lost connections are retried with
    backoff, "document missing" is counted and skipped, anything else stops the run."""

    def __init__(self, url: str, index: str, mode: str, bulk_size: int = 500, retries: int = 5,
                 backoff_seconds: float = 0.5, client=None, timeout: float = 60.0, task: Task = LINK):
        if mode not in MODES:
            raise SinkError(f"search mode {mode!r}: expected one of {', '.join(MODES)}")
        self.url = url
        self.index = index
        self.mode = mode
        self.task = task
        self.bulk_size = bulk_size
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.client = client or client_for(url, timeout)

    def apply(self, changes: list[TagChange], force: bool = False) -> TagCounts:
        counts = TagCounts()
        for at in range(0, len(changes), self.bulk_size):
            self._send(changes[at:at + self.bulk_size], counts)
        return counts

    def _bulk(self, pending: list[TagChange], counts: TagCounts) -> list[dict] | None:
        """One `_bulk` request; None when the whole request failed in a way worth retrying."""
        from elasticsearch import ApiError, TransportError

        counts.requests += 1
        try:
            response = self.client.bulk(operations=bulk_operations(pending, self.index, self.mode, self.task))
        except ApiError as exc:
            if _retryable(exc.meta.status):
                return None
            raise SinkError(f"{redact(self.url)}: bulk update of {self.index} refused: {exc.meta.status} "
                            f"{exc.message}") from None
        except TransportError as exc:  # connection refused or reset, timeout
            log.warning("search server unreachable: %s", exc)
            return None
        return response["items"]

    def _send(self, changes: list[TagChange], counts: TagCounts) -> None:
        pending = list(changes)
        for attempt in range(self.retries + 1):
            items = self._bulk(pending, counts)
            again: list[TagChange] = []
            if items is None:
                again = pending
            else:
                for change, item in zip(pending, items, strict=True):
                    outcome = item["update"]
                    status = outcome.get("status", 200)
                    if status < 300:
                        if outcome.get("result") == "noop":
                            counts.unchanged += 1
                        elif change.action == SET:
                            counts.tags_set += 1
                        else:
                            counts.tags_cleared += 1
                    elif status == 404:
                        counts.document_missing += 1  # not indexed: never create a document
                    elif _retryable(status):
                        again.append(change)
                    else:
                        error = outcome.get("error", {})
                        raise SinkError(f"{redact(self.url)}: page {change.page_id} in {self.index}: "
                                        f"{status} {error.get('type', '')}: {error.get('reason', '')}")
            if not again:
                return
            if attempt == self.retries:
                raise SinkError(f"{redact(self.url)}: {len(again)} tag updates of {self.index} failed after "
                                f"{self.retries + 1} attempts (server unreachable or overloaded); the database rows "
                                "are written, a re-run sets the tags")
            counts.retries += 1
            backoff(attempt, self.backoff_seconds)
            pending = again

    def finish(self) -> None:
        self.client.close()


def tag_event(wiki: str, change: TagChange, now: datetime, task: Task = LINK) -> dict:
    """One page_weighted_tags_change event; the id is derived from its content so re-runs are reproducible."""
    prefix = task.prefix
    weighted_tags = {"set": {prefix: [{"tag": "exists"}]}} if change.action == SET else {"clear": [prefix]}
    dt = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "$schema": EVENT_SCHEMA,
        "dt": dt,
        "meta": {"stream": EVENT_STREAM, "dt": dt,
                 "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{wiki}/{change.page_id}/{change.action}/{dt}"
                                    + ("" if task == LINK else f"/{task.name}")))},
        "wiki_id": wiki,
        "page": {"page_id": change.page_id, "page_title": change.title.replace(" ", "_"),
                 "namespace_id": change.namespace},
        "weighted_tags": weighted_tags,
    }


class EventTags(Tags):
    """Events for the pages whose row changed (all pages with `force`), appended to one NDJSON file per run."""

    def __init__(self, path: str, wiki: str, now: datetime, task: Task = LINK):
        if os.path.isdir(path) or path.endswith(os.sep):
            os.makedirs(path, exist_ok=True)
            name = wiki if task == LINK else f"{wiki}-{task.name}"
            path = os.path.join(path, f"{name}-{now.strftime('%Y%m%dT%H%M%S')}.ndjson")
        self.task = task
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.wiki = wiki
        self.now = now
        self.handle = open(path, "a", encoding="utf-8")

    def apply(self, changes: list[TagChange], force: bool = False) -> TagCounts:
        counts = TagCounts()
        for change in changes:
            if not (change.changed or force):
                counts.unchanged += 1
                continue
            self.handle.write(json.dumps(tag_event(self.wiki, change, self.now, self.task), ensure_ascii=False,
                                         sort_keys=True) + "\n")
            if change.action == SET:
                counts.tags_set += 1
            else:
                counts.tags_cleared += 1
        self.handle.flush()
        os.fsync(self.handle.fileno())  # the batch's rows are committed: its events must not be lost
        return counts

    def finish(self) -> None:
        self.handle.close()


def replay_events(paths: list[str], task: Task = LINK) -> dict[int, bool]:
    """page → tagged with the task's tag, after applying the events of these files in order."""
    prefix = task.prefix
    tagged: dict[int, bool] = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    event = json.loads(line)
                    page = int(event["page"]["page_id"])
                    change = event["weighted_tags"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise SinkError(f"{path}:{number}: not a page_weighted_tags_change event ({exc})") from None
                if prefix in change.get("clear", []):
                    tagged[page] = False
                if prefix in change.get("set", {}):
                    tagged[page] = True
    return tagged
