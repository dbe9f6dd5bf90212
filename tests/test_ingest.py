"""`linkrec ingest` on every shared dump with a real local Spark: counts, truncation, tables,
redirect resolution, link classification, table input, and clear errors."""

from __future__ import annotations

import bz2
import json
import re

import pytest
from pyspark.sql import functions as F

from tests.conftest import DUMPS, TRUNCATED, last_json, run_cli
from tests.independent_count import count_pages


@pytest.mark.parametrize("wiki", sorted(DUMPS))
def test_counts_equal_an_independent_count(ingested, wiki):
    code, summary, stderr = ingested[wiki]
    expected = count_pages(DUMPS[wiki])
    assert summary["pages"] == expected["pages"]
    assert summary["pages_per_namespace"] == expected["per_namespace"]
    assert summary["ns0_articles"] == expected["ns0_articles"]
    assert summary["ns0_redirects"] == expected["ns0_redirects"]
    assert set(summary) >= {"wiki", "pages", "pages_per_namespace", "ns0_articles", "ns0_redirects",
                            "truncated", "seconds"}
    if wiki in TRUNCATED:
        assert summary["truncated"] and summary["problems"] == 1
        assert code == 3  # incomplete without --allow-truncated, after writing every complete page
        message = [line for line in stderr.splitlines() if line.startswith("linkrec: truncated:")]
        assert len(message) == 1 and DUMPS[wiki].name in message[0] and "(id " in message[0]
    else:
        assert code == 0 and not summary["truncated"] and summary["problems"] == 0


def test_readme_lists_the_counts():
    """The README's table of the shared dumps agrees with an independent count (not with our reader)."""
    readme = (DUMPS["enwiki"].parents[3] / "README.md").read_text()
    for wiki, path in DUMPS.items():
        expected = count_pages(path)
        row = f"| {wiki} | {expected['pages']} | {expected['ns0_articles']} | {expected['ns0_redirects']} |"
        assert row in readme, row


def test_tables_are_partitioned_by_wiki_and_snapshot(spark, ingested, warehouse_dir):
    pages = spark.read.parquet(str(warehouse_dir / "pages"))
    per_wiki = {r["wiki"]: r["count"] for r in pages.groupBy("wiki").count().collect()}
    assert per_wiki == {wiki: summary["pages"] for wiki, (_, summary, _) in ingested.items()}
    snapshots = {r["wiki"]: str(r["snapshot"]) for r in pages.select("wiki", "snapshot").distinct().collect()}
    assert snapshots["ltgwiki"] == "20170901"  # from the file name
    assert snapshots["jawiki"] == ingested["jawiki"][1]["snapshot"]
    assert re.fullmatch(r"20[0-9]{6}", snapshots["jawiki"])  # from the newest revision
    for table in ("titles", "links"):
        assert (warehouse_dir / table / "wiki=hywiki" / f"snapshot={snapshots['hywiki']}").is_dir()
    assert (warehouse_dir / "_manifests" / "hywiki.json").is_file()


def links_table(spark, warehouse_dir, wiki):
    return spark.read.parquet(str(warehouse_dir / "links")).where(F.col("wiki") == wiki)


# (wiki, source article, offset, anchor, target_class, resolved article) read off the links table
GOLDEN_RESOLVED = [
    ("jawiki", "アンパサンド", 7813, "プログラミング言語", "article", "プログラミング言語"),
    ("bnwiki", "বাংলা ভাষা", 5985, "বাংলাদেশের", "article", "বাংলাদেশ"),
    ("bnwiki", "বাংলা ভাষা", 52757, "বাংলা বর্ণমালা", "redirect", "বাংলা লিপি"),
    ("bnwiki", "বাংলা ভাষা", 30590, "শ্রীলংকার", "redirect", None),
    ("enwiki", "Anarchism", 76969, "agrarian", "article", "Agriculture"),
    ("jawiki", "ヨーロッパ", 15844, "地学", "redirect", None),
]


@pytest.mark.parametrize("wiki, source, offset, anchor, target_class, resolved", GOLDEN_RESOLVED)
def test_golden_links_with_resolved_targets(spark, ingested, warehouse_dir, wiki, source, offset, anchor,
                                            target_class, resolved):
    row = links_table(spark, warehouse_dir, wiki).where(
        (F.col("source_title") == source) & (F.col("offset") == offset)).first()
    assert row is not None
    assert (row.anchor, row.target_class, row.resolved_title) == (anchor, target_class, resolved)
    pages = spark.read.parquet(str(warehouse_dir / "pages")).where(
        (F.col("wiki") == wiki) & (F.col("page_id") == row.source_page_id)).first()
    assert pages.wikitext[offset:offset + row.length].startswith("[[")


def test_link_classes_agree_with_the_pages(spark, ingested, warehouse_dir):
    links = links_table(spark, warehouse_dir, "mrwiki").where(F.col("kind") == "link")
    pages = spark.read.parquet(str(warehouse_dir / "pages")).where(F.col("wiki") == "mrwiki")
    titles = {r.title: (r.namespace, r.redirect_target) for r in pages.select("title", "namespace",
                                                                              "redirect_target").collect()}
    for row in links.select("target_title", "target_class").distinct().collect():
        if row.target_class == "missing":
            assert row.target_title not in titles
        elif row.target_class == "article":
            assert titles[row.target_title] == (0, None)
        elif row.target_class == "redirect":
            assert titles[row.target_title][1] is not None


REDIRECT_PAGES = [
    ("Chain one", 900001, "Chain two"), ("Chain two", 900002, "Anarchism"),
    ("Loop one", 900003, "Loop two"), ("Loop two", 900004, "Loop one"),
    ("Self", 900005, "Self"), ("Broken", 900006, "No such page anywhere"),
]


def redirect_page(title, page_id, target):
    return (f"  <page>\n    <title>{title}</title>\n    <ns>0</ns>\n    <id>{page_id}</id>\n"
            f"    <redirect title=\"{target}\" />\n    <revision>\n      <id>{page_id + 1000}</id>\n"
            f"      <timestamp>2020-01-01T00:00:00Z</timestamp>\n"
            f"      <text bytes=\"1\" xml:space=\"preserve\">#REDIRECT [[{target}]]</text>\n"
            f"    </revision>\n  </page>\n").encode()


def test_redirect_chains_resolve_and_cycles_are_reported(spark, tmp_path):
    """Real enwiki pages plus redirects that form a chain, a loop, a self-loop and a dead end."""
    data = bz2.decompress(DUMPS["enwiki"].read_bytes())
    cut = data.rindex(b"</mediawiki>")
    extra = b"".join(redirect_page(*row) for row in REDIRECT_PAGES)
    dump = tmp_path / "enwiki-20200101-chains.xml.bz2"
    dump.write_bytes(bz2.compress(data[:cut] + extra + data[cut:]))
    result = run_cli(["--warehouse", str(tmp_path / "wh"), "ingest", "--wiki", "enwiki", "--dump", str(dump),
                      "--json"])
    assert result.exit_code == 0
    summary = last_json(result.stdout)
    assert sorted(summary["derived"]["redirect_cycles"]) == ["Loop one", "Loop two", "Self"]
    titles = spark.read.parquet(str(tmp_path / "wh" / "titles"))
    got = {r.title: (r.status, r.hops, r.resolved_title) for r in
           titles.where(F.col("page_id") > 900000).collect()}
    assert got == {
        "Chain one": ("resolved", 2, "Anarchism"), "Chain two": ("resolved", 1, "Anarchism"),
        "Loop one": ("cycle", 2, None), "Loop two": ("cycle", 2, None), "Self": ("cycle", 1, None),
        "Broken": ("broken", 1, None),
    }


def test_table_input_gives_the_same_tables_as_the_dump(spark, ingested, warehouse_dir, tmp_path):
    """The data-lake layout: wiki_db, page_namespace, page_title with underscores and no prefix."""
    wiki = "ltgwiki"
    snapshot = ingested[wiki][1]["snapshot"]
    pages = spark.read.parquet(str(warehouse_dir / "pages" / f"wiki={wiki}" / f"snapshot={snapshot}"))
    bare = F.regexp_replace(F.regexp_replace("title", "^[^:]+:", ""), " ", "_")
    lake = pages.select(
        F.lit(wiki).alias("wiki_db"), "page_id", F.col("namespace").alias("page_namespace"),
        F.when(F.col("namespace") == 0, F.regexp_replace("title", " ", "_")).otherwise(bare).alias("page_title"),
        F.col("redirect_target").alias("page_redirect_title"), "revision_id",
        F.date_format("revision_timestamp", "yyyy-MM-dd'T'HH:mm:ss'Z'").alias("revision_timestamp"),
        F.col("wikitext").alias("revision_text"))
    other_wiki = lake.limit(5).withColumn("wiki_db", F.lit("xxwiki"))
    lake.unionByName(other_wiki).write.parquet(str(tmp_path / "lake"))
    siteinfo = warehouse_dir / "siteinfo" / f"wiki={wiki}" / f"snapshot={snapshot}" / "siteinfo.json"
    result = run_cli(["--warehouse", str(tmp_path / "wh"), "ingest", "--wiki", wiki, "--table",
                      str(tmp_path / "lake"), "--siteinfo", str(siteinfo), "--snapshot", snapshot, "--json"])
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["pages"] == ingested[wiki][1]["pages"]
    assert summary["derived"] == ingested[wiki][1]["derived"]
    for table in ("pages", "titles", "links"):
        from_dump = spark.read.parquet(str(warehouse_dir / table / f"wiki={wiki}" / f"snapshot={snapshot}"))
        from_table = spark.read.parquet(str(tmp_path / "wh" / table / f"wiki={wiki}" / f"snapshot={snapshot}"))
        assert from_dump.exceptAll(from_table).count() == 0, table
        assert from_table.exceptAll(from_dump).count() == 0, table


def test_allow_truncated_keeps_exit_zero(tmp_path, ingested):
    result = run_cli(["--warehouse", str(tmp_path), "ingest", "--wiki", "jawiki", "--dump",
                      str(DUMPS["jawiki"]), "--allow-truncated", "--json"])
    assert result.exit_code == 0
    assert last_json(result.stdout)["pages"] == ingested["jawiki"][1]["pages"]
    assert "linkrec: truncated:" in result.stderr
    assert "linkrec: warning:" not in result.stderr  # 100 kB: no warning below the configured size


def test_a_big_single_stream_dump_gets_a_warning_that_says_what_to_use(tmp_path, ingested):
    result = run_cli(["--warehouse", str(tmp_path), "--set", "ingest.single_stream_warning_bytes=50000", "ingest",
                      "--wiki", "jawiki", "--dump", str(DUMPS["jawiki"]), "--allow-truncated", "--json"])
    assert result.exit_code == 0
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("linkrec: warning:")]
    assert "single-stream xz" in warning and "multistream" in warning and "--table" in warning
    assert last_json(result.stdout)["warnings"] == [warning[len("linkrec: warning: "):]]


@pytest.mark.slow  # a whole ingestion in Spark
def test_malformed_page_exits_non_zero_and_keeps_the_rest(tmp_path):
    data = bz2.decompress(DUMPS["enwiki"].read_bytes())
    broken = data.replace(b"<title>Albedo</title>", b"<title>Albedo</titel>", 1)
    dump = tmp_path / "enwiki-20200101-broken.xml"
    dump.write_bytes(broken)
    result = run_cli(["--warehouse", str(tmp_path / "wh"), "ingest", "--wiki", "enwiki", "--dump", str(dump),
                      "--allow-truncated", "--json"])
    assert result.exit_code == 3  # not a truncation: --allow-truncated does not excuse it
    assert last_json(result.stdout)["pages"] == count_pages(DUMPS["enwiki"])["pages"] - 1
    assert "linkrec: malformed: enwiki-20200101-broken.xml: byte " in result.stderr
    assert "'Albedo' (id 39)" in result.stderr, result.stderr


@pytest.mark.parametrize("setup, args, message", [
    (None, ["--dump", "/nonexistent/enwiki.xml.bz2"], "/nonexistent/enwiki.xml.bz2: no such file"),
    (b"", ["--dump", "{path}"], "the file is empty"),
    (b"just some text", ["--dump", "{path}"], "not a MediaWiki XML dump"),
    (None, [], "give exactly one of --dump PATH or --table PATH"),
    (None, ["--dump", str(DUMPS["jawiki"])], "this is a dump of jawiki, not enwiki"),
    (None, ["--table", "/nonexistent/table"], "cannot read as a Parquet table"),
])
def test_bad_input_gives_one_clear_line(spark, tmp_path, setup, args, message):
    path = tmp_path / "input.xml"
    if setup is not None:
        path.write_bytes(setup)
    args = [a.replace("{path}", str(path)) for a in args]
    result = run_cli(["--quiet", "--warehouse", str(tmp_path / "wh"), "ingest", "--wiki", "enwiki", *args])
    assert result.exit_code in (1, 2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_run_on_an_already_ingested_truncated_dump_says_what_was_lost(ingested, warehouse_dir):
    result = run_cli(["--warehouse", str(warehouse_dir), "run", "--wiki", "hywiki", "--dump", str(DUMPS["hywiki"])])
    assert result.exit_code == 3
    assert "is already ingested" in result.stderr
    assert "was ingested with 1 problem(s), the input is truncated" in result.stderr


def test_an_incomplete_read_never_replaces_a_complete_snapshot(spark, tmp_path, ingested):
    warehouse = tmp_path / "wh"
    complete = run_cli(["--warehouse", str(warehouse), "ingest", "--wiki", "ltgwiki", "--dump", str(DUMPS["ltgwiki"]),
                        "--json"])
    assert complete.exit_code == 0
    pages = last_json(complete.stdout)["pages"]
    cut = tmp_path / "later" / DUMPS["ltgwiki"].name  # the same date: the same snapshot name
    cut.parent.mkdir()
    data = DUMPS["ltgwiki"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    result = run_cli(["--warehouse", str(warehouse), "ingest", "--wiki", "ltgwiki", "--dump", str(cut), "--json"])
    assert result.exit_code == 3
    summary = last_json(result.stdout)
    assert 0 < summary["pages"] < pages and summary["current"] is False
    assert summary["snapshot"] == "20170901-incomplete"
    assert "snapshot 20170901 is complete and stays current" in result.stderr
    manifest = json.loads((warehouse / "_manifests" / "ltgwiki.json").read_text())
    assert manifest["current_snapshot"] == "20170901"
    assert manifest["snapshots"]["20170901"]["pages"] == pages
    table = warehouse / "pages" / "wiki=ltgwiki" / "snapshot=20170901"
    assert spark.read.parquet(str(table)).count() == pages
    # a later run on the cut file does not take it for the current snapshot's input
    again = run_cli(["--warehouse", str(warehouse), "run", "--wiki", "ltgwiki", "--dump", str(cut), "--dry-run"])
    assert again.exit_code == 3 and "already ingested" not in again.stderr
    assert json.loads((warehouse / "_manifests" / "ltgwiki.json").read_text())["current_snapshot"] == "20170901"
