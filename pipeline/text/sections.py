"""One notion of a section for the engine (which text is in an excluded section), the configuration
learned from a dump (which headings end articles with citations) and the report (where a link sits):
heading lines found line by line, markup stripped, spaces collapsed, compared case-folded."""

from __future__ import annotations

import re

HEADING_LINE = re.compile(r"(?m)^(={1,6})[ \t]*(.+?)[ \t]*\1[ \t]*$")
_MARKUP = re.compile(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]|'{2,}|<[^>]*>")


def section_key(heading: str) -> str:
    """What an excluded section's name and an article's heading are compared by."""
    return " ".join(heading.split()).casefold()


def heading_lines(wikitext: str):
    """(start, end, level, heading) of every heading line, found line by line: a parser can swallow the end
    of an article into an unclosed template and miss the headings there."""
    for match in HEADING_LINE.finditer(wikitext):
        heading = " ".join(_MARKUP.sub(r"\1", match.group(2)).split())
        yield match.start(), match.end(), len(match.group(1)), heading


def section_at(wikitext: str, offset: int) -> str:
    """The heading of the section holding `offset` (code points) of the wikitext; "" in the lead."""
    headings = [heading for _, _, _, heading in heading_lines(wikitext[:offset])]
    return headings[-1] if headings else ""


def excluded_spans(wikitext: str, excluded: frozenset[str], exclude_lead: bool = False) -> list[tuple[int, int]]:
    """The spans of the wikitext where no link goes: every heading line, and each excluded section with its
    subsections (up to the next heading of its level or above); the lead too with `exclude_lead`."""
    spans: list[tuple[int, int]] = []
    start, level_open = (0, 99) if exclude_lead else (None, 0)
    for begin, end, level, heading in heading_lines(wikitext):
        if start is not None and level <= level_open:
            spans.append((start, begin))
            start, level_open = None, 0
        spans.append((begin, end))
        if start is None and section_key(heading) in excluded:
            start, level_open = end, level
    if start is not None:
        spans.append((start, len(wikitext)))
    return sorted(spans)
