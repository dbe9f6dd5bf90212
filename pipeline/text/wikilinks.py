"""The one wikitext link reader: every wikilink of a page with its exact position, rendered anchor
(link trail included) and the markup it sits in. Used by ingestion, training and recommendation."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import mwparserfromhell
from mwparserfromhell.nodes import (
    Argument,
    ExternalLink,
    Heading,
    Tag,
    Template,
    Text,
    Wikilink,
)
from mwparserfromhell.wikicode import Wikicode

from pipeline.text.titles import TitleNormaliser

# markup that renders as running text: bold, italics, list items
INLINE_MARKUP = {"''", "'''", "*", "#", ":", ";"}


@dataclass(frozen=True)
class WikiLink:
    offset: int  # code points from the start of the wikitext to "[["
    length: int  # code points of "[[…]]" plus the link trail
    target_raw: str
    namespace: int | None  # None when the target names no valid page
    target_title: str | None  # display form, namespace prefix included
    anchor: str  # rendered text: label (or target as written) + trail
    trail: str
    container: str  # "" when in running text, else the outermost markup: template, ref, table, …
    kind: str  # "link", "category" or "file"


@lru_cache(maxsize=64)
def trail_pattern(link_trail: str) -> re.Pattern | None:
    return re.compile(f"[{link_trail}]+") if link_trail else None


def trail_after(following, trail_re: re.Pattern | None) -> str:
    """The link trail: the letters of the text node right after a link that MediaWiki joins to it."""
    if trail_re is None or not isinstance(following, Text):
        return ""
    match = trail_re.match(str(following))
    return match.group(0) if match else ""


def parse(wikitext: str) -> Wikicode:
    return mwparserfromhell.parse(wikitext, skip_style_tags=False)


def _container_of(node) -> str | None:
    """The container a node opens for what is inside it; None for markup that stays running text."""
    if isinstance(node, Tag):
        if node.wiki_markup in INLINE_MARKUP:
            return None
        return str(node.tag).strip().lower() or "tag"
    if isinstance(node, Template):
        return "template"
    if isinstance(node, Heading):
        return "heading"
    if isinstance(node, Wikilink):
        return "link"
    if isinstance(node, ExternalLink):
        return "external"
    if isinstance(node, Argument):
        return "argument"
    return "other"


def walk(code: Wikicode, base: int = 0, container: str = "") -> Iterator[tuple[object, int, str, object]]:
    """Yield (node, offset, container, next sibling) for every node, nested ones included, with the
    code-point offset of the node in the wikitext that `code` was parsed from."""
    offset = base
    nodes = code.nodes
    for index, node in enumerate(nodes):
        text = str(node)
        following = nodes[index + 1] if index + 1 < len(nodes) else None
        yield node, offset, container, following
        if not isinstance(node, Text):
            opened = _container_of(node)
            inner = container or (opened or "")
            cursor = 0
            for child in node.__children__():
                child_text = str(child)
                if not child_text:
                    continue
                # children come in order and are separated only by markup, so the next match is theirs
                position = text.find(child_text, cursor)
                if position < 0:
                    continue
                yield from walk(child, offset + position, inner)
                cursor = position + len(child_text)
        offset += len(text)


def link_anchor(node: Wikilink) -> str:
    label = node.text if node.text is not None else node.title
    plain = label.strip_code() if node.text is not None else str(label)
    plain = html.unescape(plain)
    if node.text is None:
        plain = plain.lstrip().removeprefix(":")
    return plain.strip()


def extract_links(wikitext: str, normaliser: TitleNormaliser, link_trail: str = "",
                  code: Wikicode | None = None) -> list[WikiLink]:
    """Every wikilink of `wikitext`, in order of position."""
    code = code if code is not None else parse(wikitext)
    trail_re = trail_pattern(link_trail)
    links = []
    for node, offset, container, following in walk(code):
        if not isinstance(node, Wikilink):
            continue
        raw = str(node.title)
        title = normaliser.parse(raw)
        kind = "link"
        if title is not None and not title.leading_colon:
            if title.namespace == 14:
                kind = "category"
            elif title.namespace in (6, -2):
                kind = "file"
        trail = trail_after(following, trail_re) if kind == "link" else ""
        anchor = link_anchor(node) + trail if kind == "link" else ""
        links.append(WikiLink(
            offset=offset, length=len(str(node)) + len(trail), target_raw=raw,
            namespace=title.namespace if title else None, target_title=title.display if title else None,
            anchor=anchor, trail=trail, container=container, kind=kind,
        ))
    return links
