"""What an operator meets on a bad night: unusable URLs and files, unreachable or wrong servers,
locked tables, concurrent runs, secrets in URLs. Each ends in one line and the documented exit code."""

from __future__ import annotations

import json
import threading
import time
from http.server import HTTPServer, SimpleHTTPRequestHandler
from urllib.parse import quote

import pymysql
import pytest

from sinks.base import parse_url, redact
from tests.conftest import DUMPS, free_port, last_json, mariadb_admin, run_cli


def one_error_line(result) -> str:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("linkrec: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def not_a_search_server():
    """An HTTP server that is not a search server: GET lists a folder, every other method is 501."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("password", ["a#b", "q?r", "s/t", "u@v:w", "p#q?r/s@t:u%x"])
def test_a_password_of_any_character_is_parsed_and_never_shown(password):
    for written in (password, quote(password, safe="")):
        url = f"mysql://linkrec:{written}@db.example:3306/wiki?read_default_file=/etc/my.cnf"
        parts = parse_url(url)
        assert (parts.user, parts.host, parts.port, parts.path) == ("linkrec", "db.example", 3306, "/wiki")
        assert parts.password == password or written != password  # a raw `%` stays as written
        shown = redact(url)
        assert shown == "mysql://linkrec:***@db.example:3306/wiki?read_default_file=/etc/my.cnf"
    assert "abc" not in redact("mysql://linkrec:abc@h:x/db")


@pytest.mark.parametrize("db, message", [
    ("postgres://u@127.0.0.1/wiki", "expected sqlite:///path or mysql://"),
    ("wiki.db", "expected sqlite:///path or mysql://"),
    ("mysql://root@127.0.0.1:abc/test", "the port 'abc' is not a number"),
    ("mysql://root:s3cr#t@127.0.0.1:99999/test", "the port '99999' is not a number"),
    ("sqlite:////proc/nonexistent/x.db", "cannot open the SQLite database"),
    ("mysql://root:wrong-pw@127.0.0.1:3306/test", "Access denied"),
    ("mysql://root@127.0.0.1:3306/linkrec_no_such_database", "Unknown database"),
])
def test_unusable_databases_are_one_line_and_exit_1(mariadb_server, tmp_path, db, message):
    result = run_cli(["--warehouse", str(tmp_path), "recommend", "--wiki", "ltgwiki", "--db", db, "--json"])
    assert result.exit_code == 1, result.stderr
    line = one_error_line(result)
    assert message in line and "wrong-pw" not in line and "s3cr#t" not in line
    assert "re-run converges" not in line


def test_search_commands_against_a_closed_port_or_a_server_that_is_not_one(tmp_path, not_a_search_server):
    closed = f"http://127.0.0.1:{free_port()}"
    db = f"sqlite:///{tmp_path / 'wiki.db'}"
    base = ["--warehouse", str(tmp_path)]
    for url, message in ((closed, "does not answer"), (not_a_search_server, "Elasticsearch-compatible server"),
                         ("http://127.0.0.1:99999", "the port '99999' is not a number")):
        for args in (["search", "--wiki", "ltgwiki", "--search-url", url, "hasrecommendation:link"],
                     ["reconcile", "--wiki", "ltgwiki", "--db", db, "--search-url", url],
                     ["index", "init", "--wiki", "ltgwiki", "--search-url", url],
                     ["recommend", "--wiki", "ltgwiki", "--db", db, "--search-url", url]):
            result = run_cli(base + args)
            assert result.exit_code == 1, (args, result.stderr)
            assert message in one_error_line(result), (args, result.stderr)


def test_a_501_is_not_retried():
    from sinks.search import _retryable

    assert [s for s in (429, 500, 501, 502, 503, 504, 505) if _retryable(s)] == [429, 500, 502, 503, 504]


def test_a_search_server_that_never_answers_times_out_before_the_compute(tmp_path):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    try:
        started = time.time()
        result = run_cli(["--warehouse", str(tmp_path), "--set", "sinks.timeout_seconds=1", "recommend", "--wiki",
                          "ltgwiki", "--db", f"sqlite:///{tmp_path / 'wiki.db'}", "--search-url",
                          f"http://127.0.0.1:{silent.getsockname()[1]}"])
        assert result.exit_code == 1 and "does not answer" in one_error_line(result)
        assert time.time() - started < 30
    finally:
        silent.close()


def test_bad_files_and_empty_selections_are_clear(tmp_path):
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes("[recommend]\n# caf\xe9\n".encode("latin-1"))
    result = run_cli(["--config", str(latin1), "config", "show", "--wiki", "ltgwiki"])
    assert result.exit_code == 1 and "not UTF-8" in one_error_line(result)
    titles = tmp_path / "titles.txt"
    titles.write_bytes("Caf\xe9\n".encode("latin-1"))
    db = f"sqlite:///{tmp_path / 'wiki.db'}"
    result = run_cli(["--warehouse", str(tmp_path), "recommend", "--wiki", "ltgwiki", "--db", db,
                      "--titles-file", str(titles)])
    assert result.exit_code == 1 and "not UTF-8" in one_error_line(result)
    result = run_cli(["--warehouse", str(tmp_path), "recommend", "--wiki", "ltgwiki", "--db", db, "--pages", "500-1"])
    assert result.exit_code == 2 and "the range is empty" in one_error_line(result)
    result = run_cli(["--warehouse", str(tmp_path), "nightly", "--wikis", ",", "--dump-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no wiki named" in one_error_line(result)


def test_a_second_run_on_the_same_wiki_stops_with_one_line(tmp_path):
    from pipeline.warehouse import wiki_lock

    with wiki_lock(str(tmp_path), "ltgwiki"):
        result = run_cli(["--warehouse", str(tmp_path), "ingest", "--wiki", "ltgwiki", "--dump",
                          str(DUMPS["ltgwiki"])])
        assert result.exit_code == 3
        line = one_error_line(result)
        assert "another linkrec run (pid" in line and "ltgwiki" in line
        # another wiki of the same warehouse is not held up (it fails later, on its own input)
        other = run_cli(["--warehouse", str(tmp_path), "ingest", "--wiki", "enwiki", "--dump", "/nonexistent.xml"])
        assert other.exit_code == 1 and "no such file" in one_error_line(other)
    assert not (tmp_path / "pages").exists()


@pytest.mark.slow
def test_concurrent_processes_on_a_fresh_warehouse(tmp_path):
    """Two real processes started together: one ingests, the other stops with one line (no Java traceback)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "pipeline.cli", "--warehouse", str(tmp_path / "wh"), "--quiet", "ingest",
               "--wiki", "ltgwiki", "--dump", str(DUMPS["ltgwiki"])]
    first = subprocess.Popen(command + ["--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert len(out.splitlines()) == 1 and json.loads(out)["pages"] > 0  # stdout holds only the JSON (no JVM log)
    assert second.returncode == 3 and "another linkrec run" in second.stderr
    assert "Exception" not in second.stderr and len(second.stderr.strip().splitlines()) == 1


# --- against a real MariaDB user and the ltgwiki model ------------------------------------------------------

SECRET = "Pw#1?x/y@z:w"


@pytest.fixture
def special_user(mariadb_server, tmp_path):
    name = f"linkrec_pw_{tmp_path.name[-8:].replace('-', '_')}"
    admin = mariadb_admin()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {name}")
        cursor.execute("CREATE USER IF NOT EXISTS 'linkrec_pw'@'%%' IDENTIFIED BY %s", (SECRET,))
        cursor.execute(f"GRANT ALL ON {name}.* TO 'linkrec_pw'@'%'")
    yield name
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        cursor.execute("DROP USER IF EXISTS 'linkrec_pw'@'%'")
    admin.close()


def leaks(text: str) -> list[str]:
    """Any part of the password longer than two characters."""
    return [SECRET[i:j] for i in range(len(SECRET)) for j in range(i + 3, len(SECRET) + 1) if SECRET[i:j] in text]


def test_passwords_with_url_characters_work_and_never_leak(special_user, ingested, warehouse_dir, ltg_model,
                                                         tmp_path, monkeypatch):
    name = special_user
    base = ["--warehouse", str(warehouse_dir), "recommend", "--wiki", "ltgwiki", "--page-ids", "18,19",
            "--now", "2026-01-01T00:00:00Z", "--json"]
    raw = run_cli(base + ["--db", f"mysql://linkrec_pw:{SECRET}@127.0.0.1:3306/{name}"])
    assert raw.exit_code == 0, raw.stderr
    assert last_json(raw.stdout)["database"]["rows_written"] >= 1
    encoded = run_cli(base + ["--db", f"mysql://linkrec_pw:{quote(SECRET, safe='')}@127.0.0.1:3306/{name}"])
    assert encoded.exit_code == 0 and not last_json(encoded.stdout)["changed"]
    option_file = tmp_path / "my.cnf"
    option_file.write_text(f'[client]\nuser=linkrec_pw\npassword="{SECRET}"\n')
    from_file = run_cli(base + ["--db", f"mysql://127.0.0.1:3306/{name}?read_default_file={option_file}"])
    assert from_file.exit_code == 0, from_file.stderr
    monkeypatch.setenv("LINKREC_DB_USER", "linkrec_pw")
    monkeypatch.setenv("LINKREC_DB_PASSWORD", SECRET)
    from_env = run_cli(base + ["--db", f"mysql://127.0.0.1:3306/{name}"])
    assert from_env.exit_code == 0, from_env.stderr
    monkeypatch.delenv("LINKREC_DB_USER")
    monkeypatch.delenv("LINKREC_DB_PASSWORD")
    # error paths: a wrong database, a bad port, a search server that does not answer
    wrong_db = run_cli(base + ["--db", f"mysql://linkrec_pw:{SECRET}@127.0.0.1:3306/{name}_nope"])
    assert wrong_db.exit_code == 1
    bad_port = run_cli(base + ["--db", f"mysql://linkrec_pw:{SECRET}@127.0.0.1:33x6/{name}"])
    assert bad_port.exit_code == 1
    no_search = run_cli(base + ["--db", f"mysql://linkrec_pw:{SECRET}@127.0.0.1:3306/{name}", "--search-url",
                                f"http://linkrec_pw:{SECRET}@127.0.0.1:{free_port()}"])
    assert no_search.exit_code == 1
    # nightly stores its state: the failing wiki's error must not carry the password either
    nightly = run_cli(["--warehouse", str(warehouse_dir), "nightly", "--wikis", "ltgwiki", "--dump-dir",
                       str(DUMPS["ltgwiki"].parent), "--now", "2026-01-02T00:00:00Z", "--json", "--db",
                       f"mysql://linkrec_pw:{SECRET}@127.0.0.1:3306/{name}_nope"])
    assert nightly.exit_code == 1
    state = (warehouse_dir / "_nightly" / "20260102.json").read_text()
    assert "Unknown database" in state or "Access denied" in state
    for result in (raw, encoded, from_file, from_env, wrong_db, bad_port, no_search, nightly):
        assert "Traceback" not in result.stderr
        assert not leaks(result.stdout) and not leaks(result.stderr), (leaks(result.stdout), leaks(result.stderr))
    assert not leaks(state)


def test_a_locked_table_ends_in_one_line_and_a_json_summary(mariadb_url, ingested, warehouse_dir, ltg_model):
    args = ["--warehouse", str(warehouse_dir), "--set", "sinks.timeout_seconds=1", "--set", "sinks.retries=1",
            "--set", "sinks.backoff_seconds=0.01", "recommend", "--wiki", "ltgwiki", "--page-ids", "18,19",
            "--now", "2026-01-01T00:00:00Z", "--db", mariadb_url, "--json"]
    assert run_cli(args).exit_code == 0  # the schema exists
    from sinks.mariadb import connection_options

    holder = pymysql.connect(**{**connection_options(mariadb_url), "autocommit": True})
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLES growthexperiments_link_recommendations WRITE, "
                           "growthexperiments_link_submissions WRITE, linkrec_state WRITE")
        started = time.time()
        locked = run_cli(args + ["--force"])
        elapsed = time.time() - started
    finally:
        holder.close()
    assert locked.exit_code == 3, locked.stderr
    line = one_error_line(locked)
    assert "stayed locked by another session" in line and "sinks.timeout_seconds" in line
    assert elapsed < 120
    summary = last_json(locked.stdout)
    assert summary["exit_code"] == 3 and "locked" in summary["error"]
    assert json.loads(json.dumps(summary))  # a JSON object even though the run failed


def test_a_missing_index_is_one_line_for_search_reconcile_and_recommend(search_server, tmp_path):
    db = f"sqlite:///{tmp_path / 'wiki.db'}"
    url = search_server.url
    for args in (["search", "--wiki", "nosuchwiki", "--search-url", url, "hasrecommendation:link"],
                 ["reconcile", "--wiki", "nosuchwiki", "--db", db, "--search-url", url],
                 ["recommend", "--wiki", "nosuchwiki", "--db", db, "--search-url", url]):
        result = run_cli(["--warehouse", str(tmp_path)] + args)
        assert result.exit_code == 1, (args, result.stderr)
        assert "the index nosuchwiki_content does not exist" in one_error_line(result)


# --- advice that names the right command; usage errors in one line ------------------------------------------


def test_a_missing_model_is_advised_the_command_that_trains_it(tmp_path):
    from pipeline.config import load_config
    from pipeline.model import ModelError
    from pipeline.model.artifacts import load_model
    from pipeline.orphans import model as orphan_model
    from pipeline.warehouse import Warehouse

    warehouse, config = Warehouse(None, str(tmp_path)), load_config("ltgwiki")
    for name, advice in ((None, "train it: linkrec train --wiki ltgwiki --task orphan_link"),
                         ("enwiki-orphan_link", "linkrec train --wiki enwiki --task orphan_link"),
                         ("nosuch", "check the name, or train a joint orphan model by that name: linkrec train "
                                    "--task orphan_link --wikis ltgwiki,… --name nosuch")):
        with pytest.raises(ModelError) as missing:
            orphan_model.load(warehouse, config, name)
        assert advice in str(missing.value) and "--wiki nosuch" not in str(missing.value)
    with pytest.raises(ModelError, match=r"check the name, or train it: .* `linkrec train --wikis A,B --name nosuch`"):
        load_model(warehouse, "nosuch")


def test_evaluating_a_wiki_never_ingested_advises_ingest_before_spark_starts(tmp_path, monkeypatch):
    from pipeline import jobs

    def no_spark(self, config):
        raise AssertionError("Spark was started")

    monkeypatch.setattr(jobs.Runtime, "spark", no_spark)
    for task in ("link", "orphan_link"):
        result = run_cli(["--warehouse", str(tmp_path), "evaluate", "--wiki", "neverwiki", "--task", task])
        assert result.exit_code == 1, result.stderr
        line = one_error_line(result)
        assert "neverwiki: nothing ingested" in line and "`linkrec ingest --wiki neverwiki --dump DUMP`" in line
        assert "linkrec train" not in line


def test_the_search_url_help_names_the_tag_each_command_writes():
    def search_url_help(command: str) -> str:
        text = " ".join(run_cli([command, "--help"]).stdout.split())
        return text[text.index("--search-url"):][:200]

    assert "set or clear the recommendation.orphan_link/exists tag" in search_url_help("orphans")
    assert "set or clear the recommendation.link/exists tag of" in search_url_help("recommend")
    assert "recommendation.<task>/exists" in search_url_help("reconcile")


def test_usage_errors_are_one_line_and_exit_2_and_help_still_works():
    for args, message in ((["embeddings", "publish"], "Missing option '--wiki'"),
                          (["nosuchcommand"], "No such command 'nosuchcommand'"),
                          (["neighbours", "--wiki", "x", "--title", "t", "-k", "0"], "Invalid value for '-k'")):
        result = run_cli(args)
        assert result.exit_code == 2, (args, result.stderr)
        assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("linkrec: error: ") and message in result.stderr
    helped = run_cli(["embeddings", "publish", "--help"])
    assert helped.exit_code == 0 and helped.stdout.startswith("Usage:") and helped.stderr == ""
    assert run_cli(["--version"]).exit_code == 0
