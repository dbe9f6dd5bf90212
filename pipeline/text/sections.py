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
