"""The per-article engine, plain Python: wikitext in, the `links` list of `gelr_data` out
(contracts.md §1). Two phases so that a Spark task scores the candidates of many articles in one
model call: `prepare` finds candidates, `finish` turns their scores into links."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from mwparserfromhell.nodes import Text

from pipeline.model.features import Candidate, Lookups, candidates_for, choose_links
from pipeline.text.matcher import Match, anchor_key, char_classes
from pipeline.text.sections import excluded_spans, section_key
from pipeline.text.titles import TitleNormaliser
from pipeline.text.wikilinks import extract_links, parse

CONTEXT_CHARS = 10


@dataclass(frozen=True)
class EngineSettings:
    minimum_link_score: float
    maximum_links_per_task: int
    minimum_links_per_task: int
    excluded_sections: frozenset[str]  # case-folded headings
    exclude_lead: bool
    link_trail: str
    per_anchor: int

    @classmethod
    def from_config(cls, config) -> EngineSettings:
        r = config.recommend
        return cls(r.minimum_link_score, r.maximum_links_per_task, r.minimum_links_per_task,
                   frozenset(section_key(s) for s in r.excluded_sections), r.exclude_lead,
                   config.text.link_trail, config.model.candidates_per_anchor)


@dataclass
class Segment:
    offset: int  # wikitext offset of the top-level text node
    text: str
    eligible: bool  # not in an excluded section


@dataclass
class PreparedArticle:
    page_id: int
    segments: list[Segment]
    candidates: list[tuple[Candidate, int]]  # candidate, segment index
    linked_targets: set[int]


def top_level_segments(code, settings: EngineSettings) -> list[Segment]:
    """The article's top-level text nodes, cut where an excluded section (with its subsections) or a
    heading line begins or ends; the pieces inside are not eligible. Sections are found line by line
    (pipeline/text/sections.py), so a heading the parser missed still ends or starts one."""
    wikitext = str(code)
    spans = excluded_spans(wikitext, settings.excluded_sections, settings.exclude_lead)
    cuts = sorted({point for span in spans for point in span})
    segments = []
    offset = 0
    for node in code.nodes:
        text = str(node)
        if isinstance(node, Text) and text:
            at = bisect.bisect_right(cuts, offset)
            start = offset
            for cut in cuts[at:]:
                if cut >= offset + len(text):
                    break
                segments.append(_segment(offset, text, start, cut, spans))
                start = cut
            segments.append(_segment(offset, text, start, offset + len(text), spans))
        offset += len(text)
    return [segment for segment in segments if segment.text]


def _segment(offset: int, text: str, start: int, end: int, spans: list[tuple[int, int]]) -> Segment:
    inside = any(a <= start < b for a, b in spans)
    return Segment(start, text[start - offset:end - offset], not inside)


@dataclass
class ParsedArticle:
    segments: list[Segment]
    linked_titles: list[str]  # normalised targets of its wikilinks
    linked_anchors: list[str]  # anchor keys of its wikilinks


def parse_article(wikitext: str, normaliser: TitleNormaliser, settings: EngineSettings, language: str
                  ) -> ParsedArticle:
    """The parse-only half of `prepare`: top-level text segments and the article's existing links."""
    code = parse(wikitext)
    titles, anchors = set(), set()
    for link in extract_links(wikitext, normaliser, settings.link_trail, code):
        if link.kind != "link" or link.target_title is None:
            continue
        titles.add(link.target_title)
        if link.anchor:
            anchors.add(anchor_key(link.anchor, language))
    return ParsedArticle(top_level_segments(code, settings), sorted(titles), sorted(anchors))


def prepare_parsed(parsed: ParsedArticle, page_id: int, lookups: Lookups, titles: dict[str, int],
                   settings: EngineSettings) -> PreparedArticle:
    """Candidates of a parsed article: anchors already linked as text, or one of whose targets is
    already linked, are skipped."""
    linked_targets = {titles[title] for title in parsed.linked_titles if title in titles}
    linked_anchors = set(parsed.linked_anchors)
    candidates: list[tuple[Candidate, int]] = []
    for index, segment in enumerate(parsed.segments):
        if not segment.eligible:
            continue
        classes = char_classes(segment.text)
        for match in lookups.matcher.find(segment.text, classes):
            entry = lookups.anchors[match.anchor]
            if match.anchor in linked_anchors or any(t[0] in linked_targets for t in entry.targets):
                continue
            for candidate in candidates_for(match, segment.text, entry, lookups, page_id, settings.per_anchor):
                candidates.append((candidate, index))
    return PreparedArticle(page_id, parsed.segments, candidates, linked_targets)


def prepare(wikitext: str, page_id: int, lookups: Lookups, titles: dict[str, int], normaliser: TitleNormaliser,
            settings: EngineSettings) -> PreparedArticle:
    return prepare_parsed(parse_article(wikitext, normaliser, settings, lookups.language), page_id, lookups, titles,
                          settings)


def _match_index(segments: list[Segment], segment_index: int, start: int, text: str) -> int:
    """Occurrences of `text` in the top-level text before this one (how the editor finds it)."""
    before = sum(segment.text.count(text) for segment in segments[:segment_index])
    return before + segments[segment_index].text[:start].count(text)


def scored_candidates(prepared: PreparedArticle, scores):
    """Candidates with positions made global (matches are per segment) → (scored list, segment of each)."""
    segment_of = {}
    scored = []
    for (candidate, index), score in zip(prepared.candidates, scores, strict=True):
        base = prepared.segments[index].offset
        shifted = Candidate(Match(base + candidate.match.start, base + candidate.match.end, candidate.match.anchor),
                            candidate.text, candidate.target_id, candidate.target_title, candidate.features)
        segment_of[(shifted.match.start, shifted.target_id)] = (index, candidate.match.start, candidate.match.end)
        scored.append((shifted, float(score)))
    return scored, segment_of


def finish(prepared: PreparedArticle, scores, settings: EngineSettings) -> list[dict]:
    """Scores (one per candidate, in order) → the links of gelr_data, or [] below the minimum."""
    return outcome(prepared, scores, settings).links


@dataclass
class Outcome:
    links: list[dict]
    link_counts: list[int]  # links a task would hold if the minimum score were each of REPORT_THRESHOLDS
    scores: list[float]  # scores of the links chosen at the lowest report threshold (for the score histogram)
    # each link's model features by its wikitext offset (the served-links ledger keeps them to learn from feedback)
    features: dict[int, list[float]] | None = None


REPORT_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def outcome(prepared: PreparedArticle, scores, settings: EngineSettings) -> Outcome:
    scored, segment_of = scored_candidates(prepared, scores)
    counts = [len(choose_links(scored, threshold, prepared.linked_targets, settings.maximum_links_per_task))
              for threshold in REPORT_THRESHOLDS]
    lowest = [round(p, 4) for _, p in choose_links(scored, REPORT_THRESHOLDS[0], prepared.linked_targets)]
    chosen = choose_links(scored, settings.minimum_link_score, prepared.linked_targets,
                          settings.maximum_links_per_task)
    if len(chosen) < settings.minimum_links_per_task:
        return Outcome([], counts, lowest)
    links, features = [], {}
    for position, (candidate, score) in enumerate(chosen):
        features[candidate.match.start] = [float(f) for f in candidate.features]
        index, start, end = segment_of[(candidate.match.start, candidate.target_id)]
        segment = prepared.segments[index].text
        links.append({
            "link_text": candidate.text,
            "link_target": candidate.target_title,
            "match_index": _match_index(prepared.segments, index, start, candidate.text),
            "wikitext_offset": candidate.match.start,
            "score": round(score, 6),
            "context_before": segment[max(0, start - CONTEXT_CHARS):start],
            "context_after": segment[end:end + CONTEXT_CHARS],
            "link_index": position,
        })
    return Outcome(links, counts, lowest, features)


def finish_batch(prepared: list[PreparedArticle], score, settings: EngineSettings) -> list[Outcome]:
    """The outcomes of many articles, their candidates scored in one call of `score` (features → scores)."""
    scores = list(score([c.features for item in prepared for c, _ in item.candidates]))
    out, at = [], 0
    for item in prepared:
        out.append(outcome(item, scores[at:at + len(item.candidates)], settings))
        at += len(item.candidates)
    return out
