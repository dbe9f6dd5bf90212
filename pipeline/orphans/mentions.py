"""How an orphan is mentioned, in plain Python: its title and the titles of redirects to it, each also
without a parenthetical disambiguator ("Mercury (planet)" → "Mercury"), keyed for the one anchor
matcher; and the filters a mention or one occurrence of it must pass."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.text.matcher import SPACELESS, WORD, anchor_key, char_classes

DISAMBIGUATOR = re.compile(r"\s*\([^()]*\)\s*$")


@dataclass(frozen=True)
class Mention:
    key: str  # the matcher's key (folded, spaces collapsed)
    form: str  # as the title or redirect writes it
    from_redirect: bool
    stripped: bool  # the disambiguator was removed
    stem: bool = False  # the last letter cut: matches only with a link trail ("Trasun|a" for "Trasuns")


def strip_disambiguator(title: str) -> str:
    """"Mercury (planet)" → "Mercury"; a title that is only a parenthesis stays as it is."""
    stripped = DISAMBIGUATOR.sub("", title).strip()
    return stripped or title


def stem_of(form: str, min_letters: int) -> str | None:
    """The form without its last letter when its last word is a spaced-script word of at least
    `min_letters` letters (inflected languages change endings: "Trasuns", "Trasuna"); else None."""
    classes = char_classes(form)
    if not min_letters or SPACELESS in classes or not classes.endswith(WORD):
        return None
    word = len(classes) - len(classes.rstrip(WORD))
    return form[:-1] if word >= min_letters else None


def mentions_of(title: str, redirects, language: str = "", stem_min_letters: int = 0) -> list[Mention]:
    """The orphan's mentions, one per key: the title first, then its redirects (sorted), each as written
    and without its disambiguator; then (`stem_min_letters`) the stems of those."""
    out: dict[str, Mention] = {}
    for form, from_redirect in [(title, False)] + [(r, True) for r in sorted(redirects or ())]:
        for text, stripped in ((form, False), (strip_disambiguator(form), True)):
            key = anchor_key(text, language)
            if key and key not in out:
                out[key] = Mention(key, text, from_redirect, stripped and text != form)
    for mention in list(out.values()):
        stem = stem_of(mention.form, stem_min_letters)
        key = anchor_key(stem, language) if stem else None
        if key and key not in out:
            out[key] = Mention(key, stem, mention.from_redirect, mention.stripped, True)
    return list(out.values())


def too_short(form: str, min_chars: int, min_chars_spaceless: int) -> bool:
    """Fewer letters or digits than a mention needs (scripts without spaces need fewer)."""
    classes = char_classes(form)
    if SPACELESS in classes:
        return sum(c != "." for c in classes) < min_chars_spaceless
    return classes.count(WORD) < min_chars


def is_cased(text: str) -> bool:
    return text.lower() != text.upper()


SPACES = re.compile(r"\s+")


def case_agrees(written: str, form: str) -> bool:
    """In cased scripts the text must write the mention as its title does beyond the first letter
    ("NASA" is not "Nasa"; "mercury" may start a mention of "Mercury")."""
    if not is_cased(form):
        return True
    return SPACES.sub(" ", written)[1:] == SPACES.sub(" ", form)[1:]
