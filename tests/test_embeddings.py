"""Embedding snapshots: the index, publishing (to a local folder and to a real SFTP server, interrupted
and resumed, a checksum mismatch), and, with Spark, builds from the real dumps: counts, determinism,
QID keys, reading sessions, neighbours."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.embeddings import ChecksumMismatch, PublishInterrupted, ann, publish
from pipeline.warehouse import Warehouse
from tests.conftest import free_port, last_json, run_cli

# --- the index ------------------------------------------------------------------------------------------


def clustered(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // 20, d))
    x = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_exact_neighbours_are_the_highest_cosine_similarities():
    x = clustered(500, 16, 1)
    found = ann.exact_neighbours(x, x[:50], 5, block=7)
    scores = x[:50] @ x.T
    for row, hits in zip(scores, found, strict=True):
        assert list(hits) == list(np.argsort(-row, kind="stable")[:5]) or np.allclose(
            row[hits], np.sort(row)[::-1][:5])
        assert row[hits[0]] == pytest.approx(1.0)  # a vector is its own nearest


def test_the_f16_index_finds_the_exact_neighbours_and_is_smaller_than_the_vectors(tmp_path):
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    x = clustered(3000, 100, 2)
    ids = np.arange(1000, 1000 + len(x))
    pq.write_table(pa.table({"page_id": ids, "vector": list(x)}), tmp_path / "v.parquet")
    settings = ann.IndexSettings(100)  # the default settings: f16, connectivity 16
    count = ann.build_index(ds.dataset(tmp_path / "v.parquet"), settings, str(tmp_path / "i.usearch"))
    assert count == 3000
    index = ann.load_index(str(tmp_path / "i.usearch"), settings)
    truth = ann.exact_neighbours(x, x[:200], 10)
    recall = np.mean([len({p for p, _ in ann.search(index, q, 10)} & set(ids[t])) / 10
                      for q, t in zip(x[:200], truth, strict=True)])
    assert recall >= 0.95
    first = ann.search(index, x[0], 3)
    assert first[0][0] == 1000 and first[0][1] == pytest.approx(1.0, abs=0.02)
    assert os.path.getsize(tmp_path / "i.usearch") < x.nbytes
    # the same vectors in the same order give the same index, byte for byte
    ann.build_index(ds.dataset(tmp_path / "v.parquet"), settings, str(tmp_path / "j.usearch"))
    assert (tmp_path / "i.usearch").read_bytes() == (tmp_path / "j.usearch").read_bytes()


# --- publishing -----------------------------------------------------------------------------------------


def make_snapshot(root: Path, model: str, snapshot: str, sizes=(300_000, 5_000), seed=0) -> Path:
    """A built snapshot's folder as the build writes it: files, then a manifest of their checksums."""
    folder = root / "embeddings" / model / snapshot
    rng = np.random.default_rng(seed)
    files = {}
    for number, size in enumerate(sizes):
        relative = f"vectors/part-{number:05d}.parquet" if number else "index.usearch"
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
        files[relative] = {"bytes": size, "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps({"model": model, "snapshot": snapshot, "files": files}))
    return folder


def published(dest: Path, model: str, snapshot: str) -> dict:
    return {str(p.relative_to(dest / model / snapshot)): p.read_bytes()
            for p in (dest / model / snapshot).rglob("*") if p.is_file()}


def test_publish_copies_verifies_moves_latest_last_and_keeps_the_newest(tmp_path):
    warehouse = Warehouse(None, str(tmp_path))
    dest = tmp_path / "dest"
    for number, snapshot in enumerate(["20260101", "20260201", "20260301", "20260401"]):
        folder = make_snapshot(tmp_path, "xxwiki-links", snapshot, seed=number)
        result = publish.publish(warehouse, str(folder), str(dest), keep=3, chunk_bytes=65536)
        assert (dest / "xxwiki-links" / "LATEST").read_text().strip() == snapshot
        assert result["bytes_sent"] == 305_000 and result["latest"] == snapshot
    assert sorted(os.listdir(dest / "xxwiki-links")) == ["20260201", "20260301", "20260401", "LATEST"]
    assert result["removed"] == ["20260101"] and result["previous_latest"] == "20260301"
    copied = published(dest, "xxwiki-links", "20260401")
    assert copied["index.usearch"] == (folder / "index.usearch").read_bytes()
    assert json.loads(copied["manifest.json"])["snapshot"] == "20260401"
    again = publish.publish(warehouse, str(folder), str(dest), keep=3)
    assert again["bytes_sent"] == 0 and again["already_there"] == 2


def test_a_partial_copy_is_resumed_from_its_last_byte(tmp_path):
    warehouse = Warehouse(None, str(tmp_path))
    folder = make_snapshot(tmp_path, "xxwiki-links", "20260101")
    target = tmp_path / "dest" / "xxwiki-links" / "20260101" / "index.usearch.partial"
    target.parent.mkdir(parents=True)
    target.write_bytes((folder / "index.usearch").read_bytes()[:123_456])
    result = publish.publish(warehouse, str(folder), str(tmp_path / "dest"), keep=3, chunk_bytes=10_000)
    assert result["bytes_sent"] == 305_000 - 123_456
    assert published(tmp_path / "dest", "xxwiki-links", "20260101")["index.usearch"] == \
        (folder / "index.usearch").read_bytes()
    assert not target.exists()


def test_a_checksum_mismatch_leaves_latest_where_it_was(tmp_path):
    warehouse = Warehouse(None, str(tmp_path))
    dest = tmp_path / "dest"
    good = make_snapshot(tmp_path, "xxwiki-links", "20260101", seed=1)
    publish.publish(warehouse, str(good), str(dest), keep=3)
    bad = make_snapshot(tmp_path, "xxwiki-links", "20260201", seed=2)
    data = bytearray((bad / "vectors" / "part-00001.parquet").read_bytes())
    data[100] ^= 0xFF  # a bit flipped after the manifest was written
    (bad / "vectors" / "part-00001.parquet").write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match=r"20260201/vectors/part-00001.parquet: sha256"):
        publish.publish(warehouse, str(bad), str(dest), keep=3)
    assert (dest / "xxwiki-links" / "LATEST").read_text().strip() == "20260101"
    assert not (dest / "xxwiki-links" / "20260201" / "manifest.json").exists()


# --- a real SFTP server -------------------------------------------------------------------------------


class SftpServer:
    def __init__(self, base: Path, drop_after: int | None = None):
        import asyncssh

        self.root = base / "sftp-root"
        self.root.mkdir()
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        (base / "host_key").write_bytes(host_key.export_private_key())
        self.client_key = base / "client_key"
        self.client_key.write_bytes(client_key.export_private_key())
        self.client_key.chmod(0o600)
        (base / "authorized_keys").write_bytes(client_key.export_public_key())
        self.port = free_port()
        self.url = f"sftp://publisher@127.0.0.1:{self.port}/snapshots"
        command = [sys.executable, str(Path(__file__).parent / "sftp_server.py"), "--root", str(self.root),
                   "--port", str(self.port), "--host-key", str(base / "host_key"),
                   "--authorized-keys", str(base / "authorized_keys")]
        if drop_after is not None:
            command += ["--drop-after", str(drop_after)]
        self.log = open(base / "sftp.log", "wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        import socket

        while time.time() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert self.process.poll() is None, (base / "sftp.log").read_text()
            time.sleep(0.1)
        raise RuntimeError("the SFTP server did not start")

    def stop(self):
        self.process.kill()
        self.process.wait(10)
        self.log.close()


@pytest.fixture
def sftp_dropping(tmp_path):
    """An SFTP server that cuts its first connection after 100,000 bytes written."""
    server = SftpServer(tmp_path, drop_after=100_000)
    yield server
    server.stop()


def interrupted_publish(tmp_path, server):
    """A snapshot whose first publish over SFTP the server cuts off: (warehouse, folder, key, remote)."""
    warehouse = Warehouse(None, str(tmp_path))
    folder = make_snapshot(tmp_path, "xxwiki-links", "20260101", sizes=(300_000, 50_000))
    key = str(server.client_key)
    with pytest.raises(PublishInterrupted, match="a re-run resumes"):
        publish.publish(warehouse, str(folder), server.url, keep=3, chunk_bytes=32_768, ssh_key=key)
    return warehouse, folder, key, server.root / "snapshots" / "xxwiki-links"


def test_publish_over_sftp_is_interrupted_then_resumes_where_it_stopped(tmp_path, sftp_dropping):
    warehouse, folder, key, remote = interrupted_publish(tmp_path, sftp_dropping)
    assert not (remote / "LATEST").exists()
    partial = remote / "20260101" / "index.usearch.partial"
    copied_before = partial.stat().st_size
    assert 0 < copied_before < 300_000
    result = publish.publish(warehouse, str(folder), sftp_dropping.url, keep=3, chunk_bytes=32_768, ssh_key=key)
    assert result["bytes_sent"] == 350_000 - copied_before  # resumed: no byte sent twice
    assert (remote / "LATEST").read_text().strip() == "20260101"
    for relative in ("index.usearch", "vectors/part-00001.parquet"):
        assert (remote / "20260101" / relative).read_bytes() == (folder / relative).read_bytes()
    assert not partial.exists()
    # the next month's snapshot: LATEST is renamed over the old one (SFTP posix-rename)
    newer = make_snapshot(tmp_path, "xxwiki-links", "20260201", sizes=(1_000, 1_000), seed=3)
    publish.publish(warehouse, str(newer), sftp_dropping.url, keep=1, ssh_key=key)
    assert (remote / "LATEST").read_text().strip() == "20260201"
    assert sorted(p.name for p in remote.iterdir()) == ["20260201", "LATEST"]


@pytest.fixture
def sftp_server(tmp_path):
    server = SftpServer(tmp_path)
    yield server
    server.stop()


def test_a_checksum_mismatch_over_sftp_refuses_latest_and_the_cli_says_so(tmp_path, sftp_server):
    key = str(sftp_server.client_key)
    make_snapshot(tmp_path, "xxwiki-links", "20260101", sizes=(20_000, 20_000))
    cli = ["--warehouse", str(tmp_path), "embeddings", "publish", "--wiki", "xxwiki", "--to", sftp_server.url,
           "--ssh-key", key, "--json"]
    good = run_cli(cli)
    assert good.exit_code == 0 and last_json(good.stdout)["latest"] == "20260101"
    remote = sftp_server.root / "snapshots" / "xxwiki-links"
    # a file at the destination of the right size but other bytes (an earlier copy gone wrong) is copied
    # again; a file that no longer matches its manifest at the source stops the publish
    bad = make_snapshot(tmp_path, "xxwiki-links", "20260201", sizes=(20_000, 20_000), seed=5)
    (remote / "20260201").mkdir()
    (remote / "20260201" / "vectors").mkdir()
    (remote / "20260201" / "vectors" / "part-00001.parquet").write_bytes(b"x" * 20_000)
    (bad / "index.usearch").write_bytes(b"\0" * 20_000)
    refused = run_cli(cli)
    assert refused.exit_code == 1
    assert "20260201/index.usearch: sha256" in refused.stderr and "LATEST not moved" in refused.stderr
    assert (remote / "LATEST").read_text().strip() == "20260101"
    assert (remote / "20260201" / "vectors" / "part-00001.parquet").read_bytes() == \
        (bad / "vectors" / "part-00001.parquet").read_bytes()


# --- builds from the real dumps (Spark) -----------------------------------------------------------------


def build(warehouse_dir, wiki, *extra):
    result = run_cli(["--warehouse", str(warehouse_dir), "embeddings", "build", "--wiki", wiki, "--json", *extra])
    assert result.exit_code == 0, result.stderr
    return last_json(result.stdout)


def vectors_of(folder: Path):
    import pyarrow.parquet as pq

    return pq.read_table(folder / "vectors").to_pylist()


@pytest.fixture(scope="module")
def ltg_links(ingested, warehouse_dir):
    return build(warehouse_dir, "ltgwiki", "--force")


def test_every_article_is_embedded_or_counted_and_the_snapshot_is_checksummed(ltg_links, warehouse_dir, spark):
    counts = ltg_links["counts"]
    assert counts["vectors"] + sum(counts["without_vector"].values()) == counts["articles"] == 903
    folder = Path(ltg_links["path"])
    rows = vectors_of(folder)
    assert len(rows) == counts["vectors"] > 600 and set(rows[0]) == {"key", "page_id", "title", "vector"}
    assert all(r["key"] == f"ltgwiki:{r['page_id']}" for r in rows)
    assert all(abs(np.linalg.norm(r["vector"]) - 1) < 1e-4 for r in rows) and len(rows[0]["vector"]) == 100
    for relative, entry in ltg_links["files"].items():
        data = (folder / relative).read_bytes()
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
    # an article nobody links to still has a vector, from its own out-links
    links = spark.read.parquet(str(warehouse_dir / "links" / "wiki=ltgwiki"))
    linked = {r.resolved_page_id for r in links.where("kind = 'link' AND resolved_namespace = 0")
              .select("resolved_page_id").distinct().collect()}
    orphans_with_vector = [r for r in rows if r["page_id"] not in linked]
    assert orphans_with_vector
    # an article has a vector exactly when it links to another article (min count 1: every such key is in
    # the vocabulary); the rest are counted as having no out-links
    sources = {r.source_page_id for r in links.where(
        "kind = 'link' AND resolved_namespace = 0 AND resolved_page_id != source_page_id")
        .select("source_page_id").distinct().collect()}
    assert {r["page_id"] for r in rows} == sources
    assert counts["without_vector"] == {"no_out_links": 903 - len(sources)}


def test_two_builds_of_the_same_input_give_identical_vectors_and_index(ltg_links, warehouse_dir):
    again = build(warehouse_dir, "ltgwiki")
    assert again["reused"] is True  # same input, same settings: nothing to do
    forced = build(warehouse_dir, "ltgwiki", "--force")
    assert forced["reused"] is False and forced["built_at"] >= ltg_links["built_at"]
    assert forced["files"] == ltg_links["files"]  # byte-identical vectors and index


def test_neighbours_come_from_the_snapshot_and_from_where_it_was_published(ltg_links, warehouse_dir, tmp_path):
    local = run_cli(["--warehouse", str(warehouse_dir), "neighbours", "--wiki", "ltgwiki", "--title", "latgola",
                     "-k", "5", "--json"])
    assert local.exit_code == 0, local.stderr
    found = last_json(local.stdout)
    assert found["title"] == "Latgola" and len(found["neighbours"]) == 5
    sims = [n["similarity"] for n in found["neighbours"]]
    assert sims == sorted(sims, reverse=True) and found["page_id"] not in {n["page_id"] for n in found["neighbours"]}
    rows = {r["page_id"]: np.asarray(r["vector"]) for r in vectors_of(Path(ltg_links["path"]))}
    query = rows[found["page_id"]]
    fifth = sorted((float(query @ v) for pid, v in rows.items() if pid != found["page_id"]), reverse=True)[4]
    # as good as the exact top 5 (ties allowed: articles with the same out-links share a vector)
    assert sum(float(query @ rows[n["page_id"]]) >= fifth - 1e-3 for n in found["neighbours"]) >= 4
    assert all(abs(n["similarity"] - float(query @ rows[n["page_id"]])) < 0.01 for n in found["neighbours"])
    pub = run_cli(["--warehouse", str(warehouse_dir), "embeddings", "publish", "--wiki", "ltgwiki", "--to",
                   str(tmp_path / "pub"), "--json"])
    assert pub.exit_code == 0 and last_json(pub.stdout)["latest"] == ltg_links["snapshot"]
    remote = run_cli(["--warehouse", str(warehouse_dir), "neighbours", "--wiki", "ltgwiki", "--title", "Latgola",
                      "-k", "5", "--from", str(tmp_path / "pub"), "--json"])
    assert last_json(remote.stdout)["neighbours"] == found["neighbours"]
    missing = run_cli(["--warehouse", str(warehouse_dir), "neighbours", "--wiki", "ltgwiki", "--title", "No such page"])
    assert missing.exit_code == 1 and "'No such page': no such article with a vector" in missing.stderr


def test_keys_are_qids_where_known_and_the_rest_are_counted(ltg_links, warehouse_dir, tmp_path):
    rows = sorted(vectors_of(Path(ltg_links["path"])), key=lambda r: r["page_id"])
    given = {r["page_id"]: f"Q{1000 + i}" for i, r in enumerate(rows[:300])}
    table = tmp_path / "qids.tsv"
    table.write_text("".join(f"{pid}\t{qid}\n" for pid, qid in given.items()) + "not-a-number\tQ5\n")
    summary = build(warehouse_dir, "ltgwiki", "--qids", str(table))
    assert summary["counts"]["without_qid"] == 903 - 300
    keyed = {r["page_id"]: r["key"] for r in vectors_of(Path(summary["path"]))}
    assert all(keyed[pid] == qid for pid, qid in given.items())
    assert all(key == f"ltgwiki:{pid}" for pid, key in keyed.items() if pid not in given)
    build(warehouse_dir, "ltgwiki")  # back to the snapshot the other tests read


def test_the_reading_model_embeds_the_pages_of_sessions(ingested, warehouse_dir, tmp_path, spark):
    import pyarrow as pa
    import pyarrow.parquet as pq

    links = spark.read.parquet(str(warehouse_dir / "links" / "wiki=ltgwiki"))
    pairs = sorted((r.source_page_id, r.resolved_page_id) for r in links.where(
        "kind = 'link' AND target_class = 'article'").select("source_page_id", "resolved_page_id").distinct().collect())
    # sessions that follow links, as readers do; one page read twice in a row; one unknown page id
    sessions = [[a, b, b] for a, b in pairs[:3000]] + [[pairs[0][0], 999_999_999]]
    pq.write_table(pa.table({"session_id": list(range(len(sessions))), "page_ids": sessions}),
                   tmp_path / "sessions.parquet")
    summary = build(warehouse_dir, "ltgwiki", "--model", "reading", "--sessions", str(tmp_path / "sessions.parquet"))
    counts = summary["counts"]
    assert summary["model"] == "ltgwiki-reading" and counts["documents"] == len(sessions) > 2000
    assert counts["session_page_views"] == {"kept": 3 * (len(sessions) - 1) + 1, "unknown_page": 1}
    read = {p for s in sessions for p in s}
    assert counts["vectors"] == len(read & {r["page_id"] for r in vectors_of(Path(summary["path"]))}) > 300
    assert counts["without_vector"]["not_read_in_any_session"] == 903 - counts["vectors"]
    wrong = run_cli(["--warehouse", str(warehouse_dir), "embeddings", "build", "--wiki", "ltgwiki", "--model",
                     "reading", "--sessions", str(DUMP_TEXT)])
    assert wrong.exit_code == 1 and str(DUMP_TEXT) in wrong.stderr


DUMP_TEXT = Path(__file__).parent / "fixtures" / "cases" / "ltgwiki.mwtest"


# --- publishing: a rebuilt snapshot, unusable destinations, usage errors ----------------------------------


def error_line(result) -> str:
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("linkrec: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_partial_left_by_an_earlier_build_of_the_snapshot_is_started_over(tmp_path, sftp_dropping):
    warehouse, folder, key, remote = interrupted_publish(tmp_path, sftp_dropping)
    assert 0 < (remote / "20260101" / "index.usearch.partial").stat().st_size < 300_000
    # the snapshot rebuilt with --force: the same names, other bytes
    folder = make_snapshot(tmp_path, "xxwiki-links", "20260101", sizes=(300_000, 50_000), seed=7)
    result = publish.publish(warehouse, str(folder), sftp_dropping.url, keep=3, chunk_bytes=32_768, ssh_key=key)
    assert result["bytes_sent"] == 350_000 and result["latest"] == "20260101"
    for relative in ("index.usearch", "vectors/part-00001.parquet"):
        assert (remote / "20260101" / relative).read_bytes() == (folder / relative).read_bytes()
    assert (remote / "LATEST").read_text().strip() == "20260101"
    assert sorted(published(remote.parent, "xxwiki-links", "20260101")) == [
        "index.usearch", "manifest.json", "vectors/part-00001.parquet"]  # no partial nor its stamp left


def test_a_partial_of_other_bytes_without_a_stamp_is_started_over(tmp_path):
    warehouse = Warehouse(None, str(tmp_path))
    folder = make_snapshot(tmp_path, "xxwiki-links", "20260101")
    partial = tmp_path / "dest" / "xxwiki-links" / "20260101" / "index.usearch.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\1" * 123_456)  # left by an earlier build (or an older linkrec)
    result = publish.publish(warehouse, str(folder), str(tmp_path / "dest"), keep=3, chunk_bytes=10_000)
    assert result["bytes_sent"] == 305_000
    assert published(tmp_path / "dest", "xxwiki-links", "20260101")["index.usearch"] == \
        (folder / "index.usearch").read_bytes()


def test_publishing_where_nothing_can_be_written_is_exit_1_naming_the_target(tmp_path):
    make_snapshot(tmp_path, "xxwiki-links", "20260101", sizes=(1_000, 1_000))
    (tmp_path / "file.txt").write_text("a file, not a folder")
    target = str(tmp_path / "file.txt" / "sub")
    result = run_cli(["--warehouse", str(tmp_path), "embeddings", "publish", "--wiki", "xxwiki", "--to", target])
    assert result.exit_code == 1, result.stderr
    line = error_line(result)
    assert line.startswith(f"linkrec: error: --to {target}: cannot write there") and "Not a directory" in line
    assert "re-run" not in line


def test_neighbours_from_an_unreachable_server_names_the_from_option(tmp_path):
    url = f"sftp://reader@127.0.0.1:{free_port()}/snapshots"
    result = run_cli(["--warehouse", str(tmp_path), "neighbours", "--wiki", "xxwiki", "--title", "X", "--from", url])
    assert result.exit_code == 3, result.stderr
    line = error_line(result)
    assert line.startswith(f"linkrec: error: --from {url}: cannot connect") and "--to" not in line


def test_the_reading_model_without_sessions_is_a_usage_error_before_spark_starts(tmp_path, monkeypatch):
    from pipeline import jobs

    def no_spark(self, config):
        raise AssertionError("Spark was started")

    monkeypatch.setattr(jobs.Runtime, "spark", no_spark)
    result = run_cli(["--warehouse", str(tmp_path), "embeddings", "build", "--wiki", "xxwiki", "--model", "reading"])
    assert result.exit_code == 2, result.stderr
    assert "--model reading needs --sessions" in error_line(result)


def test_publishing_when_nothing_is_built_says_so_in_one_clean_line(tmp_path):
    base = ["--warehouse", str(tmp_path), "embeddings", "publish", "--wiki", "xxwiki", "--to", str(tmp_path / "pub")]
    result = run_cli(base)
    assert result.exit_code == 1
    line = error_line(result)
    assert f"xxwiki-links: no built snapshot under {tmp_path} (built: none)" in line and "  " not in line
    named = error_line(run_cli(base + ["--snapshot", "20990101"]))
    assert "xxwiki-links: no built snapshot 20990101 under" in named


def test_spark_ml_skips_a_native_blas_that_is_not_installed_and_prints_nothing(tmp_path, monkeypatch):
    """The netlib-blas dlopen failure is printed by native code on the JVM's stderr (not through log4j):
    the build sets the property that skips the attempt; a plain JVM with that property stays silent."""
    import shutil
    from types import SimpleNamespace

    from pipeline.embeddings import vectors

    properties = {}
    system = SimpleNamespace(getProperty=properties.get, setProperty=properties.__setitem__)
    session = SimpleNamespace(_jvm=SimpleNamespace(java=SimpleNamespace(lang=SimpleNamespace(System=system))))
    monkeypatch.setattr(vectors, "NATIVE_BLAS", "libnosuchblas.so.3")
    assert vectors.quiet_native_blas(session) is True
    assert properties == {"dev.ludovic.netlib.blas.allowNative": "false"}
    assert vectors.quiet_native_blas(session) is False  # an operator's own setting is kept
    if shutil.which("java") is None:
        pytest.skip("no java")
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    classpath = os.pathsep.join(str(p) for p in [*jars.glob("blas-*.jar"), *jars.glob("arpack_combined*.jar")])
    (tmp_path / "Probe.java").write_text("public class Probe { public static void main(String[] a) { "
                                         "dev.ludovic.netlib.blas.BLAS.getInstance(); } }")

    def probe(*flags):
        return subprocess.run(["java", *flags, "-cp", classpath, str(tmp_path / "Probe.java")], capture_output=True,
                              text=True, timeout=120)

    quiet = probe(*(f"-D{key}={value}" for key, value in properties.items()))
    assert quiet.returncode == 0 and "netlib-blas" not in quiet.stderr, quiet.stderr
    try:
        import ctypes

        ctypes.CDLL("libblas.so.3")
    except OSError:  # no native BLAS here: without the property the JVM prints the failed dlopen
        assert "netlib-blas: JNI_OnLoad: dlopen(libblas.so.3) failed" in probe().stderr
