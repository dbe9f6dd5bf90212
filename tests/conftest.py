"""Shared fixtures: one local SparkSession for the whole test session, the real dumps, and one
ingestion of every dump into a temporary warehouse that several test modules read."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

FIXTURES = Path(__file__).parent / "fixtures"
DUMPS = {
    "ltgwiki": FIXTURES / "dumps" / "ltgwiki-20170901-pages-articles.xml.bz2",
    "enwiki": FIXTURES / "dumps" / "enwiki-sample-pages-articles.xml.bz2",
    "bnwiki": FIXTURES / "dumps" / "bnwiki-truncated-100k.xml.xz",
    "elwiki": FIXTURES / "dumps" / "elwiki-truncated-100k.xml.xz",
    "hywiki": FIXTURES / "dumps" / "hywiki-truncated-100k.xml.xz",
    "jawiki": FIXTURES / "dumps" / "jawiki-truncated-100k.xml.xz",
    "mrwiki": FIXTURES / "dumps" / "mrwiki-truncated-100k.xml.xz",
}
TRUNCATED = {"bnwiki", "elwiki", "hywiki", "jawiki", "mrwiki"}


@pytest.fixture(scope="session")
def spark():
    from pipeline.config import SparkConfig
    from pipeline.spark import get_spark

    session = get_spark(SparkConfig(master="local[2]", driver_memory="3g", shuffle_partitions=4))
    yield session
    session.stop()


def run_cli(args: list[str]):
    """Run `linkrec ARGS` in this process (sharing the session's Spark); return the click result."""
    from pipeline.cli import main

    return CliRunner().invoke(main, args, catch_exceptions=False)


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def warehouse_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("warehouse")


@pytest.fixture(scope="session")
def ingested(spark, warehouse_dir) -> dict[str, tuple[int, dict, str]]:
    """Every shared dump ingested once: wiki → (exit code, JSON summary, stderr)."""
    out = {}
    for wiki, path in DUMPS.items():
        result = run_cli(["--warehouse", str(warehouse_dir), "ingest", "--wiki", wiki, "--dump", str(path),
                          "--json"])
        out[wiki] = (result.exit_code, last_json(result.stdout), result.stderr)
    return out


@pytest.fixture(scope="session")
def ltg_model(ingested, warehouse_dir) -> bytes:
    """The ltgwiki model, trained once for the session (the bytes of its XGBoost JSON)."""
    result = run_cli(["--warehouse", str(warehouse_dir), "train", "--wiki", "ltgwiki", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    return (warehouse_dir / "models" / "ltgwiki" / summary["version"] / "model.json").read_bytes()


MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def mariadb_admin():
    import pymysql
    return pymysql.connect(**MARIADB, autocommit=True)


@pytest.fixture(scope="session")
def mariadb_server():
    """A reachable MariaDB at 127.0.0.1:3306 (root, no password); started or installed if none runs."""
    import pymysql
    try:
        mariadb_admin().close()
    except pymysql.err.OperationalError:
        subprocess.run(["bash", str(Path(__file__).parent.parent / ".ci" / "machine.sh")], check=True)
        mariadb_admin().close()
    return MARIADB


@pytest.fixture
def mariadb_url(mariadb_server):
    """A fresh database for one test: its mysql:// URL."""
    name = f"linkrec_t_{uuid.uuid4().hex[:10]}"
    admin = mariadb_admin()
    admin.cursor().execute(f"CREATE DATABASE {name}")
    yield f"mysql://root@127.0.0.1:3306/{name}"
    admin.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
    admin.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
        return True
    except OSError:
        return False


class SearchServer:
    """A real Elasticsearch-compatible server process (noida-db) that a test may stop and start again."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> None:
        log = open(self.data_dir.parent / f"noida-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            ["noida-db", "start", "--only", "elasticsearch", "--host", "127.0.0.1", "--elasticsearch-port",
             str(self.port), "--data-dir", str(self.data_dir)], stdout=log, stderr=log, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if _answers(self.url):
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"noida-db exited with {self.process.returncode}; see {log.name}")
            time.sleep(0.2)
        raise RuntimeError(f"noida-db did not answer on {self.url}")

    def stop(self) -> None:
        if self.process is not None:
            # The noida-db script runs the server as a child: stop the whole process group.
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(20)
                    break
                except subprocess.TimeoutExpired:
                    continue
            deadline = time.time() + 20
            while time.time() < deadline and _answers(self.url):
                time.sleep(0.2)
        self.process = None


@pytest.fixture(scope="session")
def search_server(tmp_path_factory):
    server = SearchServer(tmp_path_factory.mktemp("noida") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_search_server(tmp_path):
    """A server of this test's own, which it may stop in the middle of a run."""
    server = SearchServer(tmp_path / "noida")
    server.start()
    yield server
    server.stop()


SLOW_FIXTURES = {"spark", "ingested", "ltg_model", "search_server", "own_search_server", "standalone_cluster"}


def pytest_collection_modifyitems(items):
    """A test that needs Spark, the ingested dumps, a trained model or a server process is slow:
    `pytest -m "not slow"` runs the rest in about a minute."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
