"""Article wikitext → running plain text with its links kept as spans, and the one sentence splitter.

Only running text counts: templates, references, tables, headings, files, comments and other
markup are dropped; bold, italics and inline HTML keep their text; every line break ends a
sentence (paragraphs and list items are one line each in wikitext).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from mwparserfromhell.nodes import Comment, Heading, HTMLEntity, Tag, Text, Wikilink
from mwparserfromhell.wikicode import Wikicode

from pipeline.text.matcher import word_count
from pipeline.text.titles import TitleNormaliser
from pipeline.text.wikilinks import INLINE_MARKUP, link_anchor, parse, trail_after, trail_pattern

TRANSPARENT_TAGS = {"b", "i", "u", "big", "small", "span", "abbr", "em", "strong", "s", "font"}
# ASCII-style ends need a space after them ("3.5", "U.S.A" are not ends); script ends do not
SPACED_ENDS = {".", "!", "?", ";"}


@dataclass(frozen=True)
class LinkSpan:
    start: int
    end: int
    target_title: str  # normalised, not redirect-resolved
    wikitext_offset: int
    wikitext_end: int


@dataclass
class PlainText:
    text: str = ""
    links: list[LinkSpan] = field(default_factory=list)
    # (plain offset, wikitext offset) at the start of each piece, for mapping spans back
    origins: list[tuple[int, int]] = field(default_factory=list)

    def wikitext_offset(self, plain_offset: int) -> int:
        index = bisect.bisect_right(self.origins, (plain_offset, float("inf"))) - 1
        if index < 0:
            return 0
        plain, wiki = self.origins[index]
        return wiki + (plain_offset - plain)


class _Renderer:
    def __init__(self, normaliser: TitleNormaliser, link_trail: str):
        self.normaliser = normaliser
        self.trail_re = trail_pattern(link_trail)
        self.parts: list[str] = []
        self.length = 0
        self.out = PlainText()

    def append(self, text: str, wiki_offset: int) -> None:
        if not text:
            return
        self.out.origins.append((self.length, wiki_offset))
        self.parts.append(text)
        self.length += len(text)

    def newline(self, wiki_offset: int) -> None:
        self.append("\n", wiki_offset)

    def render(self, code: Wikicode, base: int) -> None:
        offset = base
        skip = 0  # characters of the next text node already used as a link trail
        nodes = code.nodes
        for index, node in enumerate(nodes):
            text = str(node)
            if isinstance(node, Text):
                self.append(text[skip:], offset + skip)
                skip = 0
            elif isinstance(node, Wikilink):
                skip = self._link(node, offset, nodes[index + 1] if index + 1 < len(nodes) else None)
            elif isinstance(node, HTMLEntity):
                self.append(node.normalize(), offset)
            elif isinstance(node, Tag):
                self._tag(node, text, offset)
            elif isinstance(node, Comment):
                pass
            elif isinstance(node, Heading) or "\n" in text:
                self.newline(offset)  # a heading or a block template ends the line
            # other templates, external links and arguments are not running text
            offset += len(text)

    def _link(self, node: Wikilink, offset: int, following) -> int:
        title = self.normaliser.parse(str(node.title))
        if title is None or (not title.leading_colon and title.namespace in (6, 14, -2)):
            return 0  # files and categories are not text
        trail = trail_after(following, self.trail_re)
        anchor = link_anchor(node) + trail
        if anchor:
            start = self.length
            self.append(anchor, offset)
            self.out.links.append(LinkSpan(start, self.length, title.display, offset,
                                           offset + len(str(node)) + len(trail)))
        return len(trail)

    def _tag(self, node: Tag, text: str, offset: int) -> None:
        name = str(node.tag).strip().lower()
        if node.wiki_markup in ("''", "'''") or (name in TRANSPARENT_TAGS and not node.self_closing):
            if node.contents is not None:
                inner = str(node.contents)
                position = text.find(inner, len(node.wiki_markup or "") if node.wiki_markup else 0)
                self.render(node.contents, offset + max(position, 0))
        elif node.wiki_markup in INLINE_MARKUP or name in ("br", "p", "li", "dd", "dt"):
            self.newline(offset)  # list items and line breaks start a new line
        elif "\n" in text or name in ("table", "div", "gallery", "blockquote"):
            self.newline(offset)

    def finish(self) -> PlainText:
        self.out.text = "".join(self.parts)
        return self.out


def render_plain(wikitext: str, normaliser: TitleNormaliser, link_trail: str = "",
                 code: Wikicode | None = None) -> PlainText:
    renderer = _Renderer(normaliser, link_trail)
    renderer.render(code if code is not None else parse(wikitext), 0)
    return renderer.finish()


def split_sentences(text: str, ends: list[str], protected: list[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """(start, end) of each sentence, stripped of surrounding white space. A sentence ends at a line
    break, or after an end mark: "." "!" "?" need white space after them and are not taken after a
    single capital (initials); script ends such as "।" "։" "。" end a sentence where they stand. No
    split falls inside a protected span (a link)."""
    inside = bytearray(len(text) + 1)
    for start, end in protected:
        inside[start:end] = b"\x01" * (end - start)
    ends_set = set(ends)
    spans = []
    start = 0
    length = len(text)
    for i, char in enumerate(text):
        cut = None
        if char == "\n":
            cut = i
        elif char in ends_set and not inside[i]:
            if char in SPACED_ENDS:
                after_ok = i + 1 >= length or text[i + 1].isspace()
                initial = i >= 1 and text[i - 1].isupper() and (i < 2 or not text[i - 2].isalpha())
                if after_ok and not initial:
                    cut = i + 1
            else:
                cut = i + 1
        if cut is not None:
            spans.append((start, cut))
            start = cut
    spans.append((start, length))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


@dataclass(frozen=True)
class Sentence:
    index: int
    text: str
    links: list[tuple[int, int, str, int]]  # (start, end, target_title, wikitext_offset) in `text`
    wikitext_start: int
    wikitext_end: int


def article_sentences(plain: PlainText, ends: list[str], min_words: int = 3,
                      min_chars: int = 6) -> list[Sentence]:
    """Every clean sentence of the article: long enough, no leftover markup."""
    spans = split_sentences(plain.text, ends, [(link.start, link.end) for link in plain.links])
    starts = [link.start for link in plain.links]
    sentences = []
    for index, (start, end) in enumerate(spans):
        text = plain.text[start:end]
        if len(text) < min_chars or word_count(text) < min_words:
            continue
        if any(mark in text for mark in ("{{", "}}", "[[", "]]", "|", "<", ">", "__")):
            continue
        first = bisect.bisect_left(starts, start)
        links = []
        wikitext_end = plain.wikitext_offset(end - 1) + 1
        for link in plain.links[first:]:
            if link.start >= end:
                break
            links.append((link.start - start, link.end - start, link.target_title, link.wikitext_offset))
            if link.end >= end:
                wikitext_end = link.wikitext_end
        sentences.append(Sentence(index, text, links, plain.wikitext_offset(start), wikitext_end))
    return sentences
