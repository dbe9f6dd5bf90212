"""The one anchor matcher: finds dictionary anchors in plain text, longest first, on word
boundaries, case-insensitively with locale-correct folding. Used by link-probability counting,
training, evaluation and recommendation alike.

Matching runs an Aho–Corasick automaton (pyahocorasick) over the folded text, so its cost is linear
in the text size whatever the size of the dictionary.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import ahocorasick

# scripts written without spaces: every character boundary next to one of them is a word boundary
SPACELESS_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F),  # CJK ideographs
    (0x31F0, 0x31FF), (0xFF66, 0xFF9F),  # Katakana extensions, half-width Katakana
)
WORD, SPACELESS, OTHER = "w", "c", "."


def char_class(char: str) -> str:
    code = ord(char)
    for low, high in SPACELESS_RANGES:
        if low <= code <= high:
            return SPACELESS
    # letters, combining marks (Indic vowel signs sit inside words) and digits make words
    return WORD if unicodedata.category(char)[0] in "LMN" else OTHER


class _ClassTable(dict):
    """A str.translate table that classifies each character once and remembers it."""

    def __missing__(self, code: int) -> str:
        value = char_class(chr(code))
        self[code] = value
        return value


_CLASSES = _ClassTable()


def char_classes(text: str) -> str:
    """One class letter per character of `text`: w (word), c (spaceless script), . (other)."""
    return text.translate(_CLASSES)


def is_boundary(classes: str, position: int) -> bool:
    """A word boundary lies between two characters unless both belong to one spaced word."""
    if position <= 0 or position >= len(classes):
        return True
    return not (classes[position - 1] == WORD and classes[position] == WORD)


def japanese_word_char(char: str) -> bool:
    """Kanji and katakana (with the iteration and prolonged-sound marks) build Japanese words; hiragana are
    mostly particles and endings, so a word boundary lies next to them."""
    code = ord(char)
    return (0x30A0 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0xFF66 <= code <= 0xFF9F  # katakana
            or 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF
            or 0x20000 <= code <= 0x2FA1F or char == "々")


def inside_japanese_word(text: str, position: int) -> bool:
    """Between two kanji or katakana: inside a compound (天文学, ロシア語, 医学者), not a word boundary."""
    return 0 < position < len(text) and japanese_word_char(text[position - 1]) and japanese_word_char(text[position])


# folding must keep the length, so that offsets in folded text are offsets in the original
_SPECIAL_FOLD = {"İ": "i"}
_TURKIC_FOLD = {"İ": "i", "I": "ı"}


class _FoldTable(dict):
    def __init__(self, special: dict[str, str]):
        super().__init__({ord(k): v for k, v in special.items()})

    def __missing__(self, code: int) -> str:
        char = chr(code)
        lower = char.lower()
        value = lower if len(lower) == 1 else char
        self[code] = value
        return value


_FOLDS: dict[str, _FoldTable] = {}


def fold(text: str, language: str = "") -> str:
    """Lower-case for matching, one character for one character (Turkish and Azerbaijani dotless ı)."""
    key = language if language in ("tr", "az", "crh", "gag", "kk-latn") else ""
    table = _FOLDS.get(key)
    if table is None:
        table = _FOLDS[key] = _FoldTable(_TURKIC_FOLD if key else _SPECIAL_FOLD)
    return text.translate(table)


SPACES = re.compile(r"\s+")


def anchor_key(anchor: str, language: str = "") -> str:
    """The dictionary key of an anchor: white space collapsed, folded for matching."""
    return fold(SPACES.sub(" ", anchor).strip(), language)


def word_count(text: str) -> int:
    """Words for the `ngram` feature: runs of spaced-script letters, and each spaceless character."""
    classes = char_classes(text)
    count, previous = 0, OTHER
    for cls in classes:
        if cls == SPACELESS or (cls == WORD and previous != WORD):
            count += 1
        previous = cls
    return count


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    anchor: str  # the folded dictionary key


class AnchorMatcher:
    """Built once from the folded anchors of a dictionary; `find` is safe to call from many tasks.
    `link_trail` (MediaWiki's $linkTrail class): a match may run on over trail letters, as a link's
    text does ("[[Foo]]s"); the dictionary's anchors hold their trails already, so it passes none."""

    def __init__(self, anchors, language: str = "", link_trail: str = ""):
        self.language = language
        self.trail = re.compile(f"[{link_trail}]+") if link_trail else None
        self.automaton = ahocorasick.Automaton()
        count = 0
        for anchor in anchors:
            if anchor:
                self.automaton.add_word(anchor, anchor)
                count += 1
        self.size = count
        if count:
            self.automaton.make_automaton()

    def find_all(self, text: str, classes: str | None = None) -> list[Match]:
        """Every dictionary anchor occurring in `text` on word boundaries (overlaps included)."""
        if not self.size or not text:
            return []
        classes = classes if classes is not None else char_classes(text)
        folded = fold(text, self.language)
        compounds = self.language == "ja"  # Japanese: a match inside a kanji/katakana compound is no word
        found = []
        for last, anchor in self.automaton.iter(folded):
            start = last + 1 - len(anchor)
            if not is_boundary(classes, start):
                continue
            if compounds and (inside_japanese_word(text, start) or inside_japanese_word(text, last + 1)):
                continue
            if is_boundary(classes, last + 1):
                found.append(Match(start, last + 1, anchor))
            elif self.trail is not None:
                trail = self.trail.match(text, last + 1)
                if trail and is_boundary(classes, trail.end()):
                    found.append(Match(start, trail.end(), anchor))
        return found

    def find(self, text: str, classes: str | None = None) -> list[Match]:
        """Non-overlapping matches, the longest first (ties: the leftmost), in text order. Different
        anchors over the very same span (one with a link trail) are all kept."""
        taken: list[Match] = []
        used = bytearray(len(text))
        spans = set()
        for match in sorted(self.find_all(text, classes), key=lambda m: (m.start - m.end, m.start, m.anchor)):
            if (match.start, match.end) in spans:
                taken.append(match)
                continue
            if any(used[match.start:match.end]):
                continue
            spans.add((match.start, match.end))
            used[match.start:match.end] = b"\x01" * (match.end - match.start)
            taken.append(match)
        return sorted(taken, key=lambda m: m.start)
