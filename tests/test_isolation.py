"""One run never harms another wiki, task or snapshot: one database per wiki, models served only where
they were gated, the two tasks failing apart, the orphan task on the link task's selection, each task's
own feedback, and no run-scoped staging left behind."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pymysql
import pytest

from sinks.base import LINK, SinkUnusable, orphan_task
from sinks.connect import open_database
from tests.conftest import DUMPS, last_json, run_cli

NOW = "2030-01-01T00:00:00Z"


def staging_left(warehouse: Path) -> list[str]:
    """Run-scoped folders anywhere in the warehouse: orphan stage tables, ingest staging."""
    return sorted(str(p.relative_to(warehouse)) for p in warehouse.rglob("*")
                  if p.is_dir() and (p.name.startswith("orphan_run_") or p.name.startswith("_staging-")))


# --- one database per wiki ------------------------------------------------------------------------------


def test_a_sqlite_database_of_one_wiki_refuses_another(tmp_path):
    url = f"sqlite:///{tmp_path / 'one.db'}"
    open_database(url, "ltgwiki").finish()
    with pytest.raises(SinkUnusable, match="holds the tasks of ltgwiki, not of hywiki"):
        open_database(url, "hywiki")
    open_database(url, "ltgwiki", task=orphan_task()).finish()  # the same wiki's other task is at home there
    # a URL with {wiki} names each wiki's own file
    template = f"sqlite:///{tmp_path}/{{wiki}}.db"
    for wiki in ("ltgwiki", "hywiki"):
        open_database(template, wiki).finish()
    assert sorted(p.name for p in tmp_path.glob("*wiki.db")) == ["hywiki.db", "ltgwiki.db"]


def test_a_database_written_before_the_marker_is_claimed_unless_its_state_names_another_wiki(tmp_path):
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as connection:  # the layout of an earlier version: no marker table
        connection.execute("CREATE TABLE linkrec_state (wiki TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT "
                           "NULL, PRIMARY KEY (wiki, name))")
        connection.execute("INSERT INTO linkrec_state VALUES ('ltgwiki', 'cursor', '10')")
    with pytest.raises(SinkUnusable, match="holds the tasks of ltgwiki, not of hywiki"):
        open_database(f"sqlite:///{old}", "hywiki")
    open_database(f"sqlite:///{old}", "ltgwiki").finish()
    with sqlite3.connect(old) as connection:
        assert connection.execute("SELECT wiki FROM linkrec_wiki").fetchall() == [("ltgwiki",)]


def test_a_mariadb_database_of_one_wiki_refuses_another(mariadb_url):
    open_database(mariadb_url, "ltgwiki").finish()
    with pytest.raises(SinkUnusable, match="holds the tasks of ltgwiki, not of hywiki"):
        open_database(mariadb_url, "hywiki", retries=0)
    # an executor's connection (the driver checked) does not claim again
    open_database(mariadb_url, "ltgwiki", lock=False).finish()


def test_two_wikis_with_every_default_keep_their_own_rows(ingested, warehouse_dir, ltg_model):
    """ltgwiki, then enwiki (served by ltgwiki's model) with the default database: ltgwiki's file is
    untouched; enwiki written into ltgwiki's file exits 1, naming both, and changes nothing."""
    first = run_cli(["--warehouse", str(warehouse_dir), "recommend", "--wiki", "ltgwiki", "--now", NOW, "--json"])
    assert first.exit_code == 0, first.stderr
    ltg_db = warehouse_dir / "ltgwiki.db"
    before = ltg_db.read_bytes()
    with sqlite3.connect(ltg_db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM growthexperiments_link_recommendations "
                                  "WHERE gelr_data IS NOT NULL").fetchone()[0] > 100
    second = run_cli(["--warehouse", str(warehouse_dir), "recommend", "--wiki", "enwiki", "--model", "ltgwiki",
                      "--ignore-gate", "--now", NOW, "--json"])
    assert second.exit_code == 0, second.stderr
    assert last_json(second.stdout)["database"]["rows_deleted"] == 0
    assert ltg_db.read_bytes() == before
    assert (warehouse_dir / "enwiki.db").exists()
    wrong = run_cli(["--warehouse", str(warehouse_dir), "recommend", "--wiki", "enwiki", "--model", "ltgwiki",
                     "--ignore-gate", "--now", NOW, "--db", f"sqlite:///{ltg_db}"])
    assert wrong.exit_code == 1
    error = [line for line in wrong.stderr.splitlines() if line.startswith("linkrec: error:")]
    assert len(error) == 1 and "ltgwiki" in error[0] and "enwiki" in error[0], wrong.stderr
    assert ltg_db.read_bytes() == before


# --- a model serves a wiki only with a gate result for it ------------------------------------------------


def test_a_joint_model_serves_a_third_wiki_only_after_evaluate(ingested, warehouse_dir, ltg_model):
    joint = run_cli(["--warehouse", str(warehouse_dir), "train", "--wikis", "ltgwiki,enwiki", "--name",
                     "isolation-joint", "--json"])
    assert joint.exit_code == 0, joint.stderr
    version = last_json(joint.stdout)["version"]
    recommend = ["--warehouse", str(warehouse_dir), "recommend", "--wiki", "jawiki", "--model", "isolation-joint",
                 "--now", NOW, "--dry-run", "--json"]
    refused = run_cli(recommend)
    assert refused.exit_code == 1
    assert "no gate result for jawiki" in refused.stderr
    assert "linkrec evaluate --wiki jawiki --model isolation-joint" in refused.stderr
    evaluated = run_cli(["--warehouse", str(warehouse_dir), "evaluate", "--wiki", "jawiki", "--model",
                         "isolation-joint", "--json"])
    assert evaluated.exit_code == 0, evaluated.stderr
    released = last_json(evaluated.stdout)["released"]
    gate = json.loads((warehouse_dir / "models" / "isolation-joint" / version / "gates" / "jawiki.json").read_text())
    assert gate["released"] == released
    served = run_cli(recommend)
    if released:
        assert served.exit_code == 0, served.stderr
    else:
        assert served.exit_code == 1 and "is not released for jawiki" in served.stderr
    # a wiki the joint model was trained on keeps its training gate; another wiki's own model needs one too
    assert "no gate result" not in run_cli(recommend[:4] + ["ltgwiki"] + recommend[5:]).stderr
    other = run_cli(recommend[:4] + ["jawiki", "--model", "ltgwiki"] + recommend[7:])
    assert other.exit_code == 1 and "linkrec evaluate --wiki jawiki --model ltgwiki" in other.stderr


def test_an_orphan_model_serves_another_wiki_only_after_evaluate(ingested, warehouse_dir, spark):
    from pipeline.config import load_config
    from pipeline.orphans import model as orphan_model
    from pipeline.warehouse import Warehouse

    trained = run_cli(["--warehouse", str(warehouse_dir), "train", "--wiki", "ltgwiki", "--task", "orphan_link",
                       "--json"])
    assert trained.exit_code == 0, trained.stderr
    warehouse = Warehouse(spark, str(warehouse_dir))
    record, _ = orphan_model.load(warehouse, load_config("hywiki"), "ltgwiki-orphan_link")
    gate = warehouse_dir / "models" / "ltgwiki-orphan_link" / record["version"] / "gates" / "hywiki.json"
    gate.unlink(missing_ok=True)
    refused = run_cli(["--warehouse", str(warehouse_dir), "orphans", "--wiki", "hywiki", "--model",
                       "ltgwiki-orphan_link", "--now", NOW, "--dry-run"])
    assert refused.exit_code == 1
    assert "linkrec evaluate --wiki hywiki --task orphan_link --model ltgwiki-orphan_link" in refused.stderr
    evaluated = run_cli(["--warehouse", str(warehouse_dir), "evaluate", "--wiki", "hywiki", "--task", "orphan_link",
                         "--model", "ltgwiki-orphan_link", "--json"])
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads(gate.read_text())["released"] == last_json(evaluated.stdout)["released"]
    assert orphan_model.gate_for(warehouse, record, "hywiki")[0] == last_json(evaluated.stdout)["released"]


# --- the two tasks fail apart; the orphan task on the link task's pages -----------------------------------


def test_an_orphan_sink_failure_leaves_the_link_task_written(ingested, warehouse_dir, ltg_model, mariadb_url):
    from sinks.mariadb import connection_options

    open_database(mariadb_url, "ltgwiki", task=orphan_task()).finish()  # the orphan table exists, to be locked
    holder = pymysql.connect(**{**connection_options(mariadb_url), "autocommit": True})
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLES growthexperiments_orphan_link_recommendations WRITE")
        result = run_cli(["--warehouse", str(warehouse_dir), "--set", "sinks.timeout_seconds=1", "--set",
                          "sinks.retries=0", "run", "--wiki", "ltgwiki", "--dump", str(DUMPS["ltgwiki"]),
                          "--db", mariadb_url, "--now", NOW, "--ignore-gate", "--report-dir",
                          str(warehouse_dir.parent / "isolation-report"), "--json"])
    finally:
        holder.close()
    assert result.exit_code == 3, result.stderr
    summary = last_json(result.stdout)
    assert "locked" in summary["orphans"]["failed"] and summary["orphans"]["exit_code"] == 3
    assert "the orphan task of ltgwiki failed" in result.stderr
    report = json.loads(Path(summary["recommend"]["report"]["json"]).read_text())
    assert report["orphans"]["status"] == "failed" and "locked" in report["orphans"]["why"]
    assert "failed:" in Path(summary["recommend"]["report"]["html"]).read_text()
    connection = pymysql.connect(**connection_options(mariadb_url))
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM growthexperiments_link_recommendations WHERE gelr_data IS NOT NULL")
        assert cursor.fetchone()[0] == summary["recommend"]["with_links"] > 100
        cursor.execute("SELECT COUNT(*) FROM growthexperiments_orphan_link_recommendations")
        assert cursor.fetchone()[0] == 0
    connection.close()
    assert staging_left(warehouse_dir) == []


def test_the_orphan_task_follows_the_link_tasks_targeting(ingested, warehouse_dir, ltg_model, tmp_path):
    db_file = tmp_path / "iterate.db"
    result = run_cli(["--warehouse", str(warehouse_dir), "--set", "targeting.strategy=iterate", "--set",
                      "targeting.limit=60", "run", "--wiki", "ltgwiki", "--dump", str(DUMPS["ltgwiki"]),
                      "--db", f"sqlite:///{db_file}", "--now", NOW, "--ignore-gate", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["recommend"]["targeting"]["pages"] == 60
    assert summary["orphans"]["pages_read"] == 60  # not every article of the wiki
    with sqlite3.connect(db_file) as connection:
        link_pages = {p for (p,) in connection.execute("SELECT gelr_page FROM growthexperiments_link_recommendations")}
        orphan_pages = {p for (p,) in connection.execute(
            "SELECT gelr_page FROM growthexperiments_orphan_link_recommendations")}
    assert orphan_pages and orphan_pages <= link_pages and len(link_pages) <= 60
    assert staging_left(warehouse_dir) == []


def test_orphan_staging_is_removed_when_the_task_fails(ingested, warehouse_dir, spark, tmp_path):
    """A failure inside the orphan task's Spark stages (here: staged submissions without a feedback column,
    read after the first stage tables are written) still removes every stage table of the run."""
    from datetime import UTC, datetime

    from pipeline.config import load_config
    from pipeline.orphans import task as orphan_task_job
    from pipeline.recommend.job import Selection
    from pipeline.warehouse import Warehouse

    assert run_cli(["--warehouse", str(warehouse_dir), "train", "--wiki", "ltgwiki", "--task", "orphan_link"]
                   ).exit_code == 0
    warehouse = Warehouse(spark, str(warehouse_dir))
    broken = str(tmp_path / "submissions")
    spark.createDataFrame([(1, 2, 3)], "gels_revision long, gels_page long, gels_target long").write.parquet(broken)
    with pytest.raises(Exception, match="gels_feedback"):
        orphan_task_job.recommend(spark, warehouse, load_config("ltgwiki"), Selection(),
                                  datetime(2030, 1, 1, tzinfo=UTC), True, broken)
    assert staging_left(warehouse_dir) == []


# --- each task its own feedback -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "mariadb"])
def test_each_task_reads_only_its_own_submissions(kind, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'wiki.db'}" if kind == "sqlite" else request.getfixturevalue("mariadb_url")
    link, orphan = open_database(url, "ltgwiki"), open_database(url, "ltgwiki", task=orphan_task())
    try:
        def review(database, table, revision, target, feedback):
            database.transaction(lambda cursor: cursor.execute(
                f"INSERT INTO {table} (gels_revision, gels_target, gels_anchor_offset, gels_anchor_length, gels_page, "
                f"gels_edit_revision, gels_user, gels_feedback) VALUES ({', '.join([database.mark] * 8)})",
                (revision, target, revision % 7 + target, 4, 18, None, 1, feedback)))

        for revision in (100, 101):  # the link task's target 5 rejected twice on page 18
            review(link, LINK.submissions, revision, 5, "r")
        for revision in (200, 201):  # the orphan task's target 9 rejected twice
            review(orphan, orphan.task.submissions, revision, 9, "r")
        def read(database):
            return [(row[0], row[1], row[7]) for batch in database.submission_batches() for row in batch]

        assert read(link) == [(100, 5, "r"), (101, 5, "r")]
        assert read(orphan) == [(200, 9, "r"), (201, 9, "r")]
        assert orphan.task.submissions == "growthexperiments_orphan_link_submissions"
    finally:
        link.finish()
        orphan.finish()
