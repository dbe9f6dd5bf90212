"""`linkrec feedback`: GrowthExperiments' submissions read against the links this project served, checked
against an independent SQL count in a real MariaDB; the judged files of the reading protocol as feedback."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pymysql
import pytest

from pipeline.feedback.served import ledger_folder
from sinks.mariadb import connection_options
from tests.conftest import last_json, run_cli

pytestmark = pytest.mark.slow
NOW = "2026-01-01T00:00:00Z"
JUDGED = Path(__file__).parent.parent / "benchmarks" / "judged"


def served_rows(warehouse_dir: Path, url: str) -> list[dict]:
    """The ledger read with pyarrow, not with the code under test."""
    folder = Path(ledger_folder(str(warehouse_dir), "link", "ltgwiki", url))
    return [row for part in sorted(folder.iterdir()) for row in pq.read_table(part).to_pylist()]


def connect(url: str):
    return pymysql.connect(**{**connection_options(url), "autocommit": True})


def review(url: str, rows: list[dict], letter) -> None:
    """A submission row for each served link: `letter(i)` is the i-th link's decision."""
    with connect(url) as db, db.cursor() as cursor:
        cursor.executemany("INSERT INTO growthexperiments_link_submissions (gels_revision, gels_target, "
                           "gels_anchor_offset, gels_anchor_length, gels_page, gels_edit_revision, gels_user, "
                           "gels_feedback) VALUES (%s,%s,%s,%s,%s,NULL,7,%s)",
                           [(r["revision_id"], r["target_id"], r["wikitext_offset"], r["anchor_bytes"], r["page_id"],
                             letter(i)) for i, r in enumerate(rows)])


@pytest.fixture
def served(ingested, warehouse_dir, ltg_model, mariadb_url):
    result = run_cli(["--warehouse", str(warehouse_dir), "recommend", "--wiki", "ltgwiki", "--db", mariadb_url,
                      "--now", NOW, "--json"])
    assert result.exit_code == 0, result.stderr
    rows = served_rows(warehouse_dir, mariadb_url)
    assert len(rows) == last_json(result.stdout)["links"] > 50
    return mariadb_url, rows


def test_rates_equal_an_independent_sql_count(warehouse_dir, served, tmp_path):
    url, rows = served
    rows = sorted(rows, key=lambda r: (r["revision_id"], r["target_id"], r["wikitext_offset"]))
    letters = "aarsra"  # a mix with every decision in every band the run served
    submissions = [(r["revision_id"], r["target_id"], r["wikitext_offset"], r["anchor_bytes"], r["page_id"], None, 7,
                    letters[i % len(letters)]) for i, r in enumerate(rows)]
    first = rows[0]
    not_ours = [(first["revision_id"], 999_000 + i, 5, 3, first["page_id"], None, 7, "a") for i in range(3)]
    bad = [(first["revision_id"], 888_001, 4, 3, first["page_id"], None, 7, "x"),  # no such decision
           (first["revision_id"], 888_002, first["revision_chars"] + 10, 3, first["page_id"], None, 7, "r")]
    with connect(url) as db, db.cursor() as cursor:
        cursor.executemany("INSERT INTO growthexperiments_link_submissions (gels_revision, gels_target, "
                           "gels_anchor_offset, gels_anchor_length, gels_page, gels_edit_revision, gels_user, "
                           "gels_feedback) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)", submissions + not_ours + bad)
        cursor.execute("CREATE TABLE served_copy (revision_id BIGINT, target_id BIGINT, wikitext_offset INT, "
                       "score DOUBLE, model_version VARCHAR(64), link_target VARCHAR(255))")
        cursor.executemany("INSERT INTO served_copy VALUES (%s,%s,%s,%s,%s,%s)",
                           [(r["revision_id"], r["target_id"], r["wikitext_offset"], r["score"], r["model_version"],
                             r["link_target"]) for r in rows])
        join = ("FROM growthexperiments_link_submissions s JOIN served_copy c ON s.gels_revision = c.revision_id "
                "AND s.gels_target = c.target_id AND s.gels_anchor_offset = c.wikitext_offset "
                "WHERE s.gels_feedback IN ('a', 'r', 's')")
        cursor.execute(f"SELECT c.model_version, s.gels_feedback, COUNT(*) {join} GROUP BY 1, 2")
        by_version = {}
        for version, letter, n in cursor.fetchall():
            by_version.setdefault(version, {})[letter] = n
        cursor.execute(f"SELECT LEAST(FLOOR(c.score * 10), 9), s.gels_feedback, COUNT(*) {join} GROUP BY 1, 2")
        by_band = {}
        for band, letter, n in cursor.fetchall():
            by_band.setdefault(int(band), {})[letter] = n
        cursor.execute("SELECT COUNT(*) FROM growthexperiments_link_submissions s LEFT JOIN served_copy c ON "
                       "s.gels_revision = c.revision_id AND s.gels_target = c.target_id AND s.gels_anchor_offset = "
                       "c.wikitext_offset WHERE c.revision_id IS NULL AND s.gels_feedback IN ('a', 'r', 's') "
                       f"AND s.gels_anchor_offset < {first['revision_chars']}")
        (sql_not_ours,) = cursor.fetchone()
        rejected = [r for r, s in zip(rows, submissions, strict=True) if s[7] == "r"]
    events = tmp_path / "events.jsonl"
    logged = rejected[: len(rejected) // 2]
    events.write_text("".join(json.dumps({"revision_id": r["revision_id"], "link_target": r["link_target"],
                                          "rejection_reason": "everyday,wrong-target" if i % 2 else "everyday"})
                              + "\n" for i, r in enumerate(logged)) + "not json\n", encoding="utf-8")

    result = run_cli(["--warehouse", str(warehouse_dir), "feedback", "--wiki", "ltgwiki", "--db", url,
                      "--events", str(events), "--json"])
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    names = {"a": "accepted", "r": "rejected", "s": "skipped"}
    assert {v: {names[k]: n for k, n in c.items()} for v, c in by_version.items()} == {
        v: {k: n for k, n in c.items() if k in names.values() and n} for v, c in summary["by_version"].items()}
    assert {b: {names[k]: n for k, n in c.items()} for b, c in by_band.items()} == {
        round(b["from"] * 10): {k: b[k] for k in names.values() if b[k]} for b in summary["by_band"]}
    assert summary["reviewed"] == len(rows) and summary["not_ours"] == sql_not_ours == 3
    assert summary["accepted"] == sum(s[7] == "a" for s in submissions)
    assert summary["bad_rows"] == 2
    assert "unknown feedback letter 'x'" in result.stderr and "beyond the revision's text" in result.stderr
    assert summary["by_reason"] == {"everyday": len(logged), "wrong-target": len(logged) // 2,
                                    "not logged": len(rejected) - len(logged)}
    newest = summary["newest_version"]
    assert newest["version"] == rows[0]["model_version"] and newest["below_floor"] is False
    assert newest["acceptance"] == round(summary["accepted"] / (summary["accepted"] + summary["rejected"]), 4)

    # the floor: the same reviews under a stricter minimum exit 3 (what monitoring alarms on)
    strict = run_cli(["--warehouse", str(warehouse_dir), "--set", "feedback.minimum_acceptance=0.9", "feedback",
                      "--wiki", "ltgwiki", "--db", url, "--json"])
    assert strict.exit_code == 3 and "below feedback.minimum_acceptance 0.9" in strict.stderr
    assert last_json(strict.stdout)["newest_version"]["below_floor"] is True
    # links served before --since are not counted; what is not ours stays not ours
    later = run_cli(["--warehouse", str(warehouse_dir), "feedback", "--wiki", "ltgwiki", "--db", url,
                     "--since", "2026-06-01", "--json"])
    assert last_json(later.stdout)["reviewed"] == 0 and last_json(later.stdout)["not_ours"] == 3


def test_a_rerun_serves_nothing_new_and_another_database_has_its_own_ledger(warehouse_dir, served, tmp_path):
    url, rows = served
    again = run_cli(["--warehouse", str(warehouse_dir), "recommend", "--wiki", "ltgwiki", "--db", url,
                     "--now", NOW, "--force", "--json"])
    assert again.exit_code == 0 and last_json(again.stdout)["served_recorded"] == 0
    assert len(served_rows(warehouse_dir, url)) == len(rows)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    empty = run_cli(["--warehouse", str(warehouse_dir), "feedback", "--wiki", "ltgwiki", "--db", other, "--json"])
    assert empty.exit_code == 0 and last_json(empty.stdout)["reviewed"] == 0


def test_judged_links_become_submissions(warehouse_dir, served, tmp_path):
    """The committed ltgwiki judgement, read against a run of the same model, as MariaDB submissions."""
    url, rows = served
    events = tmp_path / "judged-events.jsonl"
    result = run_cli_judge(["feedback", "--warehouse", str(warehouse_dir), "--wiki", "ltgwiki", "--db", url,
                            "--events", str(events), str(JUDGED / "ltgwiki-link.tsv")])
    judged = [line.split("\t") for line in (JUDGED / "ltgwiki-link.tsv").read_text().splitlines()[1:]]
    served_keys = {(r["page_id"], r["link_target"]) for r in rows}
    expected = [j for j in judged if (int(j[3]), j[8]) in served_keys]
    assert len(expected) >= 25, "the committed judgement no longer matches the model's links: judge again"
    with connect(url) as db, db.cursor() as cursor:
        cursor.execute("SELECT gels_page, gels_feedback, COUNT(*) FROM growthexperiments_link_submissions "
                       "GROUP BY 1, 2")
        stored = {(page, letter): n for page, letter, n in cursor.fetchall()}
    wanted: dict = {}
    for j in expected:
        key = (int(j[3]), "a" if j[12] == "yes" else "r")
        wanted[key] = wanted.get(key, 0) + 1
    assert stored == wanted
    assert result["missing"] == len(judged) - len(expected)
    assert len(events.read_text().splitlines()) == sum(j[12] == "no" for j in expected)
    summary = last_json(run_cli(["--warehouse", str(warehouse_dir), "feedback", "--wiki", "ltgwiki", "--db", url,
                                 "--events", str(events), "--json"]).stdout)
    assert summary["accepted"] == sum(j[12] == "yes" for j in expected) and summary["not_ours"] == 0
    reasons = {}
    for j in expected:
        if j[12] == "no":
            reason = j[13].split("/")[0]
            reasons[reason] = reasons.get(reason, 0) + 1
    assert summary["by_reason"] == reasons


def run_cli_judge(args: list[str]) -> dict:
    import importlib.util

    spec = importlib.util.spec_from_file_location("judge", Path(__file__).parent.parent / "benchmarks" / "judge.py")
    judge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(judge)
    return judge.main(args)


def test_nightly_flags_a_model_editors_reject_and_the_report_shows_it(warehouse_dir, served, tmp_path):
    url, rows = served
    review(url, rows, lambda i: "a" if i % 5 == 0 else "r")
    reports = tmp_path / "reports"
    result = run_cli(["--warehouse", str(warehouse_dir), "--set", "orphans.enabled=false", "nightly", "--wikis",
                      "ltgwiki", "--dump-dir", str(Path(__file__).parent / "fixtures" / "dumps"), "--db", url,
                      "--report-dir", str(reports), "--now", "2026-03-03T03:00:00Z", "--json"])
    outcome = last_json(result.stdout)
    assert result.exit_code == 3, result.stderr
    entry = outcome["wikis"]["ltgwiki"]
    assert outcome["feedback_flagged"] == ["ltgwiki"] and entry["status"] == "ok"
    accepted = sum(1 for i, _ in enumerate(rows) if i % 5 == 0)
    assert entry["feedback"]["below_floor"] is True
    assert entry["feedback"]["acceptance"] == round(accepted / len(rows), 4)
    assert "acceptance flagged: ltgwiki" in result.stderr
    paths = entry["summary"]["recommend"]["report"]
    report = json.loads(Path(paths["json"]).read_text(encoding="utf-8"))
    assert report["feedback"]["accepted"] == accepted and report["feedback"]["rejected"] == len(rows) - accepted
    assert any("editors accepted" in w for w in report["warnings"])
    page = Path(paths["html"]).read_text(encoding="utf-8")
    assert "What editors did with the links" in page and "below the floor" in page
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is installed by .ci/machine.sh"
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", f"file://{paths['html']}"], capture_output=True, text=True, timeout=120).stdout
    # histogram, coverage, backtest and the calibration plot decoded as images
    assert 'data-images-loaded="4"' in dom and 'alt="calibration"' in dom


def test_training_learns_from_decisions_and_the_version_changes_only_with_them(warehouse_dir, served, ltg_model):
    url, rows = served
    review(url, rows, lambda i: "ars"[i % 3])
    assert all(len(r["features"]) == 6 for r in rows)  # the ledger kept what the model saw
    assert run_cli(["--warehouse", str(warehouse_dir), "feedback", "--wiki", "ltgwiki", "--db", url]).exit_code == 0

    def train(*extra):
        result = run_cli(["--warehouse", str(warehouse_dir), "train", "--wiki", "ltgwiki", "--json", *extra])
        assert result.exit_code == 0, result.stderr
        return last_json(result.stdout)

    base = json.loads((warehouse_dir / "models" / "ltgwiki" / "LATEST.json").read_text())["version"]
    try:
        learned = train("--db", url)
        decided = sum(1 for i, _ in enumerate(rows) if i % 3 != 2)
        assert learned["training"]["feedback"]["examples"] == decided
        assert learned["training"]["feedback"]["accepted"] == sum(1 for i, _ in enumerate(rows) if i % 3 == 0)
        assert learned["version"] != base
        assert train("--db", url)["version"] == learned["version"]  # same decisions: same model
        weighted = run_cli(["--warehouse", str(warehouse_dir), "--set", "feedback.weight=5", "train", "--wiki",
                            "ltgwiki", "--db", url, "--json"])
        assert last_json(weighted.stdout)["version"] not in (base, learned["version"])
    finally:
        restored = train()  # no decisions in the wiki's own database: the model every other test uses
    assert restored["version"] == base and "feedback" not in restored["training"]
    assert (warehouse_dir / "models" / "ltgwiki" / base / "model.json").read_bytes() == ltg_model


def test_reviews_flag_submitted_revisions_and_targets_rejected_twice(spark, tmp_path):
    """The rule of contracts.md §1 as the run applies it, by joins: a revision with any submission row is not
    ours to touch; a target rejected twice on a page (by any revisions) is never offered there again."""
    from pipeline.feedback.job import SUBMISSIONS_SCHEMA
    from pipeline.recommend.reviews import with_reviews

    staged = str(tmp_path / "staged")
    rows = [(201, 7, 0, 3, 2, None, 1, "a"),  # page 2's revision 201 was reviewed
            (101, 9, 1, 3, 1, None, 1, "r"), (102, 9, 2, 3, 1, None, 2, "r"),  # page 1: target 9 rejected twice
            (103, 8, 0, 3, 1, None, 1, "r"),  # target 8 only once
            (104, 6, 0, 3, 3, None, 1, "r"), (104, 6, 9, 3, 3, None, 1, "s")]  # a skip is no rejection
    spark.createDataFrame(rows, SUBMISSIONS_SCHEMA).write.parquet(staged)
    pages = spark.createDataFrame([(1, 110), (2, 201), (3, 300), (4, 400)], "page_id long, revision_id long")
    got = {r.page_id: (r.has_submission, r.rejected_targets) for r in with_reviews(spark, pages, staged).collect()}
    assert got == {1: (False, [9]), 2: (True, None), 3: (False, None), 4: (False, None)}
    none = {r.page_id: (r.has_submission, r.rejected_targets) for r in with_reviews(spark, pages, None).collect()}
    assert set(none.values()) == {(False, None)}


def test_a_score_on_a_band_edge_falls_in_the_band_it_starts(spark):
    from pipeline.feedback.job import _band

    scores = spark.createDataFrame([(s,) for s in (0.0, 0.1, 0.3, 0.6, 0.7, 0.7999, 0.9, 1.0)], "score double")
    assert [r.band for r in scores.select(_band("score").alias("band")).collect()] == [0, 1, 3, 6, 7, 7, 9, 9]
