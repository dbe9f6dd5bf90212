"""The per-article orphan engine, plain Python: an article's top-level text segments, the orphans whose
mentions it contains (with what is known about each mention) and how related it is to each of them →
candidate links with their features. Choosing and writing links is the link task's own code
(`recommend.engine.outcome`), so the rows have the same shape and rules.

Also here: `delink`, which turns an article's links to simulated orphans into plain text and says
where their anchors now sit (the labels of training and the backtest)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.model.features import Candidate, milne_witten_counts
from pipeline.orphans.mentions import case_agrees
from pipeline.recommend.engine import PreparedArticle, Segment
from pipeline.text.matcher import AnchorMatcher, Match, char_classes, word_count

FEATURES = ["ngram", "chars", "exact_case", "from_redirect", "stripped", "stem", "trail_chars", "plain_pages",
            "anchor_probability", "anchor_targets", "orphans_sharing", "occurrences", "occurrence_index", "position",
            "relatedness", "common_neighbours", "backlink", "orphan_out_degree", "source_degree"]
FEATURES_VERSION = 2


@dataclass(frozen=True)
class OrphanEntry:
    """One orphan a mention key names, and what is known about the key."""

    orphan_id: int
    title: str
    form: str
    from_redirect: bool
    stripped: bool
    stem: bool
    plain_pages: int  # articles whose text contains the key
    anchor_probability: float  # how often the key is linked to other articles where it occurs
    anchor_targets: int  # other articles it links to
    orphans_sharing: int  # orphans with this mention key


@dataclass(frozen=True)
class Relation:
    """The source article and one orphan, from the link graph without links into the orphans."""

    common: int  # the source's neighbours the orphan links to
    backlink: bool  # the orphan links to the source
    orphan_out_degree: int
    source_degree: int


def relatedness(relation: Relation, articles: int) -> float:
    """Milne–Witten of the source's neighbourhood and the orphan's out-links (its only links), the
    orphan's link to the source left out."""
    direct = int(relation.backlink)
    return milne_witten_counts(relation.source_degree - direct, relation.orphan_out_degree - direct,
                               relation.common, articles)


@dataclass
class Found:
    prepared: PreparedArticle
    case_rejected: int  # occurrences dropped because the case differs beyond the first letter


def candidates(page_id: int, segments: list[Segment], entries: dict[str, list[OrphanEntry]],
               relations: dict[int, Relation], articles: int, language: str, case_check: bool = True,
               linked: frozenset[int] = frozenset(), link_trail: str = "") -> Found:
    """Every (mention occurrence × orphan) of the eligible segments, the article itself and orphans it
    links to already left out. Matching is the link task's matcher: same word boundaries, folding and
    spaceless scripts, longest match first; a mention may carry link-trail letters, a stem must."""
    matcher = AnchorMatcher(entries.keys(), language, link_trail)
    matches: list[tuple[int, Match]] = []
    total = sum(len(s.text) for s in segments) or 1
    for index, segment in enumerate(segments):
        if segment.eligible:
            matches.extend((index, m) for m in matcher.find(segment.text, char_classes(segment.text))
                           if not inside_brackets(segment.text, m.start))
    occurrences: dict[str, int] = {}
    for _, match in matches:
        occurrences[match.anchor] = occurrences.get(match.anchor, 0) + 1
    exact: dict[tuple[int, int, int], set[int]] = {}  # span → orphans a whole mention names there
    for index, match in matches:
        exact.setdefault((index, match.start, match.end), set()).update(
            e.orphan_id for e in entries[match.anchor] if not e.stem)
    seen: dict[str, int] = {}
    out: list[tuple[Candidate, int]] = []
    rejected = 0
    for index, match in matches:
        segment = segments[index]
        written = segment.text[match.start:match.end]
        trail = len(written) - len(match.anchor)
        order = seen.get(match.anchor, 0)
        seen[match.anchor] = order + 1
        for entry in entries[match.anchor]:
            if entry.orphan_id == page_id or entry.orphan_id in linked:
                continue
            if entry.stem and (not trail or entry.orphan_id in exact[(index, match.start, match.end)]):
                continue
            if case_check and not case_agrees(written[:len(match.anchor)], entry.form):
                rejected += 1
                continue
            relation = relations.get(entry.orphan_id, Relation(0, False, 0, 0))
            features = (
                float(word_count(written)), float(len(written)), float(written == entry.form),
                float(entry.from_redirect), float(entry.stripped), float(entry.stem), float(trail),
                math.log1p(entry.plain_pages),
                entry.anchor_probability, float(entry.anchor_targets), float(entry.orphans_sharing),
                float(occurrences[match.anchor]), float(min(order, 10)),
                round((segment.offset + match.start) / total, 4) if total else 0.0,
                relatedness(relation, articles), float(relation.common), float(relation.backlink),
                math.log1p(relation.orphan_out_degree), math.log1p(relation.source_degree))
            out.append((Candidate(match, written, entry.orphan_id, entry.title, features), index))
    return Found(PreparedArticle(page_id, segments, out, set(linked)), rejected)


def inside_brackets(text: str, start: int) -> bool:
    """Text the parser left in an unclosed "[[" (broken link or table markup): never a place for a link."""
    return text.rfind("[[", 0, start) > text.rfind("]]", 0, start)


def delink(wikitext: str, removals) -> tuple[str, list[tuple[int, int, int]]]:
    """The wikitext with these links (offset, length, anchor, target id) replaced by their anchor text,
    and where each anchor now is: (start, end, target id). A link inside another removed one goes with it."""
    pieces: list[str] = []
    spans: list[tuple[int, int, int]] = []
    at = 0  # in the old text
    length = 0  # of the new text so far
    for offset, size, anchor, target in sorted(removals):
        if offset < at:
            continue
        pieces.append(wikitext[at:offset])
        length += offset - at
        pieces.append(anchor)
        spans.append((length, length + len(anchor), int(target)))
        length += len(anchor)
        at = offset + size
    pieces.append(wikitext[at:])
    return "".join(pieces), spans


def labelled(found: Found, spans: list[tuple[int, int, int]]) -> list[int]:
    """1 for a candidate whose occurrence lies in the anchor of a removed link to its orphan."""
    out = []
    for candidate, index in found.prepared.candidates:
        start = found.prepared.segments[index].offset + candidate.match.start
        end = start + candidate.match.end - candidate.match.start
        out.append(int(any(a <= start and end <= b and target == candidate.target_id for a, b, target in spans)))
    return out
