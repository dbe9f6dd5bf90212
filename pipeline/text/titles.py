"""The one title normaliser: link targets and page titles → the wiki's display form."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import unquote

# canonical (English) names every wiki accepts besides its localised ones
CANONICAL_NAMESPACES = {
    -2: ["Media"], -1: ["Special"], 1: ["Talk"], 2: ["User"], 3: ["User talk"], 4: ["Project"],
    5: ["Project talk"], 6: ["File", "Image"], 7: ["File talk", "Image talk"], 8: ["MediaWiki"],
    9: ["MediaWiki talk"], 10: ["Template"], 11: ["Template talk"], 12: ["Help"], 13: ["Help talk"],
    14: ["Category"], 15: ["Category talk"], 100: ["Portal"], 101: ["Portal talk"], 828: ["Module"],
    829: ["Module talk"],
}
INVALID_TITLE_CHARS = re.compile(r"[\[\]{}|<>\x00-\x1f\x7f]")
SPACES = re.compile(r"[ _\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


@dataclass(frozen=True)
class Title:
    namespace: int
    text: str  # without the namespace prefix
    display: str  # with the local namespace prefix, as page titles appear in the dump
    fragment: str
    leading_colon: bool


def upper_first(text: str) -> str:
    """MediaWiki's ucfirst: one character upper-cased, unless that would change the length (ß → SS)."""
    if not text:
        return text
    first = text[0].upper()
    return (first if len(first) == 1 else text[0]) + text[1:]


class TitleNormaliser:
    """Built from the siteinfo of one wiki: its namespace names and `case` rules."""

    def __init__(self, namespaces: dict[int, str], case: str = "first-letter",
                 namespace_cases: dict[int, str] | None = None):
        self.names = {k: v for k, v in namespaces.items()}
        self.case = case
        self.namespace_cases = namespace_cases or {}
        self.prefixes: dict[str, int] = {}
        for key, aliases in CANONICAL_NAMESPACES.items():
            for alias in aliases:
                self.prefixes[alias.casefold()] = key
        for key, name in namespaces.items():
            if name:
                self.prefixes[SPACES.sub(" ", name).strip().casefold()] = key

    @classmethod
    def from_siteinfo(cls, siteinfo, case_override: str = "") -> TitleNormaliser:
        case = case_override or siteinfo.case
        cases = {} if case_override else dict(siteinfo.namespace_cases)
        return cls(dict(siteinfo.namespaces), case, cases)

    def prefix(self, namespace: int) -> str:
        name = self.names.get(namespace) or (CANONICAL_NAMESPACES.get(namespace) or [""])[0]
        return f"{name}:" if namespace and name else ""

    def parse(self, raw: str) -> Title | None:
        """A link target or title as written → Title; None when it names no page (empty, invalid)."""
        text = html.unescape(raw)
        if "%" in text:
            text = unquote(text)
        text = SPACES.sub(" ", text).strip()
        leading_colon = text.startswith(":")
        if leading_colon:
            text = text[1:].lstrip()
        fragment = ""
        if "#" in text:
            text, fragment = text.split("#", 1)
            text = text.rstrip()
        namespace = 0
        if ":" in text:
            head, rest = text.split(":", 1)
            key = self.prefixes.get(head.strip().casefold())
            if key is not None:
                namespace, text = key, rest.strip()
        if not text or INVALID_TITLE_CHARS.search(text):
            return None
        if self.namespace_cases.get(namespace, self.case) == "first-letter":
            text = upper_first(text)
        return Title(namespace, text, self.prefix(namespace) + text, fragment.strip(), leading_colon)

    def display(self, raw: str) -> str | None:
        title = self.parse(raw)
        return title.display if title else None
