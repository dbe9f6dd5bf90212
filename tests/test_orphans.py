"""The orphans table (issue 13's first stage) on a real dump, checked against an independent count from
the links and titles tables, and with a pagelinks input."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import load_config
from pipeline.orphans import OrphanError
from pipeline.orphans import table as orphan_table
from pipeline.warehouse import Warehouse


@pytest.fixture(scope="module")
def ltg(ingested, spark, warehouse_dir):
    warehouse = Warehouse(spark, str(warehouse_dir))
    config = load_config("ltgwiki")
    summary = orphan_table.build(spark, warehouse, config)
    rows = spark.read.parquet(summary["path"]).collect()
    return warehouse, config, summary, {r.page_id: r for r in rows}


def test_orphans_are_the_articles_no_other_article_links_to(ltg, spark, warehouse_dir):
    _, _, summary, found = ltg
    titles = spark.read.parquet(str(warehouse_dir / "titles" / "wiki=ltgwiki")).collect()
    links = spark.read.parquet(str(warehouse_dir / "links" / "wiki=ltgwiki")).where("kind = 'link'").collect()
    articles = {t.page_id: t.title for t in titles if t.namespace == 0 and not t.is_redirect}
    linked = {link.resolved_page_id for link in links
              if link.resolved_namespace == 0 and link.resolved_page_id != link.source_page_id}
    expected = set(articles) - linked
    # the exclusions (disambiguation pages, year titles) are the only expected ones left out
    assert set(found) <= expected and len(expected - set(found)) < 0.2 * len(expected)
    assert summary["orphans"] == len(found) > 20
    for page_id, row in found.items():
        assert row.title == articles[page_id] and page_id not in linked
        self_linked = any(link.source_page_id == page_id == link.resolved_page_id for link in links)
        assert row.reason == ("linked_only_from_itself" if self_linked else "linked_from_nowhere")
        out = {link.resolved_page_id for link in links if link.source_page_id == page_id
               and link.resolved_namespace == 0 and link.resolved_page_id not in (None, page_id)}
        assert row.out_degree == len(out)
    redirects = {}
    for t in titles:
        if t.is_redirect and t.status == "resolved":
            redirects.setdefault(t.resolved_page_id, []).append(t.title)
    assert all(list(row.redirects) == sorted(redirects.get(pid, [])) for pid, row in found.items())


def test_a_pagelinks_table_counts_links_from_templates_and_other_namespaces(ltg, spark, tmp_path, warehouse_dir):
    warehouse, config, summary, found = ltg
    titles = spark.read.parquet(str(warehouse_dir / "titles" / "wiki=ltgwiki")).collect()
    links = spark.read.parquet(str(warehouse_dir / "links" / "wiki=ltgwiki")).where(
        "kind = 'link' AND target_namespace = 0").collect()
    template = next(t.page_id for t in titles if t.namespace == 10)
    first, second = sorted(found)[:2]
    rows = [(link.source_page_id, 0, link.target_title.replace(" ", "_")) for link in links]
    rows.append((template, 0, found[first].title.replace(" ", "_")))  # a navigation template's link
    a_source = next(pid for pid, t in ((t.page_id, t) for t in titles) if t.namespace == 0 and not t.is_redirect
                    and pid not in (first, second))
    rows.append((a_source, 0, found[second].title.replace(" ", "_")))  # a link a template put in an article
    path = tmp_path / "pagelinks.parquet"
    pq.write_table(pa.table({"pl_from": [r[0] for r in rows], "pl_namespace": [r[1] for r in rows],
                             "pl_title": [r[2] for r in rows]}), path)
    with_pagelinks = orphan_table.build(spark, warehouse, config, str(path))
    again = {r.page_id: r for r in spark.read.parquet(with_pagelinks["path"]).collect()}
    assert with_pagelinks["links"] == "pagelinks"
    assert again[first].reason == "linked_only_from_other_namespaces"
    assert second not in again
    assert set(again) == set(found) - {second}
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"from": [1], "to": ["X"]}), bad)
    with pytest.raises(OrphanError, match=r"needs source_page_id and target_title \(or MediaWiki's pl_from and "
                                          r"pl_title\); it has from, to"):
        orphan_table.build(spark, warehouse, config, str(bad))
    orphan_table.build(spark, warehouse, config)  # the wikitext definition again, for the tests after
