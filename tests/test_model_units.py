"""Features, matcher and gold sentences on hand-checked values and real articles (no Spark)."""

from __future__ import annotations

import math

import pytest
import scipy.stats

from pipeline.config import load_config
from pipeline.ingest.dumpreader import read_siteinfo
from pipeline.model.features import (
    AnchorEntry,
    Candidate,
    Lookups,
    Sketch,
    choose_links,
    milne_witten_counts,
    mix,
    padded_kurtosis,
    sentence_candidates,
    similarity,
    sketch_relatedness,
)
from pipeline.model.tables import count_plain_occurrences
from pipeline.text.matcher import AnchorMatcher, Match, anchor_key, fold, word_count
from pipeline.text.sentences import article_sentences, render_plain, split_sentences
from pipeline.text.titles import TitleNormaliser
from tests.conftest import DUMPS
from tests.test_text import article


@pytest.mark.parametrize("counts", [[5, 3, 1], [10], [2, 2], [100, 1, 1, 4]])
def test_kurtosis_equals_the_references_padded_scipy_value(counts):
    expected = scipy.stats.kurtosis(counts + [1] * (1000 - len(counts)))
    assert padded_kurtosis(counts) == pytest.approx(expected, rel=1e-9)


def test_kurtosis_hand_checked():
    # 1000 values: one 2 and 999 ones → mean 1.001, m2 = 0.000999, m4 ≈ 0.000997003
    assert padded_kurtosis([2]) == pytest.approx(995.001, rel=1e-6)


def test_similarity_is_jaro():
    assert similarity("MARTHA", "marhta") == pytest.approx(0.9444, abs=1e-4)
    assert similarity("Paris", "paris") == 1.0


def sketch(neighbours, size=1024) -> Sketch:
    return Sketch.of(len(neighbours), [mix(n) for n in neighbours], size)


def test_milne_witten_hand_checked():
    # pages 10 and 20: neighbourhoods {1, 2, 3, 4} and {3, 4, 5}, not linked to each other
    expected = 1 - (math.log(4) - math.log(2)) / (math.log(100) - math.log(3))
    assert milne_witten_counts(4, 3, 2, 100) == pytest.approx(expected)
    assert sketch_relatedness(sketch({1, 2, 3, 4}), sketch({3, 4, 5}), 10, 20, 100) == pytest.approx(expected)
    assert sketch_relatedness(sketch({1, 2, 3, 4}), sketch({9}), 10, 20, 100) == 0.0
    assert sketch_relatedness(Sketch(0, frozenset()), sketch({3}), 10, 20, 100) == 0.0
    # their own link (20 among 10's neighbours, 10 among 20's) is left out of both sizes
    linked = sketch_relatedness(sketch({1, 2, 3, 4, 20}), sketch({3, 4, 5, 10}), 10, 20, 100)
    assert linked == pytest.approx(expected)


def test_sampled_sketches_estimate_relatedness_of_hub_pages():
    """Two hubs of 200,000 neighbours sharing 30,000: sketches of 1,024 values (0.5 %) give the exact
    value within 0.02, and the sketch holds no more than its size."""
    a = set(range(1, 200_001))
    b = set(range(170_001, 370_001))
    exact = milne_witten_counts(200_000, 200_000, 30_000, 6_800_000)
    small_a, small_b = sketch(a), sketch(b)
    assert len(small_a.mixed) == 1024 and small_a.tau is not None
    assert sketch_relatedness(small_a, small_b, 10**9, 10**9 + 1, 6_800_000) == pytest.approx(exact, abs=0.02)
    # exact below the size: the sample is the whole neighbourhood
    assert sketch({1, 2, 3}).tau is None


def test_matcher_word_boundaries_and_punctuation():
    matcher = AnchorMatcher([fold(a) for a in ["u.s.", "art", "new york", "york", "beatles", "paris"]])
    text = 'Martini went to the U.S. and New York, then saw "The Beatles" in Paris.'
    found = [(text[m.start:m.end], m.anchor) for m in matcher.find(text)]
    # "art" inside "Martini" is no match; "York" is inside the longer "New York"; "Paris" ends the sentence
    assert found == [("U.S.", "u.s."), ("New York", "new york"), ("Beatles", "beatles"), ("Paris", "paris")]


def test_matcher_dotted_i_and_turkish_folding():
    assert fold("İstanbul") == "istanbul" and len(fold("İstanbul")) == len("İstanbul")
    assert fold("ISPARTA", "tr") == "ısparta"
    matcher = AnchorMatcher([fold("istanbul")])
    assert [(m.start, m.end) for m in matcher.find("İstanbul'da")] == [(0, 8)]


def test_matcher_scripts_without_spaces_and_with_vowel_signs():
    ja = AnchorMatcher(["記号", "ラテン語"])
    text = "ラテン語の合字を起源とする記号である。"
    assert [text[m.start:m.end] for m in ja.find(text)] == ["ラテン語", "記号"]
    bn = AnchorMatcher(["ভারত"])
    assert bn.find("ভারতের পশ্চিমবঙ্গ") == []  # the suffix is part of the word
    assert [m.start for m in bn.find("ভারত ও")] == [0]
    assert word_count("ラテン語") == 4 and word_count("New York City") == 3


def test_link_probability_counting_on_a_tiny_corpus():
    """Two articles counted by hand: "Paris" is linked once and written twice more as plain text;
    "New York" is plain once; "York" never stands alone (inside "New York" it is not a separate match)."""
    normaliser = TitleNormaliser({0: ""})
    first = render_plain("[[Paris]] is big. Paris is old. New York is far.", normaliser)
    second = render_plain("I like Paris, not [[New York]].", normaliser)
    matcher = AnchorMatcher(["paris", "new york", "york"])
    counts = count_plain_occurrences(first, matcher) + count_plain_occurrences(second, matcher)
    assert counts == {"paris": 2, "new york": 1}
    # so link probability("paris") = 1 / (1 + 2), link probability("new york") = 1 / (1 + 1)


def test_sentence_splitter_per_language():
    assert split_sentences("Foo bar. Baz qux.", ["."]) == [(0, 8), (9, 17)]
    assert split_sentences("J. R. R. Tolkien wrote. Then 3.5 more.", ["."]) == [(0, 23), (24, 38)]
    text = "বাংলাদেশ একটি রাষ্ট্র। ঢাকা রাজধানী।"
    assert [text[a:b] for a, b in split_sentences(text, ["।"])] == ["বাংলাদেশ একটি রাষ্ট্র।", "ঢাকা রাজধানী।"]
    text = "記号である。起源とする。"
    assert [text[a:b] for a, b in split_sentences(text, ["。"])] == ["記号である。", "起源とする。"]
    # no split inside a link span
    assert split_sentences("See St. Louis now.", ["."], [(4, 13)]) == [(0, 18)]


# (wiki, article, first linked sentence, [(anchor, target)]) read off the dumps by hand
GOLD = [
    ("bnwiki", "বাংলাদেশ", "বাংলাদেশ () দক্ষিণ এশিয়ার একটি সার্বভৌম রাষ্ট্র।",
     [("দক্ষিণ এশিয়ার", "দক্ষিণ এশিয়া"), ("সার্বভৌম রাষ্ট্র", "সার্বভৌম রাষ্ট্র")]),
    ("hywiki", "Հայկական խոհանոց", "Հայկական լեռնաշխարհում մի ժամանակ գտնվում էր Վանի թագավորությունը։",
     [("Հայկական լեռնաշխարհում", "Հայկական լեռնաշխարհ"), ("Վանի թագավորությունը", "Վանի թագավորություն")]),
    ("jawiki", "アンパサンド", "アンパサンド（&, ）は、並立助詞「…と…」を意味する記号である。", [("記号", "記号")]),
    ("enwiki", "Albedo", 'Albedo () or reflection coefficient, derived from Latin albedo "whiteness" (or reflected '
     'sunlight) in turn from albus "white", is the diffuse reflectivity or reflecting power of a surface.',
     [("Latin", "Latin"), ("diffuse reflectivity", "Diffuse reflection")]),
]


@pytest.mark.parametrize("wiki, title, sentence, links", GOLD)
def test_gold_sentence_of_real_articles(wiki, title, sentence, links):
    config = load_config(wiki)
    normaliser = TitleNormaliser.from_siteinfo(read_siteinfo(str(DUMPS[wiki])))
    page = article(wiki, title)
    plain = render_plain(page.wikitext, normaliser, config.text.link_trail)
    first = next(s for s in article_sentences(plain, config.text.sentence_ends) if s.links)
    assert first.text == sentence
    assert [(first.text[a:b], target) for a, b, target, _ in first.links] == links
    # the sentence's wikitext slice holds every link of the sentence
    wikitext = page.wikitext[first.wikitext_start:first.wikitext_end]
    assert all(page.wikitext[offset:offset + 2] == "[[" and offset < first.wikitext_end
               for _, _, _, offset in first.links)
    assert wikitext.endswith(sentence[-1]) or wikitext.endswith("]]")


def lookups_for(entries: dict[str, list[tuple[int, str, int]]]) -> Lookups:
    anchors = {key: AnchorEntry(targets, padded_kurtosis([t[2] for t in targets]), 0.5)
               for key, targets in entries.items()}
    # 1 and 2 link each other and share the neighbour 5
    return Lookups(anchors, {1: sketch({2, 5}), 2: sketch({1, 5}), 5: sketch({1, 2})}, 10)


def test_candidates_skip_the_source_article_and_cap_targets():
    lookups = lookups_for({"paris": [(2, "Paris", 9), (3, "Paris, Texas", 1), (1, "Self", 1)]})
    found = sentence_candidates("We saw Paris.", lookups, source_id=1, per_anchor=1)
    assert [(c.text, c.target_id) for c in found] == [("Paris", 2)]
    assert found[0].features[:3] == (1.0, 9.0, 3.0)
    assert found[0].features[5] > 0  # related through the shared neighbour, not through their own link
    lonely = Lookups(lookups.anchors, {1: sketch({2}), 2: sketch({1})}, 10)
    assert sentence_candidates("We saw Paris.", lonely, 1, 1)[0].features[5] == 0.0


def test_choose_links_first_occurrence_once_per_target_in_order():
    def candidate(start, end, anchor, target):
        return Candidate(Match(start, end, anchor), anchor, target, str(target), ())

    scored = [(candidate(10, 15, "paris", 2), 0.9), (candidate(10, 15, "paris", 3), 0.95),
              (candidate(0, 4, "rome", 3), 0.7), (candidate(20, 25, "paris", 2), 0.99),
              (candidate(30, 35, "lyon", 4), 0.4)]
    chosen = [(c.match.start, c.target_id) for c, _ in choose_links(scored, 0.5)]
    # rome → 3 comes first in the text, so paris cannot take 3 again; later "paris" is not linked twice
    assert chosen == [(0, 3)]
    assert [(c.match.start, c.target_id) for c, _ in choose_links(scored, 0.3)] == [(0, 3), (30, 4)]
    assert anchor_key("  New   York ", "en") == "new york"
