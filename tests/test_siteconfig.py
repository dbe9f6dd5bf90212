"""Every wiki configured from its own data: the language from siteinfo, MediaWiki's link trail, the
disambiguation templates and the sections to skip learned from the dump, each value's origin said, and
no recommendation in an excluded section."""

from __future__ import annotations

import json
import re
import sqlite3
import tomllib
from pathlib import Path

import pytest

from pipeline import siteconfig
from pipeline.config import load_config
from pipeline.text.sections import section_key
from tests.conftest import DUMPS, last_json, run_cli

CONFIGS = Path(__file__).parent.parent / "configs" / "wikis"
# where a hand-written file departs from MediaWiki's own link trail (MediaWiki 1.43, packaged), and why
TRAIL_DIFFERENCES = {
    "jawiki": "MediaWiki gives Japanese no trail of its own (English's applies); the file turns trails off",
    "ltgwiki": "the file adds ō (Latgalian) to Latvian's trail and leaves out the capitals",
    "mrwiki": "MediaWiki 1.43 dropped the Devanagari digits from Marathi's trail and added ZWJ",
}


def hand_written(wiki: str) -> dict:
    return tomllib.loads((CONFIGS / f"{wiki}.toml").read_text(encoding="utf-8"))


# --- plain Python -------------------------------------------------------------------------------------------


def test_link_trails_follow_mediawikis_fallbacks():
    assert siteconfig.link_trail("hy")[0] == hand_written("hywiki")["text"]["link_trail"]
    trail, source = siteconfig.link_trail("ltg")
    assert "lv" in source and re.fullmatch(f"[{trail}]+", "ām") and not re.fullmatch(f"[{trail}]+", "ō")
    assert siteconfig.link_trail("ja")[0] == "a-z"  # MediaWiki: no trail of its own, English's applies
    assert siteconfig.link_trail("uk")[0].startswith("a-zабвгґ")
    assert siteconfig.link_trail("vi")[0] != "a-z"
    assert siteconfig.link_trail("xx-nosuch") == (None, "no MediaWiki language 'xx-nosuch' packaged")
    assert siteconfig.language_of(None, "ukwiki") == "uk" and siteconfig.language_of(None, "simplewiki") == "en"


# real section bodies from the shared dumps
REFERENCES = "\n{{nūruodis}}\n\n[[Kategoreja:Zeimeigi Latgolys ļauds]]\n"  # ltgwiki: a reference list template
BIBLIOGRAPHY = ("\n* Շիշմանյան Ռ․, Բնանկարն ու հայ նկարիչները, Ե․, 1958:\n"
                "* Ազարյան Լ․Ռ․, Կիլիկյան մանրանկարչությունը XII-XIII դդ․, Ե․, 1964:\n")  # hywiki Գրականություն
SEE_ALSO = "\n* [[Ռենե Մագրիտ]]\n* [[Զամբյուղով հաց]]\n"  # hywiki Տես նաև
EXTERNAL = "\n* {{επίσημος ιστότοπος}}\n\n{{commonscat}}\n{{Authority control}}\n"  # elwiki
NOTES_WITH_SUBSECTIONS = "\n{{脚注ヘルプ}}\n=== 注釈 ===\n{{Notelist}}\n=== 出典 ===\n{{Reflist|2}}\n"  # jawiki 脚注
STUB = "\n\n"
PROSE = ("\nAuguma garums: nu 53 da 70 cm<ref name=\"ADV\"/>; Astes garums: nu 32 da 39 cm, svors: 3—5 kg. "
         "Kačs dzeivoj Borneo salys mežūs, jis ir vīns nu mozuok zynomūs kaču, juo dzeive ir moz pietejuta, "
         "i juo skaits samazynojās deļ mežu izcērtūšonys.\n")


def test_section_kinds_of_real_sections():
    assert siteconfig.section_kind(REFERENCES, cites=True) == "citations"
    assert siteconfig.section_kind(REFERENCES, cites=False) == "empty"  # a stub's placeholder template
    assert siteconfig.section_kind(BIBLIOGRAPHY) == "citations"
    assert siteconfig.section_kind(SEE_ALSO) == "links"
    assert siteconfig.section_kind(EXTERNAL) == "citations"
    assert siteconfig.section_kind(NOTES_WITH_SUBSECTIONS, cites=True) == "citations"
    assert siteconfig.section_kind(STUB) == "empty"
    assert siteconfig.section_kind(PROSE, cites=True) == "content"


def test_trailing_sections_are_those_at_the_end():
    text = ("Lead.\n== Viesture ==\n" + PROSE + "== Verīs taipoš ==" + SEE_ALSO + "== Nūruodis ==" + REFERENCES
            + "<ref>x</ref>")
    assert siteconfig.section_profiles(text) == [
        ("Viesture", "content", True), ("Verīs taipoš", "links", True), ("Nūruodis", "citations", True)]
    early = "Lead.\n== Verīs taipoš ==" + SEE_ALSO + ("== A ==" + PROSE) + ("== B ==" + PROSE)
    assert siteconfig.section_profiles(early)[0] == ("Verīs taipoš", "links", False)


def test_a_disambiguation_page_has_its_shape():
    page = ("'''Կոտայք''' կարող է վերաբերել՝\n\n* [[Կոտայք (գավառ)]] — պատմական գավառ։\n"
            "* [[Կոտայքի մարզ]] — մարզ [[Հայաստան]]ում։\n* [[Կոտայք (գյուղ)]] - գյուղ։\n\n{{Բազմիմաստություն}}")
    assert siteconfig.shaped_as_disambiguation("Կոտայք (այլ կիրառումներ)", page)
    assert not siteconfig.shaped_as_disambiguation("Հայաստան", "* [[Երևան]]\n* [[Գյումրի]]\n")


def test_each_values_origin_and_the_written_file_wins():
    inferred = {"snapshot": "20170901", "values": {"text": {"language": "ltg", "link_trail": "a-zā"},
                                                   "recommend": {"excluded_sections": ["Nūruodis"]}},
                "notes": {"text.link_trail": "MediaWiki's link trail of lv"}}
    config = load_config("ltgwiki", inferred=inferred)
    assert config.origin("text.link_trail") == "written"  # configs/wikis/ltgwiki.toml wins
    assert config.text.link_trail == hand_written("ltgwiki")["text"]["link_trail"]
    aside = load_config("ltgwiki", inferred=inferred, wiki_file=False)
    assert aside.origin("text.link_trail") == "inferred" and aside.text.link_trail == "a-zā"
    assert aside.origin("recommend.excluded_sections") == "inferred"
    assert aside.origin("dictionary.disambiguation_templates") == "default"
    assert siteconfig.english_defaults(aside, "ltg") == ["dictionary.disambiguation_templates"]
    assert siteconfig.english_defaults(aside, "en") == []
    assert aside.with_inferred(None).origin("text.link_trail") == "default"


def test_a_wiki_never_ingested_says_it_runs_on_english_defaults(tmp_path):
    result = run_cli(["--warehouse", str(tmp_path), "config", "show", "--wiki", "ukwiki", "--json"])
    assert result.exit_code == 0, result.stderr
    shown = last_json(result.stdout)
    assert shown["origins"]["text.link_trail"]["from"] == "default"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("linkrec: warning:")]
    assert len(warnings) == 1 and "ukwiki (uk) runs on English defaults" in warnings[0]
    assert "text.link_trail" in warnings[0] and shown["warning"] in warnings[0]


def test_an_excluded_sections_subsections_stay_excluded():
    from pipeline.recommend.engine import EngineSettings, top_level_segments
    from pipeline.text.wikilinks import parse

    settings = EngineSettings.from_config(load_config("jawiki"))
    text = "前文。\n== 脚注 ==\n{{脚注ヘルプ}}\n=== 注釈 ===\n注釈の文。\n=== 出典 ===\n出典の文。\n== 歴史 ==\n本文。"
    eligible = [s.text.strip() for s in top_level_segments(parse(text), settings) if s.eligible and s.text.strip()]
    assert eligible == ["前文。", "本文。"]


# --- the shared dumps -----------------------------------------------------------------------------------------


def saved(warehouse_dir: Path, wiki: str) -> dict:
    return json.loads((warehouse_dir / "_config" / f"{wiki}.json").read_text(encoding="utf-8"))


def level2_headings(warehouse, wiki: str) -> set[str]:
    """Every level-2 heading of the dump's articles (the learner's notion of a section), case-folded."""
    from pyspark.sql import functions as F

    from pipeline.ingest.derived import is_article
    from pipeline.warehouse import current_snapshot

    pages = warehouse.read("pages", wiki, current_snapshot(warehouse, wiki)).where(is_article())
    found = pages.select(F.explode(F.expr(r"regexp_extract_all(wikitext, '(?m)^==([^=].*?)==\\s*$', 1)"))
                         .alias("h")).distinct().collect()
    return {section_key(re.sub(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]|'{2,}", r"\1", r.h)) for r in found}


@pytest.mark.parametrize("wiki", sorted(DUMPS))
def test_the_configuration_inferred_from_each_dump_agrees_with_the_hand_written_one(ingested, warehouse_dir,
                                                                                   spark, wiki):
    from pipeline.warehouse import Warehouse

    inferred, hand = saved(warehouse_dir, wiki), hand_written(wiki)
    values = inferred["values"]
    assert values["text"]["language"] == hand["text"]["language"]
    trail = values["text"].get("link_trail")
    written = hand.get("text", {}).get("link_trail", "a-z")
    assert (trail == written) != (wiki in TRAIL_DIFFERENCES), (wiki, trail, written)
    # disambiguation templates: every hand-written one that the dump uses is found
    warehouse = Warehouse(spark, str(warehouse_dir))
    from pipeline.warehouse import current_snapshot

    pages = warehouse.read("pages", wiki, current_snapshot(warehouse, wiki)).where("namespace = 0").select(
        "wikitext").collect()

    def uses(name: str) -> int:
        pattern = re.compile(r"\{\{\s*[" + re.escape(name[0].upper() + name[0].lower()) + "]" + re.escape(name[1:])
                             + r"\s*[|}]")
        return sum(1 for p in pages if pattern.search(p.wikitext or ""))

    # a template the dump uses once cannot be told from a navigation box used once (README)
    used = [name for name in load_config(wiki).dictionary.disambiguation_templates if uses(name) >= 2]
    assert set(used) <= set(values["dictionary"]["disambiguation_templates"]), (used, values["dictionary"])
    assert used or wiki in ("hywiki", "jawiki", "mrwiki")  # their hand-written names: used once, or never
    # sections: every hand-written heading that occurs in the dump (as an article's section) is found
    present = level2_headings(warehouse, wiki)
    learned = {section_key(s) for s in values["recommend"]["excluded_sections"]}
    missing = [s for s in hand["recommend"]["excluded_sections"] if section_key(s) in present
               and section_key(s) not in learned]
    assert not missing, (wiki, missing)


def test_config_show_says_where_each_value_came_from(ingested, warehouse_dir):
    shown = last_json(run_cli(["--warehouse", str(warehouse_dir), "config", "show", "--wiki", "hywiki", "--json"])
                      .stdout)
    assert shown["origins"]["text.link_trail"]["from"] == "written"  # the hand-written file wins
    assert shown["origins"]["dictionary.date_title_patterns"]["from"] == "inferred"
    assert "inferred from the dump" in shown["origins"]["dictionary.date_title_patterns"]["source"]
    assert "warning" not in shown


@pytest.fixture(scope="module")
def unconfigured(ingested, warehouse_dir, tmp_path_factory):
    """The ltgwiki dump under a wiki name without a hand-written file (its siteinfo's dbname changed):
    every value from its own data."""
    import bz2

    dump = tmp_path_factory.mktemp("unconfigured") / "ltgwikinew-20170901-pages-articles.xml.bz2"
    text = bz2.decompress(DUMPS["ltgwiki"].read_bytes()).replace(b"<dbname>ltgwiki</dbname>",
                                                                 b"<dbname>ltgwikinew</dbname>", 1)
    dump.write_bytes(bz2.compress(text, 1))
    result = run_cli(["--warehouse", str(warehouse_dir), "ingest", "--wiki", "ltgwikinew", "--dump", str(dump),
                      "--json"])
    assert result.exit_code == 0, result.stderr
    return "ltgwikinew"


def test_a_wiki_without_a_file_runs_on_its_inferred_configuration(unconfigured, warehouse_dir):
    result = run_cli(["--warehouse", str(warehouse_dir), "config", "show", "--wiki", unconfigured, "--json"])
    shown = last_json(result.stdout)
    assert "warning" not in shown and "English defaults" not in result.stderr
    for key in ("text.language", "text.link_trail", "dictionary.disambiguation_templates",
                "recommend.excluded_sections"):
        assert shown["origins"][key]["from"] == "inferred", key
    assert shown["text"]["language"] == "ltg" and "Zeimeibu škiršona" in shown["dictionary"]["disambiguation_templates"]
    assert "MediaWiki's link trail of lv" in shown["origins"]["text.link_trail"]["note"]


def enclosing_headings(wikitext: str, offset: int) -> list[str]:
    """The headings of every section that holds `offset` (the section and the sections above it)."""
    stack: list[tuple[int, str]] = []
    for match in re.finditer(r"(?m)^(=+)[ \t]*(.+?)[ \t]*\1[ \t]*$", wikitext[:offset]):
        level = len(match.group(1))
        stack = [(lvl, h) for lvl, h in stack if lvl < level] + [(level, match.group(2))]
    return [h for _, h in stack]


def test_no_recommendation_falls_in_an_excluded_section(unconfigured, ltg_model, warehouse_dir, tmp_path, spark):
    """Learned sections (the unconfigured wiki) and written ones (ltgwiki); and the orphan task on enwiki,
    whose articles hold headings that the wikitext parser misses (an unclosed template above them)."""
    from pipeline.warehouse import Warehouse, current_snapshot

    warehouse = Warehouse(spark, str(warehouse_dir))
    assert run_cli(["--warehouse", str(warehouse_dir), "train", "--wiki", "ltgwiki", "--task", "orphan_link"]
                   ).exit_code == 0
    runs = [(unconfigured, "recommend", ["--model", "ltgwiki", "--set", "recommend.minimum_link_score=0.3"],
             "growthexperiments_link_recommendations"),
            ("ltgwiki", "recommend", ["--model", "ltgwiki", "--set", "recommend.minimum_link_score=0.3"],
             "growthexperiments_link_recommendations"),
            ("enwiki", "orphans", ["--model", "ltgwiki-orphan_link", "--set", "orphans.minimum_link_score=0.2"],
             "growthexperiments_orphan_link_recommendations")]
    for wiki, command, extra, table in runs:
        db = tmp_path / f"{wiki}-{command}.db"
        model, option = extra[:2], extra[2:]
        result = run_cli(["--warehouse", str(warehouse_dir), *option, command, "--wiki", wiki, *model,
                          "--ignore-gate", "--now", "2030-01-01T00:00:00Z", "--db", f"sqlite:///{db}", "--json"])
        assert result.exit_code == 0, result.stderr
        shown = last_json(run_cli(["--warehouse", str(warehouse_dir), "config", "show", "--wiki", wiki, "--json"])
                          .stdout)
        excluded = {section_key(s) for s in shown["recommend"]["excluded_sections"]}
        texts = {r.page_id: r.wikitext for r in warehouse.read("pages", wiki, current_snapshot(warehouse, wiki))
                 .select("page_id", "wikitext").collect()}
        with sqlite3.connect(db) as connection:
            rows = connection.execute(f"SELECT gelr_page, gelr_data FROM {table} WHERE gelr_data IS NOT NULL"
                                      ).fetchall()
        assert len(rows) > (50 if command == "recommend" else 3), (wiki, len(rows))
        links = [(page, link) for page, data in rows for link in json.loads(data)["links"]]
        for page, link in links:
            headings = enclosing_headings(texts[page], link["wikitext_offset"])
            assert not excluded & {section_key(h) for h in headings}, (wiki, page, link, headings)


def test_hubs_are_the_targets_most_of_the_wiki_links_to(ltg_model, warehouse_dir, spark):
    """dictionary.hub_link_share: a target linked from that share of the articles is a hub, left out of the
    dictionary (never offered) while its links stay in the gold; checked against an independent count of
    ltgwiki's usable links."""
    from collections import defaultdict

    from pipeline.model import tables
    from pipeline.warehouse import Warehouse, current_snapshot

    warehouse = Warehouse(spark, str(warehouse_dir))
    snapshot = current_snapshot(warehouse, "ltgwiki")
    usable = warehouse.read("usable_links", "ltgwiki", snapshot)
    config = load_config("ltgwiki", overrides=("dictionary.hub_link_share=0.03",))
    hubs = {r.page_id for r in tables.hub_targets(usable, 903, config).collect()}
    sources = defaultdict(set)
    for link in usable.collect():
        if link.target_page_id != link.source_page_id:
            sources[link.target_page_id].add(link.source_page_id)
    assert hubs == {page for page, found in sources.items() if len(found) >= 28}  # 3 % of 903, rounded up
    assert 3 <= len(hubs) <= 20
    off = load_config("ltgwiki", overrides=("dictionary.hub_link_share=0",))
    assert not tables.hub_targets(usable, 903, off).count()
    text = warehouse.read("article_text", "ltgwiki", snapshot)
    offered = {r.target_page_id for r in tables.build_dictionary(usable, text, config, 1, articles=903)
               .select("target_page_id").distinct().collect()}
    assert hubs and not hubs & offered
    assert hubs & {r.target_page_id for r in warehouse.read("sentences", "ltgwiki", snapshot)
                   .where("gold").selectExpr("explode(links) AS l").selectExpr("l.target_page_id AS target_page_id")
                   .collect()}
