"""Hand-written cases per wiki (tests/fixtures/cases/<wiki>.mwtest): one construct per case, the input
and the output expected of it side by side, written from MediaWiki's rules and the language, not
from this program's output. Kinds: links (the link reader), sentences (renderer and splitter),
matches (the anchor matcher), sections (candidate text of the engine), redirects (the resolver)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.ingest.dumpreader import read_siteinfo
from pipeline.recommend.engine import EngineSettings, top_level_segments
from pipeline.text.matcher import AnchorMatcher, anchor_key
from pipeline.text.sentences import article_sentences, render_plain
from pipeline.text.titles import TitleNormaliser
from pipeline.text.wikilinks import extract_links, parse
from tests.conftest import DUMPS, FIXTURES

CASES = FIXTURES / "cases"


def read_cases(path: Path) -> list[dict]:
    """Cases separated by `---`: `name:`, `kind:`, optional `anchors:`, then `input:` and `expected:` blocks."""
    cases = []
    for block in path.read_text(encoding="utf-8").split("\n---\n"):
        case: dict = {"input": [], "expected": []}
        part = None
        for line in block.splitlines():
            if part is None and (line.startswith("#") or not line.strip()):
                continue
            if line in ("input:", "expected:"):
                part = line[:-1]
            elif part is not None:
                case[part].append(line)
            else:
                key, _, value = line.partition(": ")
                case[key] = value
        case["input"] = "\n".join(case["input"]).strip("\n")
        case["expected"] = [line for line in case["expected"] if line.strip()]
        cases.append(case)
    return cases


ALL = [(path.stem, case) for path in sorted(CASES.glob("*.mwtest")) for case in read_cases(path)]


def test_every_shared_wiki_has_its_cases():
    kinds = {}
    for wiki, case in ALL:
        kinds.setdefault(wiki, set()).add(case["kind"])
    assert set(DUMPS) <= set(kinds)
    assert all({"links", "sentences", "sections"} <= kinds[wiki] for wiki in DUMPS)


def normaliser_of(wiki: str) -> TitleNormaliser:
    return TitleNormaliser.from_siteinfo(read_siteinfo(str(DUMPS[wiki])))


def outcome(wiki: str, case: dict) -> list[str]:
    config = load_config(wiki)
    text, kind = case["input"], case["kind"]
    if kind == "links":
        return [f"{link.anchor} -> {link.target_title}" + (f" @{link.container}" if link.container else "")
                for link in extract_links(text, normaliser_of(wiki), config.text.link_trail) if link.kind == "link"]
    if kind == "sentences":
        plain = render_plain(text, normaliser_of(wiki), config.text.link_trail)
        return [sentence.text for sentence in article_sentences(plain, config.text.sentence_ends)]
    if kind == "matches":
        anchors = [anchor_key(a.strip(), config.text.language) for a in case["anchors"].split("|")]
        matcher = AnchorMatcher(anchors, config.text.language)
        return [text[m.start:m.end] for m in matcher.find(text)]
    if kind == "candidates":
        return candidate_texts(text, case["anchors"], config.text.language)
    if kind == "sections":
        segments = top_level_segments(parse(text), EngineSettings.from_config(config))
        return [piece.strip() for s in segments if s.eligible for piece in s.text.split("\n") if piece.strip()]
    raise AssertionError(f"unknown kind {kind!r}")


def candidate_texts(text: str, link_texts: str, language: str) -> list[str]:
    """The candidate texts of `text` for a dictionary of the given link texts (one target per anchor; its
    capitalised share from how the links are written)."""
    from pipeline.model.features import AnchorEntry, Lookups, sentence_candidates

    written: dict[str, list[str]] = {}
    for link in (t.strip() for t in link_texts.split("|")):
        written.setdefault(anchor_key(link, language), []).append(link)
    anchors = {key: AnchorEntry([(n, key, len(forms))], 0.0, 0.5, sum(f[:1].isupper() for f in forms) / len(forms))
               for n, (key, forms) in enumerate(sorted(written.items()), start=1)}
    lookups = Lookups(anchors, {}, 100, language, use_relatedness=False)
    return [c.text for c in sentence_candidates(text, lookups, 0, 1)]


@pytest.mark.parametrize("wiki, case", [c for c in ALL if c[1]["kind"] != "redirects"],
                         ids=[f"{w}: {c['name']}" for w, c in ALL if c["kind"] != "redirects"])
def test_case(wiki, case):
    assert outcome(wiki, case) == case["expected"]


@pytest.mark.parametrize("wiki, case", [c for c in ALL if c[1]["kind"] == "redirects"],
                         ids=[f"{w}: {c['name']}" for w, c in ALL if c["kind"] == "redirects"])
def test_redirect_case(spark, wiki, case):
    from pipeline.ingest.derived import resolve_redirects

    rows = []
    for page_id, line in enumerate(case["input"].splitlines(), start=1):
        title, _, target = (part.strip() for part in line.partition("->"))
        rows.append((page_id, 0, title, target or None))
    pages = spark.createDataFrame(rows, "page_id long, namespace int, title string, redirect_target string")
    resolved = {r.title: r for r in resolve_redirects(pages, normaliser_of(wiki), 10).collect()}
    found = []
    for title, _, target in (line.partition(" -> ") for line in case["input"].splitlines()):
        if not target:
            continue
        row = resolved[title.strip()]
        found.append(f"{row.title}: {row.status}" + (f" -> {row.resolved_title} ({row.hops})"
                                                      if row.status == "resolved" else ""))
    assert found == case["expected"]
