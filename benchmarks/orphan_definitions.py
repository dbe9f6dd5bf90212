"""Orphans by the two definitions on the shared dumps (README "Links to orphan articles"): the wikitext
links, and a pagelinks table as MediaWiki would keep it, approximated from the dump: every wikitext link
of every page (all namespaces) plus, for each page, the links of the templates it transcludes (one
level, <noinclude> parts left out; the dumps hold the Template namespace). Figures, not tests.

    python benchmarks/orphan_definitions.py --warehouse /tmp/owh [--wikis ltgwiki …]"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import DUMPS  # noqa: E402

NOINCLUDE = re.compile(r"<noinclude>.*?</noinclude>", re.S | re.I)
TRANSCLUSION = re.compile(r"\{\{\s*([^|{}\n]+?)\s*(?:\||\}\})")


def pagelinks_rows(pages, normaliser) -> list[tuple[int, int, str]]:
    """(pl_from, pl_namespace, pl_title) of every page: its own links, then those of its templates."""
    from pipeline.text.wikilinks import extract_links

    def links_of(text):
        out = set()
        for link in extract_links(text, normaliser):
            if link.kind == "link" and link.target_title is not None:
                title = normaliser.parse(link.target_title)
                if title is not None:
                    out.add((title.namespace, title.text.replace(" ", "_")))
        return out

    templates = {}
    for page in pages:
        if page.namespace == 10:
            templates[page.title.split(":", 1)[-1]] = links_of(NOINCLUDE.sub("", page.wikitext))
    rows = set()
    for page in pages:
        found = links_of(page.wikitext)
        for match in TRANSCLUSION.finditer(page.wikitext):
            name = normaliser.parse(match.group(1))
            if name is not None and name.namespace in (0, 10):
                found |= templates.get(name.text, set())
        rows.update((page.page_id, ns, title) for ns, title in found)
    return sorted(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--wikis", nargs="*", default=sorted(DUMPS))
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline import jobs
    from pipeline.orphans import table as orphan_table
    from pipeline.text.titles import TitleNormaliser
    from pipeline.warehouse import current_snapshot, siteinfo_of

    rt = jobs.Runtime(args.warehouse, quiet=True)
    print("| wiki | articles | orphans (wikitext links) | orphans (pagelinks, templates expanded) | of these "
          "linked only from other namespaces |")
    print("|---|---|---|---|---|")
    for wiki in args.wikis:
        config = rt.config(wiki)
        spark, warehouse = rt.spark(config), rt.warehouse(config)
        snapshot = current_snapshot(warehouse, wiki)
        normaliser = TitleNormaliser.from_siteinfo(siteinfo_of(warehouse, wiki, snapshot), config.text.case)
        pages = warehouse.read("pages", wiki, snapshot).select("page_id", "namespace", "title", "wikitext").collect()
        wikitext = orphan_table.build(spark, warehouse, config)
        rows = pagelinks_rows(pages, normaliser)
        with tempfile.TemporaryDirectory() as folder:
            path = f"{folder}/pagelinks.parquet"
            pq.write_table(pa.table({"pl_from": [r[0] for r in rows], "pl_namespace": [r[1] for r in rows],
                                     "pl_title": [r[2] for r in rows]}), path)
            expanded = orphan_table.build(spark, warehouse, config, path)
        articles = sum(1 for p in pages if p.namespace == 0)
        print(f"| {wiki} | {articles} | {wikitext['orphans']} | {expanded['orphans']} | "
              f"{expanded['by_reason'].get('linked_only_from_other_namespaces', 0)} |")
        orphan_table.build(spark, warehouse, config)  # the wikitext table again, as the task uses it


if __name__ == "__main__":
    main()
