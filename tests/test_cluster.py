"""A real distributed engine: a Spark standalone cluster (a master and a worker process from the pip
pyspark, started and stopped here) runs `linkrec run` on ltgwiki from a relative dump path, and
writes exactly the rows local mode writes, with the same model version."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import DUMPS, free_port, last_json, run_cli

PROJECT = Path(__file__).resolve().parent.parent


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    import pyspark

    home = Path(pyspark.__file__).parent
    folder = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}
    port = free_port()
    processes = []

    def start(name, *args):
        log = open(folder / f"{name}.log", "ab")
        processes.append(subprocess.Popen([str(home / "bin" / "spark-class"), *args], env=env, stdout=log,
                                          stderr=log, start_new_session=True))

    try:
        start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
              "--webui-port", str(free_port()))
        _wait_for(lambda: _listening(port), 60, "the master")
        start("worker", "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}", "--host", "127.0.0.1",
              "--cores", "2", "--memory", "2g", "--webui-port", str(free_port()), "--work-dir", str(folder / "work"))
        _wait_for(lambda: "Registering worker" in (folder / "master.log").read_text(errors="replace"), 60,
                  "the worker to register")
        yield f"spark://127.0.0.1:{port}"
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)


def rows(db: Path) -> dict:
    with sqlite3.connect(db) as connection:
        found = connection.execute("SELECT gelr_revision, gelr_page, gelr_data FROM "
                                   "growthexperiments_link_recommendations").fetchall()
    return {revision: (page, data) for revision, page, data in found}


@pytest.mark.slow
def test_standalone_cluster_writes_exactly_the_rows_of_local_mode(standalone_cluster, ingested, warehouse_dir,
                                                                   ltg_model, tmp_path):
    now = "2026-01-01T00:00:00Z"
    relative_dump = os.path.relpath(DUMPS["ltgwiki"], PROJECT)
    cluster_db = tmp_path / "cluster.db"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--warehouse", str(tmp_path / "warehouse"), "--quiet",
         "--set", f"spark.master={standalone_cluster}", "--set", "spark.driver_memory=1g",
         "--set", "orphans.enabled=false",  # the orphan task on a cluster adds minutes, not coverage
         "run", "--wiki", "ltgwiki", "--dump", relative_dump, "--now", now, "--db", f"sqlite:///{cluster_db}",
         "--json"],
        cwd=PROJECT, capture_output=True, text=True, timeout=900, env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    assert done.returncode == 0, done.stderr[-3000:]
    on_cluster = last_json(done.stdout)
    local_db = tmp_path / "local.db"
    local = run_cli(["--warehouse", str(warehouse_dir), "recommend", "--wiki", "ltgwiki", "--now", now,
                     "--db", f"sqlite:///{local_db}", "--json"])
    assert local.exit_code == 0, local.stderr
    assert on_cluster["train"]["version"] == last_json(local.stdout)["version"]  # the version ignores the master
    assert rows(cluster_db) == rows(local_db)
    assert sum(1 for _, data in rows(cluster_db).values() if data is not None) == 145  # 148 before the case rule
