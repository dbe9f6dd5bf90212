"""Shared fixtures: one local SparkSession for the whole test session, the real dumps, and one
ingestion of every dump into a temporary warehouse that several test modules read."""

from __future__ import annotations

import json
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
