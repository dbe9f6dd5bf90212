"""Sinks against real servers: MariaDB (and the embedded SQLite) with the contract's semantics, a real
Elasticsearch-compatible server (noida-db) for tags, events, search queries and reconciliation."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pymysql
import pytest

from sinks import index as search_index
from sinks import query as queries
from sinks.base import CLEAR, SET, PageResult, SinkError, SinkUnusable, TagChange, publish
from sinks.connect import open_database
from sinks.mariadb import MariaDbDatabase, connection_options
from sinks.reconcile import compare
from sinks.search import EventTags, IndexTags, bulk_operations, client_for, replay_events
from sinks.topic_table import topic_vocabulary
from tests.conftest import FIXTURES, last_json, mariadb_admin, run_cli

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def task(links: int = 2, stamp: int = 1) -> bytes:
    data = {"links": [{"link_text": f"a{i}", "link_target": f"T{i}", "match_index": 0, "wikitext_offset": i * 10,
                       "score": 0.9, "context_before": "", "context_after": "", "link_index": i}
                      for i in range(links)],
            "meta": {"application_version": "t", "dataset_checksums": {"model": "0" * 64}, "format_version": 1,
                     "task_timestamp": stamp}}
    return json.dumps(data).encode()


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wiki.db'}"
    return request.getfixturevalue("mariadb_url")


def table_rows(url: str) -> dict[int, tuple[int, bytes | None]]:
    """revision → (page, gelr_data), read with a connection of the test's own."""
    sql = "SELECT gelr_revision, gelr_page, gelr_data FROM growthexperiments_link_recommendations"
    if url.startswith("sqlite"):
        rows = sqlite3.connect(url[len("sqlite:///"):]).execute(sql).fetchall()
    else:
        connection = pymysql.connect(**connection_options(url))
        with connection.cursor() as cursor:
            cursor.execute(sql)
            rows = cursor.fetchall()
        connection.close()
    return {int(r): (int(p), None if d is None else bytes(d)) for r, p, d in rows}


def execute(url: str, sql: str, params=()) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(url[len("sqlite:///"):]) as connection:
            connection.execute(sql.replace("%s", "?"), params)
    else:
        connection = pymysql.connect(**{**connection_options(url), "autocommit": True})
        connection.cursor().execute(sql, params)
        connection.close()


# --- the database semantics, on both databases ---------------------------------------------------------

def test_rows_replace_delete_null_and_idempotent_reruns(database_url):
    database = open_database(database_url, "testwiki")
    batch = [PageResult(1, 101, task(2)), PageResult(2, 201, None), PageResult(3, 301, task(3))]
    counts, changes = database.write(batch)
    assert (counts.rows_written, counts.null_rows_written, counts.unchanged) == (2, 1, 0)
    assert [(c.page_id, c.action, c.changed) for c in changes] == [(1, SET, True), (2, CLEAR, False), (3, SET, True)]
    before = table_rows(database_url)
    assert before[201] == (2, None) and json.loads(before[101][1])["links"][1]["link_target"] == "T1"
    # The same results generated later: nothing changes, not even the timestamp.
    again, changes = database.write([PageResult(1, 101, task(2, stamp=99)), PageResult(2, 201, None),
                                     PageResult(3, 301, task(3))])
    assert again.unchanged == 3 and again.changed == 0 and not any(c.changed for c in changes)
    assert table_rows(database_url) == before
    # A newer revision replaces the row of the older one; a page that lost its task loses its rows.
    counts, changes = database.write([PageResult(1, 105, task(4)), PageResult(3, 301, None, remove=True)])
    assert counts.rows_deleted == 2 and counts.rows_written == 1
    assert [(c.page_id, c.action) for c in changes] == [(1, SET), (3, CLEAR)]
    rows = table_rows(database_url)
    assert set(rows) == {105, 201} and rows[105][0] == 1
    # A page losing its task to a NULL row: the tag is cleared, and that is a change.
    counts, changes = database.write([PageResult(1, 105, None)])
    assert counts.null_rows_written == 1 and changes[0].action == CLEAR and changes[0].changed
    database.finish()


def test_submissions_are_read_whole_in_keyset_batches(database_url):
    database = open_database(database_url, "testwiki")
    # 12 rows, 4 per revision: a batch of 5 ends inside a revision, so the next must resume on the full key
    rows = [(revision, target, offset, 4, 1, None, 2, "ars"[(revision + target + offset) % 3])
            for revision in (102, 100, 101) for target in (8, 7) for offset in (31, 0)]
    for row in rows:
        execute(database_url, "INSERT INTO growthexperiments_link_submissions VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                row)
    batches = list(database.submission_batches(size=5))
    database.finish()
    assert [len(b) for b in batches] == [5, 5, 2]
    assert [tuple(r) for b in batches for r in b] == sorted(rows)


def test_newer_rows_stand_and_submitted_revisions_are_skipped(database_url):
    database = open_database(database_url, "testwiki")
    database.write([PageResult(1, 110, task())])
    execute(database_url, "INSERT INTO growthexperiments_link_submissions VALUES (%s, 7, 0, 3, %s, NULL, 1, 'a')",
            (201, 2))
    counts, changes = database.write([PageResult(1, 100, task(3)), PageResult(2, 201, task())])
    assert counts.skipped_newer_revision == 1 and counts.skipped_submission == 1 and changes == []
    assert set(table_rows(database_url)) == {110}
    for user in (1, 2):
        execute(database_url, "INSERT INTO growthexperiments_link_submissions VALUES (%s, 9, %s, 3, 1, NULL, %s, 'r')",
                (100 + user, user, user))
    execute(database_url, "INSERT INTO growthexperiments_link_submissions VALUES (%s, 8, 0, 3, 1, NULL, 1, 'r')",
            (103,))
    read = [row for batch in database.submission_batches() for row in batch]
    assert {row[0] for row in read} == {201, 101, 102, 103} and len(read) == 4  # the run's joins: test_feedback
    database.finish()


def test_a_batch_is_all_or_nothing(database_url):
    database = open_database(database_url, "testwiki")
    database.write([PageResult(1, 100, task())])
    with pytest.raises((sqlite3.Error, pymysql.err.Error, SinkError)):
        database.write([PageResult(1, 101, task(3)), PageResult(2, -5, None)])  # a revision id cannot be negative
    assert set(table_rows(database_url)) == {100}
    database.finish()


def test_mariadb_schema_is_exactly_the_contract(mariadb_url):
    MariaDbDatabase(mariadb_url, "testwiki").finish()
    connection = pymysql.connect(**connection_options(mariadb_url))
    with connection.cursor() as cursor:
        cursor.execute("SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT FROM "
                       "information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'growth%%' "
                       "ORDER BY TABLE_NAME, ORDINAL_POSITION")
        columns = [tuple(row) for row in cursor.fetchall()]
        cursor.execute("SELECT TABLE_NAME, INDEX_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX), NON_UNIQUE "
                       "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE "
                       "'growth%%' GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE ORDER BY TABLE_NAME, INDEX_NAME")
        indexes = [tuple(row) for row in cursor.fetchall()]
    connection.close()
    recommendations = "growthexperiments_link_recommendations"
    submissions = "growthexperiments_link_submissions"
    assert columns == [
        (recommendations, "gelr_revision", "int(10) unsigned", "NO", None),
        (recommendations, "gelr_page", "int(10) unsigned", "NO", None),
        (recommendations, "gelr_data", "mediumblob", "YES", "NULL"),
        (submissions, "gels_revision", "int(10) unsigned", "NO", None),
        (submissions, "gels_target", "int(10) unsigned", "NO", None),
        (submissions, "gels_anchor_offset", "int(10) unsigned", "NO", None),
        (submissions, "gels_anchor_length", "int(10) unsigned", "NO", None),
        (submissions, "gels_page", "int(10) unsigned", "NO", None),
        (submissions, "gels_edit_revision", "int(10) unsigned", "YES", "NULL"),
        (submissions, "gels_user", "int(10) unsigned", "NO", None),
        (submissions, "gels_feedback", "varchar(1)", "NO", None),
    ]
    assert sorted(indexes) == sorted([
        (recommendations, "PRIMARY", "gelr_revision", 0),
        (recommendations, "gelr_page", "gelr_page", 1),
        (submissions, "PRIMARY", "gels_revision,gels_target,gels_anchor_offset", 0),
        (submissions, "gels_page_feedback_target", "gels_page,gels_feedback,gels_target", 1),
    ])


def test_two_runs_for_one_wiki_cannot_overlap(mariadb_url):
    first = MariaDbDatabase(mariadb_url, "testwiki")
    with pytest.raises(SinkError, match="another linkrec run holds the lock"):
        MariaDbDatabase(mariadb_url, "testwiki")
    MariaDbDatabase(mariadb_url, "otherwiki").finish()  # another wiki is not blocked
    first.finish()
    MariaDbDatabase(mariadb_url, "testwiki").finish()  # released at the end of the run


def kill_connections(database_name: str) -> int:
    admin = mariadb_admin()
    with admin.cursor() as cursor:
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID != CONNECTION_ID()",
                       (database_name,))
        ids = [row[0] for row in cursor.fetchall()]
        for connection_id in ids:
            cursor.execute(f"KILL {int(connection_id)}")
    admin.close()
    return len(ids)


def test_a_connection_killed_in_the_middle_of_a_run_loses_and_duplicates_nothing(mariadb_url):
    name = mariadb_url.rsplit("/", 1)[1]
    results = [PageResult(page, page * 10, task(2 + page % 3) if page % 2 else None) for page in range(1, 61)]
    killed = []

    def results_with_a_kill():
        for number, result in enumerate(results):
            if number in (20, 45):
                killed.append(kill_connections(name))
            yield result

    database = MariaDbDatabase(mariadb_url, "testwiki", retries=5, backoff_seconds=0.05)
    published = publish(results_with_a_kill(), database, None, batch_size=10)
    database.finish()
    assert killed == [1, 1] and published.database.retries >= 2
    assert published.database.rows_written + published.database.null_rows_written == 60
    rows = table_rows(mariadb_url)
    assert rows == {r.revision_id: (r.page_id, r.gelr_data) for r in results}


# --- search tags --------------------------------------------------------------------------------------------

class Recorder(BaseHTTPRequestHandler):
    """A stand-in for a CirrusSearch cluster that records `_bulk` bodies and answers every update with noop."""

    bodies: list[bytes] = []

    def do_GET(self):  # noqa: N802 - the http.server API
        self._answer({"version": {"number": "8.15.0"}, "tagline": "You Know, for Search"})

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.bodies.append(body)
        updates = [json.loads(line) for line in body.splitlines()[::2]]
        self._answer({"errors": False, "items": [
            {"update": {"_id": u["update"]["_id"], "status": 200, "result": "noop"}} for u in updates]})

    do_PUT = do_POST  # noqa: N815 - the client sends _bulk as PUT

    def _answer(self, payload):
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_cirrus_request_bodies_equal_the_golden_bodies():
    server = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Recorder.bodies = []
    try:
        tags = IndexTags(f"http://127.0.0.1:{server.server_port}", "ltgwiki_content", "cirrus", bulk_size=500)
        counts = tags.apply([TagChange(18, "18 godu symts", 0, SET, True), TagChange(25, "X", 0, CLEAR, True)])
        tags.finish()
    finally:
        server.shutdown()
    golden = [json.loads(line) for line in (FIXTURES / "search" / "cirrus_bulk.ndjson").read_text().splitlines()]
    assert [json.loads(line) for line in Recorder.bodies[0].splitlines()] == golden
    assert counts.unchanged == 2 and counts.requests == 1


class Overloaded(Recorder):
    """Answers the first `_bulk` request's second item with 429, then everything with `updated`."""

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.bodies.append(body)
        updates = [json.loads(line)["update"]["_id"] for line in body.splitlines()[::2]]
        first = len(Recorder.bodies) == 1
        self._answer({"errors": first, "items": [
            {"update": {"_id": page, "status": 429 if first and i == 1 else 200, "result": "updated"}}
            for i, page in enumerate(updates)]})

    do_PUT = do_POST  # noqa: N815


def test_overloaded_updates_are_retried_alone():
    server = HTTPServer(("127.0.0.1", 0), Overloaded)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.bodies = []
    try:
        tags = IndexTags(f"http://127.0.0.1:{server.server_port}", "x_content", "cirrus", backoff_seconds=0.01)
        counts = tags.apply([TagChange(page, "", 0, SET, True) for page in (1, 2, 3)])
    finally:
        server.shutdown()
    assert counts.retries == 1 and counts.tags_set == 3 and counts.requests == 2
    assert [json.loads(line)["update"]["_id"] for line in Recorder.bodies[1].splitlines()[::2]] == ["2"]


def test_bulk_requests_are_bounded_and_never_carry_an_empty_tag_list():
    changes = [TagChange(page, "", 0, SET if page % 2 else CLEAR, True) for page in range(1, 8)]
    for mode in ("cirrus", "painless"):
        operations = bulk_operations(changes, "x_content", mode)
        assert len(operations) == 14 and all("upsert" not in op and "doc_as_upsert" not in op for op in operations)
    cirrus = bulk_operations(changes, "x_content", "cirrus")
    assert all(op["script"]["params"]["source"]["weighted_tags"] for op in cirrus[1::2])
    # what reaches the server: requests of at most bulk_size updates, every page once
    server = HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.bodies = []
    try:
        tags = IndexTags(f"http://127.0.0.1:{server.server_port}", "x_content", "cirrus", bulk_size=3)
        counts = tags.apply(changes)
        tags.finish()
    finally:
        server.shutdown()
    updates = [[json.loads(line)["update"]["_id"] for line in body.splitlines()[::2]] for body in Recorder.bodies]
    assert [len(batch) for batch in updates] == [3, 3, 1] and counts.requests == 3
    assert sorted(int(page) for batch in updates for page in batch) == list(range(1, 8))


@pytest.fixture
def small_index(search_server):
    """Four documents; page 4 carries tags of other producers, page 5 does not exist."""
    client = client_for(search_server.url)
    name = f"t{datetime.now().strftime('%H%M%S%f')}_content"
    search_index.create_index(client, name)
    search_index.index_documents(client, name, [
        (1, "One", 0, []), (2, "Two", 0, ["recommendation.link/exists"]), (3, "Three", 0, []),
        (4, "Four", 0, ["classification.prediction.articletopic/STEM.Physics|870", "recommendation.image/exists"])])
    yield client, name
    client.indices.delete(index=name)


def sources(client, name) -> dict[int, list[str]]:
    return {page: client.get(index=name, id=str(page))["_source"].get("weighted_tags") for page in (1, 2, 3, 4)}


def test_painless_updates_replace_only_their_group_and_rerun_as_noops(search_server, small_index):
    client, name = small_index
    tags = IndexTags(search_server.url, name, "painless", bulk_size=2)
    changes = [TagChange(1, "One", 0, SET, True), TagChange(2, "Two", 0, CLEAR, True),
               TagChange(3, "Three", 0, CLEAR, False), TagChange(4, "Four", 0, SET, True),
               TagChange(5, "Five", 0, SET, True)]
    first = tags.apply(changes)
    assert (first.tags_set, first.tags_cleared, first.unchanged, first.document_missing) == (2, 1, 1, 1)
    assert first.requests == 3  # bulk_size 2 → three requests for five updates
    assert sources(client, name) == {
        1: ["recommendation.link/exists"], 2: [], 3: [],
        4: ["classification.prediction.articletopic/STEM.Physics|870", "recommendation.image/exists",
            "recommendation.link/exists"]}
    assert not client.exists(index=name, id="5")  # a missing document is not created
    second = tags.apply(changes)
    assert (second.tags_set, second.tags_cleared, second.unchanged, second.document_missing) == (0, 0, 4, 1)
    tags.finish()
    client.indices.refresh(index=name)
    assert queries.tagged_pages(client, name) == {1, 4}


def test_two_tasks_setting_their_tags_in_turn_leave_each_other_alone_and_rerun_as_noops(search_server, small_index):
    from sinks.base import orphan_task

    client, name = small_index
    link = IndexTags(search_server.url, name, "painless")
    orphan = IndexTags(search_server.url, name, "painless", task=orphan_task())
    for mode_round in range(2):
        orphan_counts = orphan.apply([TagChange(1, "One", 0, SET, True), TagChange(2, "Two", 0, SET, True)])
        link_counts = link.apply([TagChange(1, "One", 0, SET, True), TagChange(2, "Two", 0, CLEAR, True)])
        if mode_round:  # the second night changes nothing: no tag moves in the list
            assert (orphan_counts.unchanged, link_counts.unchanged) == (2, 2)
    assert sources(client, name)[1] == ["recommendation.orphan_link/exists", "recommendation.link/exists"]
    assert sources(client, name)[2] == ["recommendation.orphan_link/exists"]
    client.indices.refresh(index=name)
    assert queries.tagged_pages(client, name) == {1}
    assert queries.tagged_pages(client, name, orphan_task()) == {1, 2}
    link.finish()
    orphan.finish()


def test_events_carry_the_required_fields_and_only_changes(tmp_path):
    events = EventTags(str(tmp_path / "events") + "/", "ltgwiki", NOW)
    counts = events.apply([TagChange(18, "18 godu symts", 0, SET, True), TagChange(25, "Aloizs Broks", 0, CLEAR, True),
                           TagChange(26, "Unchanged", 0, SET, False)])
    events.finish()
    assert (counts.tags_set, counts.tags_cleared, counts.unchanged) == (1, 1, 1)
    lines = Path(events.path).read_text().splitlines()
    assert Path(events.path).name == "ltgwiki-20260101T000000.ndjson" and len(lines) == 2
    for line in lines:
        event = json.loads(line)
        assert event["$schema"] == "/mediawiki/cirrussearch/page_weighted_tags_change/1.0.0"
        assert event["meta"]["stream"] == "mediawiki.cirrussearch.page_weighted_tags_change.v1"
        assert event["dt"] == "2026-01-01T00:00:00Z" and event["wiki_id"] == "ltgwiki"
        assert set(event["page"]) == {"page_id", "page_title", "namespace_id"}
        assert " " not in event["page"]["page_title"]
    first, second = (json.loads(line) for line in lines)
    assert first["page"]["page_title"] == "18_godu_symts"
    assert first["weighted_tags"] == {"set": {"recommendation.link": [{"tag": "exists"}]}}
    assert second["weighted_tags"] == {"clear": ["recommendation.link"]}
    assert replay_events([events.path]) == {18: True, 25: False}


def test_query_translation_follows_cirrussearch():
    keywords, _, _ = topic_vocabulary()
    query = queries.parse_query("hasrecommendation:link articletopic:biography|physics", keywords)
    assert query == {"bool": {
        "filter": [{"term": {"namespace": 0}},
                   {"match": {"weighted_tags": {"query": "recommendation.link/exists"}}}],
        "must": [{"terms": {"weighted_tags": ["classification.prediction.articletopic/Culture.Biography.Biography*",
                                              "classification.prediction.articletopic/STEM.Physics"]}}]}}
    negated = queries.parse_query("-hasrecommendation:link", keywords)
    assert negated["bool"]["must_not"] == [{"match": {"weighted_tags": {"query": "recommendation.link/exists"}}}]
    for bad in ("articletopic:nonsense", "hasrecommendation:image", "insource:foo"):
        with pytest.raises(queries.QueryError):
            queries.parse_query(bad, keywords)


def test_reconcile_compares_with_the_latest_revision():
    rows = [(1, 10, True), (2, 20, True), (2, 25, False), (3, 30, True), (4, 40, False)]
    differences, expected = compare(rows, tagged={1, 2, 4}, latest={1: 10, 2: 25, 3: 31})
    assert expected == {1}
    assert differences.tag_without_task == [2, 4] and differences.task_without_tag == []
    assert sorted(differences.stale_rows) == [(2, 20), (3, 30)]


# --- whole runs: the command line against real servers --------------------------------------------------------

def run_args(warehouse_dir, *extra):
    return ["--warehouse", str(warehouse_dir), "run", "--wiki", "ltgwiki", "--dump",
            str(FIXTURES / "dumps" / "ltgwiki-20170901-pages-articles.xml.bz2"), "--now", "2026-01-01T00:00:00Z",
            "--json", *extra]


def reconcile_summary(warehouse_dir, db, url, *extra):
    result = run_cli(["--warehouse", str(warehouse_dir), "reconcile", "--wiki", "ltgwiki", "--db", db,
                      "--search-url", url, "--json", *extra])
    return result.exit_code, last_json(result.stdout)


def search_ids(warehouse_dir, url, query, wiki="ltgwiki") -> set[int]:
    result = run_cli(["--warehouse", str(warehouse_dir), "search", "--wiki", wiki, "--search-url", url,
                      "--limit", "10000", "--json", "--", query])
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["total"] == len(summary["hits"])
    return {hit["page_id"] for hit in summary["hits"]}


def test_run_with_mariadb_and_search_is_consistent_and_reruns_change_nothing(
        ingested, warehouse_dir, ltg_model, mariadb_url, own_search_server):
    url = own_search_server.url
    init = run_cli(["--warehouse", str(warehouse_dir), "index", "init", "--wiki", "ltgwiki", "--search-url", url,
                    "--json"])
    assert init.exit_code == 0 and last_json(init.stdout)["documents"] == 903
    first = run_cli(run_args(warehouse_dir, "--db", mariadb_url, "--search-url", url))
    assert first.exit_code == 0, first.stderr
    summary = last_json(first.stdout)["recommend"]
    assert summary["changed"] and summary["search"]["tags_set"] == summary["with_links"] > 100
    assert summary["search"]["document_missing"] == summary["skipped"]["redirect"]  # redirects have no document
    code, differences = reconcile_summary(warehouse_dir, mariadb_url, url)
    assert code == 0 and differences["differences"] == 0
    rows = table_rows(mariadb_url)
    with_task = {page for page, data in rows.values() if data is not None}
    assert len(with_task) == summary["with_links"]
    assert search_ids(warehouse_dir, url, "hasrecommendation:link") == with_task
    untagged = search_ids(warehouse_dir, url, "-hasrecommendation:link")
    assert not (untagged & with_task) and len(untagged | with_task) == 903
    second = last_json(run_cli(run_args(warehouse_dir, "--db", mariadb_url, "--search-url", url)).stdout)["recommend"]
    assert not second["changed"]
    assert second["database"]["unchanged"] == len(rows) and second["search"]["tags_set"] == 0
    assert second["search"]["tags_cleared"] == 0 and table_rows(mariadb_url) == rows
    # Break the invariant by hand both ways; reconcile finds both and repairs them.
    some_task = min(with_task)
    execute(mariadb_url, "DELETE FROM growthexperiments_link_recommendations WHERE gelr_page = %s", (some_task,))
    client = client_for(url)
    IndexTags(url, "ltgwiki_content", "painless").apply([TagChange(min(untagged), "", 0, SET, True)])
    client.indices.refresh(index="ltgwiki_content")
    code, found = reconcile_summary(warehouse_dir, mariadb_url, url)
    assert code == 1 and (found["tag_without_task"], found["task_without_tag"]) == (2, 0)
    code, fixed = reconcile_summary(warehouse_dir, mariadb_url, url, "--fix")
    assert code == 0 and fixed["repaired"]["tags_cleared"] == 2
    client.indices.refresh(index="ltgwiki_content")
    assert reconcile_summary(warehouse_dir, mariadb_url, url)[1]["differences"] == 0


def test_run_with_sqlite_and_events_is_consistent_and_reruns_change_nothing(
        ingested, warehouse_dir, ltg_model, tmp_path):
    db = f"sqlite:///{tmp_path / 'wiki.db'}"
    events = tmp_path / "events"
    first = run_cli(run_args(warehouse_dir, "--db", db, "--events", str(events) + "/"))
    assert first.exit_code == 0, first.stderr
    summary = last_json(first.stdout)["recommend"]
    files = sorted(str(p) for p in events.iterdir())
    rows = table_rows(db)
    with_task = {page for page, data in rows.values() if data is not None}
    assert {page for page, tagged in replay_events(files).items() if tagged} == with_task
    assert summary["search"]["tags_set"] == len(with_task)
    size = sum(Path(f).stat().st_size for f in files)
    second = last_json(run_cli(run_args(warehouse_dir, "--db", db, "--events", str(events) + "/")).stdout)
    assert not second["recommend"]["changed"] and second["recommend"]["search"]["tags_set"] == 0
    assert sum(p.stat().st_size for p in events.iterdir()) == size and table_rows(db) == rows


def test_a_search_server_stopped_in_the_middle_of_a_run_converges_on_rerun(
        spark, ingested, warehouse_dir, ltg_model, tmp_path, own_search_server):
    from pipeline.warehouse import Warehouse, current_snapshot
    from sinks.results import page_results

    url = own_search_server.url
    assert run_cli(["--warehouse", str(warehouse_dir), "index", "init", "--wiki", "ltgwiki", "--search-url", url]
                   ).exit_code == 0
    dry = last_json(run_cli(["--warehouse", str(warehouse_dir), "recommend", "--wiki", "ltgwiki", "--dry-run",
                             "--now", "2026-01-01T00:00:00Z", "--json"]).stdout)
    warehouse = Warehouse(spark, str(warehouse_dir))
    results = list(page_results(spark, warehouse, "ltgwiki", current_snapshot(warehouse, "ltgwiki"), dry["output"]))
    db = f"sqlite:///{tmp_path / 'wiki.db'}"

    def results_with_an_outage():
        for number, result in enumerate(results):
            if number == 400:
                own_search_server.stop()
            yield result

    database = open_database(db, "ltgwiki")
    tags = IndexTags(url, "ltgwiki_content", "painless", bulk_size=100, retries=2, backoff_seconds=0.05)
    with pytest.raises(SinkError, match="a re-run sets the tags"):
        publish(results_with_an_outage(), database, tags, batch_size=100)
    database.finish()
    written = table_rows(db)
    assert 0 < len(written) < dry["eligible"]  # the rows of the batches before the outage are committed
    own_search_server.start()
    database = open_database(db, "ltgwiki")
    tags = IndexTags(url, "ltgwiki_content", "painless", bulk_size=100)
    again = publish(results, database, tags, batch_size=100)
    database.finish()
    tags.finish()
    assert again.database.unchanged == len(written)
    client = client_for(url)
    client.indices.refresh(index="ltgwiki_content")
    code, differences = reconcile_summary(warehouse_dir, db, url)
    assert code == 0 and differences["differences"] == 0
    assert client.count(index="ltgwiki_content")["count"] == 903  # nothing duplicated or created
    assert len(table_rows(db)) == dry["eligible"]


def test_topic_search_on_the_real_enwiki_topic_table(ingested, warehouse_dir, own_search_server):
    url = own_search_server.url
    table = FIXTURES / "topics" / "enwiki-vital-articles-topics.json"
    init = run_cli(["--warehouse", str(warehouse_dir), "index", "init", "--wiki", "enwiki", "--search-url", url,
                    "--topics", str(table), "--json"])
    assert init.exit_code == 0, init.stderr
    topics = json.loads(table.read_text())
    result = run_cli(["--warehouse", str(warehouse_dir), "search", "articletopic:biography|physical-sciences",
                      "--wiki", "enwiki", "--search-url", url, "--json"])
    hits = {hit["title"] for hit in last_json(result.stdout)["hits"]}
    articles = {title for title in topics if topics[title] in ("People", "Physical sciences")}
    assert hits and hits <= articles
    indexed = search_ids(warehouse_dir, url, "-hasrecommendation:link", "enwiki")
    assert last_json(init.stdout)["documents"] == len(indexed)
    assert last_json(init.stdout)["with_topics"] >= len(hits)


def test_executor_writes_with_the_search_server_down_stop_with_exit_3_and_converge(
        ingested, warehouse_dir, ltg_model, mariadb_url, own_search_server, monkeypatch):
    """MariaDB and the index are written by the executors, a task per partition: with the search
    server down every task stops after its first batch's rows (row first, then tag), the run exits 3
    with one line, and a re-run with the server up converges (reconcile: no difference)."""
    url = own_search_server.url
    assert run_cli(["--warehouse", str(warehouse_dir), "index", "init", "--wiki", "ltgwiki", "--search-url", url]
                   ).exit_code == 0
    args = ["--warehouse", str(warehouse_dir), "--set", "sinks.retries=1", "--set", "sinks.backoff_seconds=0.01",
            "--set", "sinks.batch_size=50", "recommend", "--wiki", "ltgwiki", "--now", "2026-01-01T00:00:00Z",
            "--db", mariadb_url, "--search-url", url, "--json"]
    # the server answers the check before the compute, then goes away before the writes
    import sinks.results
    check = sinks.results.check_mass_delete

    def then_stop(*args, **kwargs):
        figures = check(*args, **kwargs)
        own_search_server.stop()
        return figures

    monkeypatch.setattr(sinks.results, "check_mass_delete", then_stop)
    stopped = run_cli(args)
    monkeypatch.undo()
    assert stopped.exit_code == 3, stopped.stderr
    message = [line for line in stopped.stderr.splitlines() if "write tasks stopped" in line]
    assert len(message) == 1 and "a re-run converges" in message[0]
    partial = table_rows(mariadb_url)
    assert 0 < len(partial) < 896  # each task committed its first batch's rows before the tags failed
    # the summary is printed on exit 3 too, with what was written before the sink stopped
    summary = last_json(stopped.stdout)
    assert summary["exit_code"] == 3 and "write tasks stopped" in summary["error"]
    assert summary["database"]["rows_written"] + summary["database"]["null_rows_written"] == len(partial)
    assert summary["pages_read"] == 2004  # every page of the dump, all namespaces
    own_search_server.start()
    again = run_cli(args)
    assert again.exit_code == 0, again.stderr
    summary = last_json(again.stdout)
    assert summary["database"]["unchanged"] == len(partial)
    assert summary["batches"] >= 2  # more than one task wrote
    rows = table_rows(mariadb_url)
    assert len(rows) == 896
    client_for(url).indices.refresh(index="ltgwiki_content")
    code, differences = reconcile_summary(warehouse_dir, mariadb_url, url)
    assert code == 0 and differences["differences"] == 0


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_a_run_that_would_clear_most_tasks_is_refused(request, ingested, warehouse_dir, ltg_model, tmp_path, backend):
    db = f"sqlite:///{tmp_path / 'wiki.db'}" if backend == "sqlite" else request.getfixturevalue("mariadb_url")
    base = ["--warehouse", str(warehouse_dir), "recommend", "--wiki", "ltgwiki", "--db", db, "--json"]
    first = run_cli(base + ["--now", "2026-01-01T00:00:00Z"])
    assert first.exit_code == 0, first.stderr
    rows = table_rows(db)
    tasks = len({page for page, data in rows.values() if data is not None})
    assert tasks > 100
    # a reference time before the input: every article would count as edited recently
    early = run_cli(base + ["--now", "2017-01-01T00:00:00Z"])
    assert early.exit_code == 1 and "is before the newest revision of ltgwiki snapshot 20170901" in early.stderr
    assert table_rows(db) == rows
    # a configuration that makes every article ineligible: refused, nothing written, the reason named
    strict = ["--set", "recommend.minimum_word_count=1000000"]
    refused = run_cli(base[:2] + strict + base[2:] + ["--now", "2026-01-01T00:00:00Z"])
    assert refused.exit_code == 1, refused.stderr
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("linkrec: error:")]
    assert f"would delete or clear {tasks} of the {tasks} existing tasks" in line
    assert f"why: too_few_words: {tasks})" in line and "--allow-mass-delete" in line
    assert table_rows(db) == rows
    allowed = run_cli(base[:2] + strict + base[2:] + ["--now", "2026-01-01T00:00:00Z", "--allow-mass-delete"])
    assert allowed.exit_code == 0, allowed.stderr
    assert not any(data is not None for _, data in table_rows(db).values())


# --- statement timeouts and the wiki's lock (MariaDB, no Spark) ----------------------------------------------

def test_a_slow_statement_is_reported_as_slow_not_as_a_lock_and_not_retried(mariadb_url):
    database = MariaDbDatabase(mariadb_url, "testwiki", retries=3, backoff_seconds=0.01, timeout=1)
    started = time.time()
    with pytest.raises(SinkError) as stopped:
        database.transaction(lambda cursor: cursor.execute("SELECT SLEEP(20)"))
    elapsed = time.time() - started
    database.finish()
    message = str(stopped.value)
    assert "a statement ran longer than 1 s" in message and "sinks.timeout_seconds" in message, message
    assert "locked" not in message
    assert not isinstance(stopped.value, SinkUnusable)  # exit 3: what was written stands
    assert database.retried == 0 and elapsed < 5  # the same statement would be slow again


def test_a_table_locked_elsewhere_is_still_reported_as_a_lock(mariadb_url):
    database = MariaDbDatabase(mariadb_url, "testwiki", retries=1, backoff_seconds=0.01, timeout=1)
    holder = pymysql.connect(**{**connection_options(mariadb_url), "autocommit": True})
    try:
        holder.cursor().execute("LOCK TABLES growthexperiments_link_recommendations WRITE, "
                                "growthexperiments_link_submissions WRITE")
        with pytest.raises(SinkError, match="stayed locked by another session") as stopped:
            database.write([PageResult(1, 101, task())])
    finally:
        holder.close()
    database.finish()
    assert "ran longer" not in str(stopped.value)


def lock_owner(name: str) -> int | None:
    admin = mariadb_admin()
    with admin.cursor() as cursor:
        cursor.execute("SELECT IS_USED_LOCK(%s)", (name,))
        (owner,) = cursor.fetchone()
    admin.close()
    return owner


def connection_id(database: MariaDbDatabase) -> int:
    def work(cursor):
        cursor.execute("SELECT CONNECTION_ID()")
        return cursor.fetchone()[0]
    return database.transaction(work)


def idle_out(database: MariaDbDatabase) -> int:
    """Let the server close the run's idle connection (wait_timeout), as during a long Spark compute."""
    old = connection_id(database)
    database.transaction(lambda cursor: cursor.execute("SET SESSION wait_timeout = 2"))
    deadline = time.time() + 20
    while lock_owner(database.lock_name) == old and time.time() < deadline:
        time.sleep(0.5)
    assert lock_owner(database.lock_name) is None  # the server closed it and freed the lock
    return old


def write_round(database: MariaDbDatabase, url: str, results: list[PageResult], monkeypatch):
    """write_output's executor path with the Spark part replaced: each "task" opens its own connection
    (lock=False, as on an executor) and writes `results`."""
    from pipeline.config import SinksConfig
    from sinks import results as output

    def executors(spark, warehouse, wiki, snapshot, path, spec):
        writer = spec.open_database()
        try:
            return publish(results, writer, None, spec.batch_size)
        finally:
            writer.finish()

    monkeypatch.setattr(output, "publish_from_executors", executors)
    config = SimpleNamespace(wiki="testwiki", sinks=SinksConfig(retries=1, backoff_seconds=0.01))
    return output.write_output(None, None, config, SimpleNamespace(output="-", snapshot="-"), database, None, url,
                               None, None, NOW, False, None, allow_mass_delete=True)


def test_a_lock_lost_while_idle_is_taken_again_before_the_executors_write(mariadb_url, monkeypatch):
    database = MariaDbDatabase(mariadb_url, "testwiki")
    old = idle_out(database)
    published = write_round(database, mariadb_url, [PageResult(1, 101, task())], monkeypatch)
    assert published.database.rows_written == 1 and set(table_rows(mariadb_url)) == {101}
    assert lock_owner(database.lock_name) == connection_id(database) != old  # held again, by the driver
    with pytest.raises(SinkError, match="another linkrec run holds the lock"):
        MariaDbDatabase(mariadb_url, "testwiki")
    database.finish()
    assert lock_owner(database.lock_name) is None


def test_a_lock_another_run_took_while_idle_stops_the_write_round(mariadb_url, monkeypatch):
    database = MariaDbDatabase(mariadb_url, "testwiki", retries=1, backoff_seconds=0.01)
    idle_out(database)
    other = MariaDbDatabase(mariadb_url, "testwiki")  # another run starts meanwhile and takes the wiki
    for attempt in (lambda: write_round(database, mariadb_url, [PageResult(1, 101, task())], monkeypatch),
                    lambda: database.write([PageResult(2, 201, task())])):  # the driver's own writes too
        with pytest.raises(SinkError, match="another linkrec run holds the wiki") as stopped:
            attempt()
        assert not isinstance(stopped.value, SinkUnusable)  # exit 3
        assert table_rows(mariadb_url) == {}  # nothing written
    assert lock_owner(other.lock_name) == connection_id(other)
    database.finish()
    other.finish()


def test_the_lock_holding_connection_is_kept_alive_while_idle(mariadb_url):
    database = MariaDbDatabase(mariadb_url, "testwiki", keepalive=0.5)
    holder = connection_id(database)
    database.transaction(lambda cursor: cursor.execute("SET SESSION wait_timeout = 2"))
    time.sleep(4)  # idle, as during the compute: twice the server's patience
    assert lock_owner(database.lock_name) == holder
    database.write([PageResult(1, 101, task())])
    assert connection_id(database) == holder and database.retried == 0
    database.finish()
    assert lock_owner(database.lock_name) is None
