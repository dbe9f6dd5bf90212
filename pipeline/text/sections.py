"""One notion of a section heading for the engine (which sections are excluded) and for the configuration
learned from a dump (which headings end articles with citations): markup stripped, spaces collapsed,
compared case-folded."""

from __future__ import annotations


def heading_of(node) -> str:
    """A mwparserfromhell Heading's text, markup stripped and spaces collapsed."""
    return " ".join(node.title.strip_code().split())


def section_key(heading: str) -> str:
    """What an excluded section's name and an article's heading are compared by."""
    return " ".join(heading.split()).casefold()


def section_at(wikitext: str, offset: int) -> str:
    """The heading of the section holding `offset` (code points) of the wikitext; "" in the lead."""
    import re

    heading = ""
    for match in re.finditer(r"(?m)^(=+)[ \t]*(.+?)[ \t]*\1[ \t]*$", wikitext[:offset]):
        heading = match.group(2)
    return " ".join(re.sub(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]|'{2,}", r"\1", heading).split())


HEADING_LINE = r"(?m)^(={1,6})[ \t]*(.+?)[ \t]*\1[ \t]*$"
_MARKUP = r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]|'{2,}|<[^>]*>"


def heading_lines(wikitext: str):
    """(start, end, level, heading) of every heading line, found line by line: a parser can swallow the end
    of an article into an unclosed template and miss the headings there."""
    import re

    for match in re.finditer(HEADING_LINE, wikitext):
        heading = " ".join(re.sub(_MARKUP, r"\1", match.group(2)).split())
        yield match.start(), match.end(), len(match.group(1)), heading


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
