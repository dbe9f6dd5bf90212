"""The orphan-link task: mentions and their filters, the engine, the simulated-orphan protocol (hidden
links never reach training), the model's CLI, and the task's rows and tags on every shared dump."""

from __future__ import annotations

import itertools
import json
import sqlite3

import pytest

from pipeline.config import load_config
from pipeline.orphans import model as orphan_model
from pipeline.orphans.engine import Relation, candidates, delink, inside_brackets, labelled
from pipeline.orphans.mentions import case_agrees, mentions_of, strip_disambiguator, too_short
from pipeline.recommend.engine import Segment
from pipeline.text.matcher import char_classes, is_boundary
from pipeline.warehouse import Warehouse, current_snapshot
from tests.conftest import DUMPS, last_json, run_cli
from tests.test_recommend import top_level_text_spans

# --- plain Python ---------------------------------------------------------------------------------------


def test_mentions_are_the_title_and_redirects_with_and_without_their_disambiguator():
    found = mentions_of("Mercury (planet)", ["Planet Mercury", "Mercury (planet)"], "en")
    assert [(m.form, m.from_redirect, m.stripped) for m in found] == [
        ("Mercury (planet)", False, False), ("Mercury", False, True), ("Planet Mercury", True, False)]
    assert [m.key for m in found] == ["mercury (planet)", "mercury", "planet mercury"]
    assert strip_disambiguator("(Untitled)") == "(Untitled)"  # nothing left: kept as it is
    # a Japanese title with a full-width disambiguator is left alone, an ASCII one is removed
    assert strip_disambiguator("東京 (曖昧さ回避)") == "東京"


def test_short_mentions_count_letters_and_spaceless_scripts_need_fewer():
    assert too_short("Ion", 4, 2) and not too_short("Riga", 4, 2)
    assert too_short("A.B.", 4, 2)  # punctuation is not a letter
    assert not too_short("東京", 4, 2) and too_short("東", 4, 2)


def test_case_must_agree_beyond_the_first_letter_in_cased_scripts():
    assert case_agrees("mercury", "Mercury") and case_agrees("Mercury", "Mercury")
    assert not case_agrees("Nasa", "NASA") and not case_agrees("MERCURY", "Mercury")
    assert case_agrees("রবীন্দ্রনাথ", "রবীন্দ্রনাথ")  # Bengali has no case
    assert case_agrees("Planet  Mercury", "Planet Mercury")  # white space as the matcher sees it


def test_delinking_turns_links_into_their_anchor_text_and_says_where_it_is():
    text = "Fraņcs [[Trasuns]] i [[Fraņcs Kemps|Kemps]]s raksteja. [[Rēzekne]]"
    removals = [(7, 11, "Trasuns", 10), (21, 23, "Kempss", 11)]
    plain, spans = delink(text, removals)
    assert plain == "Fraņcs Trasuns i Kempss raksteja. [[Rēzekne]]"
    assert [(plain[a:b], t) for a, b, t in spans] == [("Trasuns", 10), ("Kempss", 11)]
    assert delink(text, []) == (text, [])


def entry(orphan_id, title, form=None, **facts):
    from pipeline.orphans.engine import OrphanEntry

    values = {"from_redirect": False, "stripped": False, "stem": False, "plain_pages": 3, "anchor_probability": 0.0,
              "anchor_targets": 0, "orphans_sharing": 1, **facts}
    return OrphanEntry(orphan_id, title, form or title, **values)


def test_candidates_respect_case_boundaries_brackets_the_page_itself_and_existing_links():
    segments = [Segment(0, "Trasuns and TRASUNS wrote; Trasunsa. ", True),
                Segment(40, "In the [[Trasuns table", True), Segment(70, "Trasuns again", False)]
    entries = {"trasuns": [entry(7, "Trasuns"), entry(5, "Trasuns (writer)", "Trasuns", stripped=True)]}
    relations = {7: Relation(common=2, backlink=True, orphan_out_degree=4, source_degree=9)}
    found = candidates(5, segments, entries, relations, 1000, "ltg")
    places = [(segments[i].offset + c.match.start, c.target_id) for c, i in found.prepared.candidates]
    assert places == [(0, 7)]  # TRASUNS: case; Trasunsa: boundary; [[: unclosed link; last: excluded section
    assert found.case_rejected == 1
    features = dict(zip(orphan_model.FEATURES, found.prepared.candidates[0][0].features, strict=True))
    assert features["backlink"] == 1.0 and features["common_neighbours"] == 2.0 and features["relatedness"] > 0
    assert features["exact_case"] == 1.0 and features["occurrences"] == 2.0  # TRASUNS is matched, then dropped
    assert not candidates(6, segments, entries, relations, 1000, "ltg", linked=frozenset({7, 5})).prepared.candidates
    assert inside_brackets("a [[b", 4) and not inside_brackets("a [[b]] c", 8)


def test_link_trails_extend_a_mention_and_stems_match_only_with_one():
    trail = "a-zāčēģīķļņōšūž"  # ltgwiki's $linkTrail
    found = mentions_of("Fraņcs Trasuns", ["Trasuns"], "ltg", stem_min_letters=5)
    assert [(m.form, m.stem) for m in found] == [("Fraņcs Trasuns", False), ("Trasuns", False),
                                                  ("Fraņcs Trasun", True), ("Trasun", True)]
    assert mentions_of("Rīga", [], "ltg", 5) == mentions_of("Rīga", [], "ltg")  # a short last word has no stem
    assert all(not m.stem for m in mentions_of("東京大学", [], "ja", 5))  # spaceless scripts: no stems
    entries = {"trasuns": [entry(7, "Trasuns")], "trasun": [entry(7, "Trasuns", "Trasun", stem=True)]}
    text = "Trasuns, Trasunam, Trasun, Trasuns1."
    found = candidates(1, [Segment(0, text, True)], entries, {}, 10, "ltg", link_trail=trail)
    assert [(c.text, dict(zip(orphan_model.FEATURES, c.features, strict=True))["stem"])
            for c, _ in found.prepared.candidates] == [("Trasuns", 0.0), ("Trasunam", 1.0)]
    without = candidates(1, [Segment(0, text, True)], entries, {}, 10, "ltg")
    assert [c.text for c, _ in without.prepared.candidates] == ["Trasuns"]  # no trail: the stem never matches


def test_labels_are_the_occurrences_inside_a_removed_anchor_of_their_orphan():
    plain, spans = delink("Saw [[Trasuns]] and Trasuns.", [(4, 11, "Trasuns", 7)])
    found = candidates(1, [Segment(0, plain, True)], {"trasuns": [entry(7, "Trasuns"), entry(8, "Trasuns")]}, {},
                       10, "ltg")
    assert labelled(found, spans) == [1, 0, 0, 0]  # first occurrence for orphan 7 only


# --- Spark: the simulated-orphan protocol and the model -------------------------------------------------


@pytest.fixture(scope="module")
def ltg_orphans(ingested, spark, warehouse_dir):
    """The ltgwiki orphan model, trained once for this module: (warehouse, config, `train --json` summary)."""
    result = run_cli(["--warehouse", str(warehouse_dir), "train", "--wiki", "ltgwiki", "--task", "orphan_link",
                      "--json"])
    assert result.exit_code == 0, result.stderr
    return Warehouse(spark, str(warehouse_dir)), load_config("ltgwiki"), last_json(result.stdout)


def test_train_and_evaluate_print_the_simulated_orphan_curve(ltg_orphans, warehouse_dir):
    _, _, summary = ltg_orphans
    assert summary["wiki"] == "ltgwiki" and summary["model"] == "ltgwiki-orphan_link"
    curve = summary["protocols"]["simulated_orphans"]
    assert [p["threshold"] for p in curve] == [round(0.1 * i, 1) for i in range(10)]
    assert all(set(p) == {"threshold", "n_links", "precision", "recall"} for p in curve)
    assert curve[0]["n_links"] > 100 and all(0 <= p["precision"] <= 1 and 0 <= p["recall"] <= 1 for p in curve)
    assert [p["recall"] for p in curve] == sorted((p["recall"] for p in curve), reverse=True)
    point = curve[5]
    assert summary["released"] == (point["precision"] >= 0.75 and point["recall"] >= 0.20)
    folder = warehouse_dir / "models" / "ltgwiki-orphan_link" / summary["version"]
    assert {"model.json", "metrics.csv", "backtest.png", "training.json"} <= {p.name for p in folder.iterdir()}
    evaluated = run_cli(["--warehouse", str(warehouse_dir), "evaluate", "--wiki", "ltgwiki", "--task", "orphan_link",
                         "--json"])
    again = last_json(evaluated.stdout)
    assert set(again) >= {"wiki", "model", "released", "protocols"}
    assert again["protocols"] == summary["protocols"]  # the same model on the same tables
    retrained = run_cli(["--warehouse", str(warehouse_dir), "train", "--wiki", "ltgwiki", "--task", "orphan_link",
                         "--force", "--json"])
    assert last_json(retrained.stdout)["version"] == summary["version"]  # deterministic


def test_a_simulated_orphans_hidden_links_are_never_seen_in_training(ltg_orphans, spark):
    warehouse, config, _ = ltg_orphans
    snapshot = current_snapshot(warehouse, "ltgwiki")
    prepared = orphan_model.prepare(spark, warehouse, config)
    simulated = {r.page_id: r.split for r in warehouse.read("orphan_sim_targets", "ltgwiki", snapshot).collect()}
    test = {p for p, split in simulated.items() if split == "test"}
    assert len(test) > 50 and len(simulated) - len(test) > 50
    linked = {(r.source_page_id, r.resolved_page_id) for r in warehouse.read("links", "ltgwiki", snapshot).where(
        "kind = 'link' AND resolved_namespace = 0 AND resolved_page_id IS NOT NULL").collect()}
    edges = {(s, t) for s, t in linked if s != t}
    sources_of_test = {s for s, t in edges if t in test}
    examples = orphan_model.training_examples(spark, warehouse, config, prepared)
    pages, targets = set(examples[:, 0].astype(int)), set(examples[:, 2].astype(int))
    assert examples[:, 3].sum() >= 10 and targets <= set(simulated) - test
    assert not pages & (test | sources_of_test)
    # every link into a simulated orphan is plain text in the units: its anchor sits where the link was
    units = warehouse.read("orphan_sim_units", "ltgwiki", snapshot).where("size(removed) > 0").collect()
    assert {u.page_id for u in units} == {s for s, t in linked if t in simulated}  # self-links go too
    anchors: dict[tuple[int, int], set[str]] = {}
    for r in warehouse.read("links", "ltgwiki", snapshot).where("kind = 'link'").collect():
        anchors.setdefault((r.source_page_id, r.resolved_page_id), set()).add(r.anchor)
    in_text = 0
    for unit in units:
        for span in unit.removed:
            assert span.orphan_id in simulated
            for segment in unit.segments:
                if segment.offset <= span.start and span.end <= segment.offset + len(segment.text):
                    written = segment.text[span.start - segment.offset:span.end - segment.offset]
                    assert written in anchors[(unit.page_id, span.orphan_id)]
                    in_text += 1
    assert in_text > 100
    # the relatedness features come from the graph without the links into simulated orphans
    kept = {(s, t) for s, t in edges if t not in simulated}
    degree: dict[int, set[int]] = {}
    for s, t in kept:
        degree.setdefault(s, set()).add(t)
        degree.setdefault(t, set()).add(s)
    relations = warehouse.read("orphan_sim_relations", "ltgwiki", snapshot).collect()
    assert len(relations) > 100
    for r in relations:
        assert r.source_degree == len(degree.get(r.page_id, ()))
        assert r.orphan_out_degree == sum(1 for s, _ in kept if s == r.orphan_id)
        assert r.backlink == ((r.orphan_id, r.page_id) in kept)


# --- the task -------------------------------------------------------------------------------------------


def orphan_rows(db_file, table="growthexperiments_orphan_link_recommendations"):
    with sqlite3.connect(db_file) as connection:
        return connection.execute(f"SELECT gelr_page, gelr_revision, gelr_data FROM {table}").fetchall()


@pytest.mark.parametrize("wiki", sorted(DUMPS))
def test_every_orphan_link_on_every_dump_keeps_the_invariants(ltg_orphans, spark, warehouse_dir, tmp_path, wiki):
    """The ltgwiki model serves every wiki here (--model), with a permissive score (0.3) so that many links
    are checked."""
    db_file = tmp_path / "o.db"
    result = run_cli(["--warehouse", str(warehouse_dir), "--set", "orphans.minimum_link_score=0.3", "orphans",
                      "--wiki", wiki, "--model", "ltgwiki-orphan_link",
                      "--ignore-gate", "--db", f"sqlite:///{db_file}", "--events", f"{tmp_path}/events/",
                      "--now", "2030-01-01T00:00:00Z", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    assert {"orphans", "orphans_with_suggestion", "pages_with_links", "links"} <= set(summary)
    warehouse = Warehouse(spark, str(warehouse_dir))
    snapshot = current_snapshot(warehouse, wiki)
    orphans = {r.title: r.page_id for r in warehouse.read("orphans", wiki, snapshot).collect()}
    assert summary["orphans"] == len(orphans)
    pages = {r.page_id: r for r in warehouse.read("pages", wiki, snapshot).where("namespace = 0").collect()}
    links = warehouse.read("links", wiki, snapshot).where("kind = 'link' AND resolved_namespace = 0").collect()
    incoming = {link.resolved_page_id for link in links if link.resolved_page_id != link.source_page_id}
    linked_from = {}
    for link in links:
        linked_from.setdefault(link.source_page_id, set()).add(link.resolved_page_id)
    rows = orphan_rows(db_file)
    tasks = [(page, revision, json.loads(data)) for page, revision, data in rows if data is not None]
    assert len(tasks) == summary["pages_with_links"]
    suggested = set()
    checked = 0
    for page_id, revision, data in tasks:
        page = pages[page_id]
        text = page.wikitext
        assert revision == page.revision_id and 1 <= len(data["links"]) <= 3
        spans = top_level_text_spans(text)
        classes = char_classes(text)
        for link in data["links"]:
            start, anchor = link["wikitext_offset"], link["link_text"]
            end = start + len(anchor)
            assert text[start:end] == anchor
            assert len([s for s in spans if s[0] <= start and end <= s[1]]) == 1  # top-level text
            assert is_boundary(classes, start) and is_boundary(classes, end)
            target = orphans[link["link_target"]]  # every target is an orphan …
            assert target not in incoming  # … that no article links to
            assert target != page_id and target not in linked_from.get(page_id, set())
            assert link["score"] >= 0.3
            suggested.add(target)
            checked += 1
    assert checked == summary["links"] and len(suggested) == summary["orphans_with_suggestion"]
    assert checked > (0 if wiki == "enwiki" else 3), summary
    events = [json.loads(line) for path in (tmp_path / "events").iterdir() for line in path.open()]
    assert path_names(tmp_path / "events") == {f"{wiki}-orphan_link"}
    assert {e["page"]["page_id"] for e in events if "set" in e["weighted_tags"]} == {t[0] for t in tasks}
    assert all(set(e["weighted_tags"].get("set", {})) <= {"recommendation.orphan_link"}
               and set(e["weighted_tags"].get("clear", [])) <= {"recommendation.orphan_link"} for e in events)


def path_names(folder) -> set[str]:
    return {p.name.rsplit("-", 1)[0] for p in folder.iterdir()}


def test_golden_orphan_links_of_real_articles(ltg_orphans, warehouse_dir, tmp_path):
    """Read by eye on ltgwiki: a list of Latgalian writers names the publicist Ontons Dzeņs, and an article
    on a festival names Upeitis Uobeļduorzs; no other article links to either."""
    db_file = tmp_path / "o.db"
    result = run_cli(["--warehouse", str(warehouse_dir), "orphans", "--wiki", "ltgwiki", "--ignore-gate",
                      "--db", f"sqlite:///{db_file}", "--now", "2030-01-01T00:00:00Z", "--json"])
    assert result.exit_code == 0, result.stderr
    found = {(page, link["link_target"], link["link_text"]) for page, _, data in orphan_rows(db_file) if data
             for link in json.loads(data)["links"]}
    assert {(1644, "Ontons Dzeņs", "Ontons Dzeņs"), (370, "Upeitis Uobeļduorzs", "Upeitis Uobeļduorzs")} <= found
    again = last_json(run_cli(["--warehouse", str(warehouse_dir), "orphans", "--wiki", "ltgwiki", "--ignore-gate",
                               "--db", f"sqlite:///{db_file}", "--now", "2030-01-01T00:00:00Z", "--json"]).stdout)
    assert again["database"]["rows_written"] == 0 and again["changed"] is False  # a re-run is a no-op
    with sqlite3.connect(db_file) as connection:  # the orphan task writes its own table, not the link task's
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "growthexperiments_orphan_link_recommendations" in tables
    assert "growthexperiments_link_recommendations" not in tables


def test_orphan_tags_in_search_and_mariadb_rows(ltg_orphans, ltg_model, warehouse_dir, search_server, mariadb_url):
    from sinks.search import client_for

    url = search_server.url
    assert run_cli(["--warehouse", str(warehouse_dir), "index", "init", "--wiki", "ltgwiki", "--search-url", url,
                    "--recreate"]).exit_code == 0
    link = run_cli(["--warehouse", str(warehouse_dir), "recommend", "--wiki", "ltgwiki", "--db", mariadb_url,
                    "--search-url", url, "--now", "2030-01-01T00:00:00Z", "--json"])
    assert link.exit_code == 0, link.stderr
    first = run_cli(["--warehouse", str(warehouse_dir), "orphans", "--wiki", "ltgwiki", "--ignore-gate", "--db",
                     mariadb_url, "--search-url", url, "--now", "2030-01-01T00:00:00Z", "--json"])
    assert first.exit_code == 0, first.stderr
    summary = last_json(first.stdout)
    client = client_for(url)
    client.indices.refresh(index="ltgwiki_content")
    found = last_json(run_cli(["--warehouse", str(warehouse_dir), "search", "--wiki", "ltgwiki", "--search-url", url,
                               "--json", "--", "hasrecommendation:orphan_link"]).stdout)
    assert found["total"] == summary["pages_with_links"] > 5
    links = last_json(run_cli(["--warehouse", str(warehouse_dir), "search", "--wiki", "ltgwiki", "--search-url", url,
                               "--json", "--limit", "1000", "--", "hasrecommendation:link"]).stdout)
    assert links["total"] == last_json(link.stdout)["with_links"]  # the link task's tags are untouched
    import pymysql

    from sinks.mariadb import connection_options
    connection = pymysql.connect(**connection_options(mariadb_url))
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM growthexperiments_orphan_link_recommendations WHERE gelr_data IS NOT NULL")
        assert cursor.fetchone()[0] == summary["pages_with_links"]
    connection.close()
    check = run_cli(["--warehouse", str(warehouse_dir), "reconcile", "--wiki", "ltgwiki", "--db", mariadb_url,
                     "--search-url", url, "--task", "orphan_link", "--json"])
    assert check.exit_code == 0 and last_json(check.stdout)["differences"] == 0


def test_a_missing_orphan_model_is_named(ingested, warehouse_dir):
    missing = run_cli(["--warehouse", str(warehouse_dir), "orphans", "--wiki", "ltgwiki", "--model",
                       "nowiki-orphan_link", "--dry-run"])
    assert missing.exit_code == 1 and "no orphan model 'nowiki-orphan_link'" in missing.stderr



def test_run_writes_both_tasks_and_the_report_has_the_orphan_section(ltg_orphans, ltg_model, warehouse_dir,
                                                                     tmp_path):
    db_file = tmp_path / "run.db"
    result = run_cli(["--warehouse", str(warehouse_dir), "run", "--wiki", "ltgwiki", "--dump", str(DUMPS["ltgwiki"]),
                      "--db", f"sqlite:///{db_file}", "--now", "2030-01-01T00:00:00Z", "--report-dir",
                      str(tmp_path / "report"), "--json"])
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    orphans = summary["orphans"]
    released = ltg_orphans[2]["released"]
    if not released:  # the gate decides; a wiki whose orphan model fails keeps its link task
        assert "not released" in orphans["skipped"] and not orphan_rows(db_file)
        return
    assert orphans["pages_with_links"] == sum(1 for _, _, data in orphan_rows(db_file) if data) > 5
    report = json.loads(next((tmp_path / "report").glob("*.json")).read_text())
    section = report["orphans"]
    assert section["orphans"] == orphans["orphans"] and section["links"] == orphans["links"]
    assert section["share_with_suggestion"] == round(orphans["orphans_with_suggestion"] / orphans["orphans"], 4)
    assert [p["threshold"] for p in section["curve"]] == [round(0.1 * i, 1) for i in range(10)]
    page = next((tmp_path / "report").glob("*.html")).read_text()
    assert "Links to orphan articles" in page and 'alt="orphan_backtest"' in page
    assert summary["recommend"]["with_links"] > 0  # the link task ran too


def test_merging_orphan_links_into_a_link_task_keeps_its_links_and_rules():
    from pipeline.orphans.mixed import merge_links

    def link(offset, text, target, score):
        return {"link_text": text, "link_target": target, "match_index": 0, "wikitext_offset": offset,
                "score": score, "context_before": "", "context_after": "", "link_index": 0}

    meta = {"format_version": 1, "dataset_checksums": {"model": "link-sha"}}
    task = json.dumps({"links": [link(10, "Rēzekne", "Rēzekne", 0.9), link(40, "Daugova", "Daugova", 0.7)],
                       "meta": meta})
    orphan_meta = {"format_version": 1, "orphan": True, "dataset_checksums": {"orphan_model": "orphan-sha"}}
    orphans = json.dumps({"links": [link(12, "zekne", "X", 0.99), link(30, "Trasuns", "Trasuns", 0.6),
                                    link(50, "Kemps", "Kemps", 0.8), link(60, "Daugova", "Y", 0.95)],
                          "meta": orphan_meta})
    merged = json.loads(merge_links(task, orphans, 4, 2, meta))
    assert [(x["wikitext_offset"], x["link_target"], x["link_index"]) for x in merged["links"]] == [
        (10, "Rēzekne", 0), (30, "Trasuns", 1), (40, "Daugova", 2), (50, "Kemps", 3)]  # overlap, anchor twice: out
    assert merged["meta"] == {**meta, "dataset_checksums": {"model": "link-sha", "orphan_model": "orphan-sha"}}
    assert [x["link_target"] for x in json.loads(merge_links(task, orphans, 3, 2, meta))["links"]] == [
        "Rēzekne", "Daugova", "Kemps"]  # the best orphan link fills the last place
    assert merge_links(None, orphans, 10, 5, meta) is None  # below the minimum: still a NULL row
    assert merge_links(task, None, 10, 2, meta) == task
    # a row made only of orphan links is still the link task's row: its meta, not the orphan model's
    only = json.loads(merge_links(None, orphans, 3, 1, meta))
    assert "orphan" not in only["meta"] and only["meta"]["dataset_checksums"] == {
        "model": "link-sha", "orphan_model": "orphan-sha"}


def test_merged_report_counts_add_orphan_links_up_to_the_maximum():
    from pipeline.orphans.mixed import merge_counts

    assert merge_counts([3, 2, 1, 0, 0], [2, 2, 1, 1, 0], 4) == [4, 4, 2, 1, 0]
    assert merge_counts(None, [5, 1, 0, 0, 0], 3) == [3, 1, 0, 0, 0]
    assert merge_counts([1, 1, 0, 0, 0], None, 3) == [1, 1, 0, 0, 0]


def test_include_orphans_merges_orphan_links_into_the_link_task(ltg_orphans, ltg_model, warehouse_dir, tmp_path):
    db_file = tmp_path / "mixed.db"
    common = ["recommend", "--wiki", "ltgwiki", "--now", "2030-01-01T00:00:00Z", "--ignore-gate", "--json"]
    plain = last_json(run_cli(["--warehouse", str(warehouse_dir), *common, "--dry-run"]).stdout)
    mixed = run_cli(["--warehouse", str(warehouse_dir), "--set", "recommend.include_orphans=true", *common,
                     "--db", f"sqlite:///{db_file}"])
    assert mixed.exit_code == 0, mixed.stderr
    summary = last_json(mixed.stdout)
    assert summary["orphans_included"].startswith("yes") and summary["links"] > plain["links"]
    with sqlite3.connect(db_file) as connection:
        rows = connection.execute("SELECT gelr_data FROM growthexperiments_link_recommendations "
                                  "WHERE gelr_data IS NOT NULL").fetchall()
    warehouse = ltg_orphans[0]
    orphan_titles = {r.title for r in warehouse.read("orphans", "ltgwiki", current_snapshot(warehouse, "ltgwiki"))
                     .collect()}
    found = 0
    for (data,) in rows:
        links = json.loads(data)["links"]
        assert 2 <= len(links) <= 10 and [x["link_index"] for x in links] == list(range(len(links)))
        spans = sorted((x["wikitext_offset"], x["wikitext_offset"] + len(x["link_text"])) for x in links)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # no two anchors overlap
        found += sum(1 for x in links if x["link_target"] in orphan_titles)
    assert found > 0
