"""Targeting (page-id cursor, topics), the nightly job and the run report, on real dumps and servers."""

from __future__ import annotations

import html
import json
import shutil
import subprocess

import pytest

from pipeline.progress import Progress
from sinks.search import client_for
from sinks.topic_table import topic_vocabulary
from targeting import cursor
from targeting.topics import IndexTopics, picks
from tests.conftest import DUMPS, FIXTURES, last_json, run_cli


def article_ids(warehouse_dir, wiki="ltgwiki") -> list[int]:
    import pyarrow.parquet as pq

    pages = pq.read_table(str(warehouse_dir / "pages" / f"wiki={wiki}")).to_pandas()
    return sorted(int(p) for p in pages[(pages.namespace == 0) & pages.redirect_target.isna()].page_id)


def iterate(warehouse_dir, db, *extra):
    result = run_cli(["--warehouse", str(warehouse_dir), "recommend", "--wiki", "ltgwiki", "--targeting", "iterate",
                      "--limit", "400", "--db", db, "--now", "2026-01-01T00:00:00Z", "--json", *extra])
    assert result.exit_code == 0, result.stderr
    return last_json(result.stdout)


def test_three_iterate_runs_cover_every_article_once_in_order_then_wrap(ingested, warehouse_dir, ltg_model, tmp_path):
    import sqlite3

    db = f"sqlite:///{tmp_path / 'wiki.db'}"
    articles = article_ids(warehouse_dir)
    runs = [iterate(warehouse_dir, db)["targeting"] for _ in range(3)]
    assert [r["pages"] for r in runs] == [400, 400, len(articles) - 800]
    assert runs[0]["first"] == articles[0] and runs[2]["last"] == articles[-1]
    assert runs[0]["last"] < runs[1]["first"] and runs[1]["last"] < runs[2]["first"]
    assert [runs[0]["last"], runs[1]["last"]] == [articles[399], articles[799]]
    rows = sqlite3.connect(tmp_path / "wiki.db").execute(
        "SELECT COUNT(*), COUNT(DISTINCT gelr_page) FROM growthexperiments_link_recommendations").fetchone()
    assert rows[0] == rows[1] == 896  # every eligible article once (7 disambiguation pages have no row)
    wrapped = iterate(warehouse_dir, db)
    assert wrapped["targeting"]["first"] == articles[0] and wrapped["targeting"]["pages"] == 400
    assert not wrapped["changed"]


def test_a_failure_between_write_and_cursor_update_redoes_the_batch(
        ingested, warehouse_dir, ltg_model, tmp_path, monkeypatch):
    db = f"sqlite:///{tmp_path / 'wiki.db'}"
    first = iterate(warehouse_dir, db)

    def crash(*args):
        raise RuntimeError("killed after the write, before the cursor moved")

    monkeypatch.setattr(cursor, "advance", crash)
    with pytest.raises(RuntimeError):
        iterate(warehouse_dir, db)
    monkeypatch.undo()
    redone = iterate(warehouse_dir, db)
    assert redone["targeting"]["first"] > first["targeting"]["last"]  # the second batch, again
    assert redone["database"]["unchanged"] == redone["eligible"] and not redone["changed"]
    after = iterate(warehouse_dir, db)
    assert after["targeting"]["first"] > redone["targeting"]["last"]  # now the cursor moved on


@pytest.fixture
def enwiki_index(ingested, warehouse_dir, ltg_model, own_search_server):
    url = own_search_server.url
    topics = FIXTURES / "topics" / "enwiki-vital-articles-topics.json"
    result = run_cli(["--warehouse", str(warehouse_dir), "index", "init", "--wiki", "enwiki", "--search-url", url,
                      "--topics", str(topics), "--json"])
    assert result.exit_code == 0, result.stderr
    return url


def topic_run(warehouse_dir, url, db, minimum: int):
    # The enwiki sample cannot train a model of its own, and its 106 articles link to few of each other:
    # the ltgwiki model, with the consumer's thresholds relaxed so that these articles can carry tasks.
    result = run_cli(["--warehouse", str(warehouse_dir), "--set", f"targeting.minimum_tasks_per_topic={minimum}",
                      "--set", "recommend.minimum_link_score=0.2", "--set", "recommend.minimum_links_per_task=1",
                      "recommend", "--wiki", "enwiki", "--model", "ltgwiki", "--ignore-gate", "--targeting", "topics",
                      "--search-url", url, "--db", db, "--now", "2026-01-01T00:00:00Z", "--json"])
    assert result.exit_code == 0, result.stderr
    return last_json(result.stdout)["targeting"]


def test_topic_targeting_fills_topics_below_the_minimum_and_leaves_the_others(
        warehouse_dir, enwiki_index, tmp_path):
    url = enwiki_index
    db = f"sqlite:///{tmp_path / 'wiki.db'}"
    first = topic_run(warehouse_dir, url, db, minimum=2)
    assert first["before"] and all(count == 0 for count in first["before"].values())
    assert set(first["selected"]) == set(first["before"])  # every topic below the minimum got candidates
    gained = {t for t in first["before"] if first["after"][t] > first["before"][t]}
    assert len(gained) >= 3
    client = client_for(url)
    for topic in first["before"]:
        if first["after"][topic] < 2:  # not filled: then its candidates ran out
            candidates = IndexTopics(client, "enwiki_content", [topic]).candidates(topic)
            assert first["selected"][topic] >= len(candidates)
    second = topic_run(warehouse_dir, url, db, minimum=1)
    above = {t for t, n in second["before"].items() if n >= 1}
    assert above == gained
    assert not (set(second["selected"]) & above)  # topics at the minimum are not touched
    assert all(second["after"][t] == second["before"][t] for t in above)


def test_seeded_topic_selection_is_reproducible(warehouse_dir, enwiki_index):
    client = client_for(enwiki_index)
    keywords, _, _ = topic_vocabulary()
    topics = IndexTopics(client, "enwiki_content", sorted(set(keywords.values())))
    first = picks(topics, minimum=3, seed=42, evaluated=set())
    assert first == picks(topics, minimum=3, seed=42, evaluated=set())
    assert all(len(batch) <= 6 for batch in first.values()) and sum(map(len, first.values())) > 10
    other = picks(topics, minimum=3, seed=7, evaluated=set())
    assert other != first


def test_progress_lines_say_done_total_rate_and_eta():
    lines: list[str] = []
    progress = Progress("written", 10, lines.append, every=0)
    list(progress.wrap(range(10)))
    assert len(lines) == 10 and lines[4].startswith("  written: 5/10 (50%)") and "ETA" in lines[4]
    quiet = Progress("written", 10, lines.append, every=3600)
    list(quiet.wrap(range(10)))
    assert len(lines) == 10  # throttled: no flood


# --- nightly ----------------------------------------------------------------------------------------------------

def nightly(warehouse, dumps, reports, now, *extra):
    published = warehouse.parent / "published"
    result = run_cli(["--warehouse", str(warehouse), "--set", f"embeddings.publish_to={published}", "nightly",
                      "--wikis", "brokenwiki,ltgwiki", "--dump-dir", str(dumps), "--report-dir", str(reports),
                      "--now", now, "--embeddings", "--json", *extra])
    return result.exit_code, last_json(result.stdout), result.stderr


@pytest.fixture(scope="module")
def nightly_runs(spark, tmp_path_factory):
    """A nightly over two wikis, one with a corrupt dump; then a second night; then a re-run of the first."""
    base = tmp_path_factory.mktemp("nightly")
    dumps, reports, warehouse = base / "dumps", base / "reports", base / "warehouse"
    dumps.mkdir()
    shutil.copy(DUMPS["ltgwiki"], dumps / DUMPS["ltgwiki"].name)
    (dumps / "brokenwiki-20260101-pages-articles.xml.bz2").write_bytes(b"BZh91AY&SY" + bytes(range(256)) * 8)
    first = nightly(warehouse, dumps, reports, "2026-01-01T03:00:00Z")
    second = nightly(warehouse, dumps, reports, "2026-01-02T03:00:00Z")
    resumed = nightly(warehouse, dumps, reports, "2026-01-01T05:00:00Z")
    return first, second, resumed, reports


def test_nightly_one_wiki_failing_does_not_stop_the_other(nightly_runs):
    (code, summary, stderr), _, _, reports = nightly_runs
    assert code == 1 and summary["failed"] == ["brokenwiki"]
    assert "brokenwiki-20260101-pages-articles.xml.bz2" in summary["wikis"]["brokenwiki"]["error"]
    ltg = summary["wikis"]["ltgwiki"]
    assert ltg["status"] == "ok" and ltg["summary"]["train"]["reused"] is False
    recommend = ltg["summary"]["recommend"]
    assert recommend["changed"] and recommend["database"]["rows_written"] == recommend["with_links"] > 100
    assert set(ltg["summary"]["seconds_per_stage"]) >= {"ingest", "train", "recommend", "write"}
    # --embeddings: the link-based embeddings of the new snapshot, built and published
    assert ltg["embeddings"]["reused"] is False and ltg["embeddings"]["vectors"] > 600
    published = reports.parent / "published" / "ltgwiki-links"
    assert (published / "LATEST").read_text().strip() == ltg["embeddings"]["published"] == "20170901"


def test_a_second_night_with_unchanged_input_retrains_nothing_and_changes_nothing(nightly_runs):
    _, (code, summary, _), _, _ = nightly_runs
    assert code == 1 and summary["failed"] == ["brokenwiki"]
    ltg = summary["wikis"]["ltgwiki"]["summary"]
    assert ltg["ingest"]["reused"] and ltg["train"]["reused"]
    assert not ltg["recommend"]["changed"] and ltg["recommend"]["database"]["unchanged"] == 896
    assert summary["wikis"]["ltgwiki"]["embeddings"]["reused"] is True  # same input snapshot: not rebuilt


def test_a_rerun_of_the_same_night_resumes_without_redoing_finished_wikis(nightly_runs):
    _, _, (code, summary, _), _ = nightly_runs
    assert summary["run"] == "20260101"
    assert summary["wikis"]["ltgwiki"] == {"status": "done_earlier"}
    assert summary["wikis"]["brokenwiki"]["status"] == "failed" and code == 1


def test_the_run_report_holds_the_figures_and_renders_in_a_real_browser(nightly_runs, tmp_path):
    (_, summary, _), _, _, reports = nightly_runs
    paths = summary["wikis"]["ltgwiki"]["summary"]["recommend"]["report"]
    report = json.loads(open(paths["json"], encoding="utf-8").read())
    recommend = summary["wikis"]["ltgwiki"]["summary"]["recommend"]
    assert report["run"]["eligible"] == report["statistics"]["eligible"] == recommend["eligible"]
    assert report["database"]["rows_written"] == recommend["database"]["rows_written"]
    coverage = report["statistics"]["coverage"]
    assert [c["threshold"] for c in coverage] == [0.5, 0.6, 0.7, 0.8, 0.9]
    shares = [c["share_with_1"] for c in coverage]
    assert shares == sorted(shares, reverse=True) and shares[0] > recommend["with_links"] / recommend["eligible"] / 2
    at_minimum = coverage[1]  # 0.6 is the consumer's minimum link score: a task needs 2 links at it
    assert at_minimum["share_with_1"] >= recommend["with_links"] / recommend["eligible"]
    assert sum(b["links"] for b in report["statistics"]["score_histogram"]) >= recommend["links"]
    assert report["backtest"]["reference"][5]["threshold"] == 0.5
    # a sample of tasks as an editor meets them: the text around each anchor, the target, the score
    tasks = report["sample_tasks"]
    assert len(tasks) == 10 and len({t["page_id"] for t in tasks}) == 10
    assert all(1 <= len(t["links"]) <= 3 and t["title"] for t in tasks)
    assert all(link["score"] >= 0.6 and link["link_text"] and link["link_target"] for t in tasks for link in t["links"])
    page = open(paths["html"], encoding="utf-8").read()
    first = tasks[0]["links"][0]
    assert f"<mark>{html.escape(first['link_text'])}</mark>{html.escape(first['context_after'])}" in page
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is installed by .ci/machine.sh"
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(flags + ["--virtual-time-budget=5000", "--dump-dom", f"file://{paths['html']}"],
                         capture_output=True, text=True, timeout=120).stdout
    # histogram, coverage and backtest decoded as images, and the orphan curve when the orphan task ran
    assert f'data-images-loaded="{3 + bool(report.get("orphans"))}"' in dom
    shot = tmp_path / "report.png"
    subprocess.run(flags + ["--window-size=1000,2600", f"--screenshot={shot}", f"file://{paths['html']}"],
                   capture_output=True, timeout=120, cwd=tmp_path)
    from PIL import Image
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert image.size == (1000, 2600) and len(colours) > 50  # plots drawn, not a blank page


def test_topic_targeting_from_a_topic_table_without_an_index(ingested, warehouse_dir, ltg_model, tmp_path):
    db = f"sqlite:///{tmp_path / 'wiki.db'}"
    table = FIXTURES / "topics" / "enwiki-vital-articles-topics.json"
    result = run_cli(["--warehouse", str(warehouse_dir), "--set", "targeting.minimum_tasks_per_topic=2",
                      "--set", "recommend.minimum_link_score=0.2", "--set", "recommend.minimum_links_per_task=1",
                      "recommend", "--wiki", "enwiki", "--model", "ltgwiki", "--ignore-gate", "--targeting", "topics",
                      "--topics", str(table), "--db", db, "--now", "2026-01-01T00:00:00Z", "--json"])
    assert result.exit_code == 0, result.stderr
    targeting = last_json(result.stdout)["targeting"]
    assert "Culture.Biography.Biography*" in targeting["before"] and "Uncategorized" not in targeting["before"]
    assert set(targeting["selected"]) == set(targeting["before"])
    assert sum(targeting["after"].values()) > 0 and all(
        targeting["after"][t] >= targeting["before"][t] for t in targeting["before"])


def test_nightly_from_page_tables_with_their_siteinfo_matches_the_dump(nightly_runs, ingested, warehouse_dir,
                                                                       tmp_path):
    (_, from_dump, _), _, _, _ = nightly_runs
    tables = tmp_path / "tables"
    shutil.copytree(next((warehouse_dir / "pages" / "wiki=ltgwiki").iterdir()), tables / "wiki=ltgwiki")
    shutil.copy(next((warehouse_dir / "siteinfo" / "wiki=ltgwiki").iterdir()) / "siteinfo.json",
                tables / "ltgwiki-siteinfo.json")
    result = run_cli(["--warehouse", str(tmp_path / "warehouse"), "--set", "orphans.enabled=false", "nightly",
                      "--wikis", "ltgwiki", "--tables",
                      str(tables), "--now", "2026-01-01T03:00:00Z", "--json"])
    assert result.exit_code == 0, result.stderr
    ours = last_json(result.stdout)["wikis"]["ltgwiki"]["summary"]["recommend"]["database"]
    assert ours == from_dump["wikis"]["ltgwiki"]["summary"]["recommend"]["database"]
