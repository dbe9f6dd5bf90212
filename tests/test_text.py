"""The title normaliser and the wikilink reader, on hand-checked cases and real articles."""

from __future__ import annotations

import pytest

from pipeline.config import load_config
from pipeline.ingest.dumpreader import Page, plan_chunks, read_chunk, read_siteinfo
from pipeline.text.titles import TitleNormaliser, upper_first
from pipeline.text.wikilinks import extract_links
from tests.conftest import DUMPS

HY = TitleNormaliser({0: "", 6: "Պատկեր", 14: "Կատեգորիա"}, "first-letter")


@pytest.mark.parametrize("raw, display, namespace", [
    ("foo_bar", "Foo bar", 0),
    ("  foo   bar  ", "Foo bar", 0),
    ("foo#History", "Foo", 0),
    ("Foo%20bar%C3%A9", "Foo baré", 0),
    ("AT&amp;T", "AT&T", 0),
    (":category:Physics", "Կատեգորիա:Physics", 14),
    ("կատեգորիա:ֆիզիկա", "Կատեգորիա:Ֆիզիկա", 14),
    ("File:x.jpg", "Պատկեր:X.jpg", 6),
    ("Star Wars: Episode I", "Star Wars: Episode I", 0),
    ("ßeta", "ßeta", 0),
])
def test_titles_normalise_like_mediawiki(raw, display, namespace):
    title = HY.parse(raw)
    assert (title.display, title.namespace) == (display, namespace)


@pytest.mark.parametrize("raw", ["", "#Section", "Foo[bar]", "a|b", "<x>"])
def test_titles_that_name_no_page(raw):
    assert HY.parse(raw) is None


def test_case_sensitive_wiki_keeps_first_letter():
    assert TitleNormaliser({}, "case-sensitive").display("iPod") == "iPod"
    assert upper_first("ǉ") == "Ǉ" and upper_first("ß") == "ß"


def article(wiki: str, title: str) -> Page:
    path = DUMPS[wiki]
    for chunk in plan_chunks(str(path), 1 << 30):
        for record in read_chunk(chunk):
            if isinstance(record, Page) and record.title == title:
                return record
    raise AssertionError(f"{title} not in {path}")


def links_of(wiki: str, title: str):
    page = article(wiki, title)
    normaliser = TitleNormaliser.from_siteinfo(read_siteinfo(str(DUMPS[wiki])))
    config = load_config(wiki)
    return page, extract_links(page.wikitext, normaliser, config.text.link_trail)


# (wiki, article, offset, wikitext at offset, rendered anchor, normalised target) read off the dumps
GOLDEN_LINKS = [
    ("jawiki", "アンパサンド", 323, "[[記号]]", "記号", "記号"),
    ("jawiki", "アンパサンド", 383, "[[Trebuchet MS]]", "Trebuchet MS", "Trebuchet MS"),
    ("bnwiki", "বাংলাদেশ", 10612, "[[দক্ষিণ এশিয়া]]র", "দক্ষিণ এশিয়ার", "দক্ষিণ এশিয়া"),
    ("bnwiki", "বাংলাদেশ", 10746, "[[ভারত|ভারতের]]", "ভারতের", "ভারত"),
    ("hywiki", "Հայկական խոհանոց", 271, "[[Հայկական լեռնաշխարհ]]ում", "Հայկական լեռնաշխարհում",
     "Հայկական լեռնաշխարհ"),
    ("hywiki", "Հայկական խոհանոց", 320, "[[Վանի թագավորություն]]ը", "Վանի թագավորությունը",
     "Վանի թագավորություն"),
    ("enwiki", "Albedo", 350, "[[diffuse reflection|diffuse reflectivity]]", "diffuse reflectivity",
     "Diffuse reflection"),
    ("enwiki", "Albedo", 1053, "[[frequency]]", "frequency", "Frequency"),
    ("elwiki", "Γεωγραφία", 14094, "[[Στράβων]]α", "Στράβωνα", "Στράβων"),
    ("mrwiki", "मराठी भाषा", 1482, "[[भारत]]ात", "भारतात", "भारत"),
    ("ltgwiki", "Andora", 1049, "[[Europa|Europā]]", "Europā", "Europa"),
]


@pytest.mark.parametrize("wiki, title, offset, written, anchor, target", GOLDEN_LINKS)
def test_golden_links(wiki, title, offset, written, anchor, target):
    page, links = links_of(wiki, title)
    link = next(link for link in links if link.offset == offset)
    assert page.wikitext[link.offset:link.offset + link.length] == written
    assert (link.anchor, link.target_title, link.kind, link.container) == (anchor, target, "link", "")


def test_japanese_has_no_link_trail():
    page, links = links_of("jawiki", "アンパサンド")
    assert all(link.trail == "" for link in links)


def test_nested_links_carry_their_container():
    normaliser = TitleNormaliser({0: ""})
    text = ("A [[b]] {{T|x=[[c]]}} <ref>[[d]]</ref> '''[[e]]''' [[File:f.jpg|thumb|[[g]]]] "
            "[[Category:H]] [[:Category:I]]\n== [[j]] ==\n{|\n| [[k]]\n|}")
    found = {link.target_title: (link.container, link.kind) for link in extract_links(text, normaliser, "a-z")}
    assert found == {
        "B": ("", "link"), "C": ("template", "link"), "D": ("ref", "link"), "E": ("", "link"),
        "File:F.jpg": ("", "file"), "G": ("link", "link"), "Category:H": ("", "category"),
        "Category:I": ("", "link"), "J": ("heading", "link"), "K": ("table", "link"),
    }
    for link in extract_links(text, normaliser, "a-z"):
        assert text[link.offset:link.offset + 2] == "[["


@pytest.mark.slow  # every page of every dump parsed: the hand-written cases cover the constructs quickly
@pytest.mark.parametrize("wiki", sorted(DUMPS))
def test_every_link_offset_points_at_its_link(wiki):
    """Property over every main-namespace article of the dump."""
    path = DUMPS[wiki]
    normaliser = TitleNormaliser.from_siteinfo(read_siteinfo(str(path)))
    trail = load_config(wiki).text.link_trail
    checked = 0
    for chunk in plan_chunks(str(path), 1 << 30):
        for page in read_chunk(chunk):
            if not isinstance(page, Page) or page.namespace != 0 or page.redirect_target:
                continue
            previous = -1
            for link in extract_links(page.wikitext, normaliser, trail):
                written = page.wikitext[link.offset:link.offset + link.length]
                assert written.startswith("[[") and written.endswith("]]" + link.trail), (page.title, written)
                assert link.anchor.endswith(link.trail)
                assert link.offset > previous
                previous = link.offset
                checked += 1
    assert checked > 1000
