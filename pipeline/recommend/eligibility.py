"""Which pages may get a task (contracts.md §1), in plain Python. Every skipped page gets a reason."""

from __future__ import annotations

import re
from datetime import datetime

from pipeline.text.titles import TitleNormaliser

WORDS = re.compile(r"\w+")
TEMPLATE_NAME = re.compile(r"\{\{\s*([^|{}\n]+?)\s*(?:\||\}\})")
LINK_TARGET = re.compile(r"\[\[\s*([^\[\]|\n]+?)\s*(?:\||\]\])")

# reason codes, in the order the rules are checked
NOT_MAIN_NAMESPACE = "not_main_namespace"
REDIRECT = "redirect"
DISAMBIGUATION = "disambiguation"
EDITED_RECENTLY = "edited_recently"
TOO_FEW_WORDS = "too_few_words"
TOO_MANY_WORDS = "too_many_words"
EXCLUDED_TEMPLATE = "excluded_template"
EXCLUDED_CATEGORY = "excluded_category"
HAS_SUBMISSION = "has_submission"
# evaluated, but fewer links than a task needs: a NULL row (negative cache)
TOO_FEW_LINKS = "too_few_links"
OK = "ok"
# the behaviour switch that marks a disambiguation page (or a template that makes one)
DISAMBIGUATION_MAGIC_WORD = "__DISAMBIG__"


def _names(values: list[str], prefix_namespace: int, normaliser: TitleNormaliser) -> set[str]:
    out = set()
    for value in values:
        title = normaliser.parse(value)
        if title is None:
            continue
        out.add(title.text if title.namespace in (0, prefix_namespace) else title.display)
    return out


class Eligibility:
    def __init__(self, recommend_config, normaliser: TitleNormaliser, disambiguation_ids: set[int] = frozenset()):
        self.config = recommend_config
        self.normaliser = normaliser
        self.disambiguation_ids = disambiguation_ids
        self.templates = _names(recommend_config.excluded_templates, 10, normaliser)
        self.categories = _names(recommend_config.excluded_categories, 14, normaliser)

    def reason(self, page_id: int, namespace: int, redirect_target: str | None, wikitext: str,
               revision_timestamp: datetime, now: datetime, is_disambiguation: bool = False) -> str | None:
        """None when the page is eligible, else the reason code (`is_disambiguation`: the page is
        known to be one, from the excluded-targets table joined to the pages)."""
        config = self.config
        if namespace != 0:
            return NOT_MAIN_NAMESPACE
        if redirect_target:
            return REDIRECT
        if is_disambiguation or page_id in self.disambiguation_ids or DISAMBIGUATION_MAGIC_WORD in wikitext:
            return DISAMBIGUATION
        if (now - revision_timestamp).total_seconds() < config.minimum_time_since_last_edit:
            return EDITED_RECENTLY
        if config.minimum_word_count or config.maximum_word_count:
            words = sum(1 for _ in WORDS.finditer(wikitext))
            if words < config.minimum_word_count:
                return TOO_FEW_WORDS
            if config.maximum_word_count and words > config.maximum_word_count:
                return TOO_MANY_WORDS
        if self.templates:
            for match in TEMPLATE_NAME.finditer(wikitext):
                title = self.normaliser.parse(match.group(1))
                # a template name without prefix is in the Template namespace
                if title is not None and title.namespace in (0, 10) and title.text in self.templates:
                    return EXCLUDED_TEMPLATE
        if self.categories:
            for match in LINK_TARGET.finditer(wikitext):
                title = self.normaliser.parse(match.group(1))
                if title is not None and title.namespace == 14 and not title.leading_colon \
                        and title.text in self.categories:
                    return EXCLUDED_CATEGORY
        return None
