"""The configuration a wiki's own data implies, so that no wiki runs silently on English defaults.

From the dump's siteinfo: the language. From packaged public data (configs/languages/): MediaWiki's link
trail of that language (its fallback chain followed), its sentence ends, whether its script writes spaces.
Learned from the pages (in Spark, nothing wiki-sized collected): the disambiguation templates (template
pages that carry the magic word, their redirects, and templates that end disambiguation-shaped pages),
date and year title patterns, and the end-of-article sections to skip (headings whose sections hold
citations, bibliography or lists of links rather than prose, at the end of the articles). The result is a
configuration layer saved with the snapshot (`<warehouse>/_config/<wiki>.json`) and loaded under the
hand-written configs/wikis/<wiki>.toml, which still wins."""

from __future__ import annotations

import json
import re
import tomllib
from functools import cache
from importlib import resources

from pipeline.config import DictionaryConfig
from pipeline.ingest.derived import is_article
from pipeline.text.sections import heading_lines, section_key

ENGLISH_TRAIL = "a-z"
# trailing non-prose sections: a heading qualifies when this share of its occurrences are such sections
MIN_SHARE = 0.7
PROSE_CHARS = 200  # a section with this much running text is content, whatever else it holds
MIN_DATE_TITLES = 5  # titles sharing one digit pattern before it is a date pattern
INFERABLE = ("text.language", "text.link_trail", "text.sentence_ends", "dictionary.disambiguation_templates",
             "dictionary.date_title_patterns", "dictionary.excluded_anchor_patterns", "recommend.excluded_sections")


@cache
def packaged(name: str) -> dict:
    resource = resources.files("configs").joinpath(f"languages/{name}.toml")
    return tomllib.loads(resource.read_text(encoding="utf-8")) if resource.is_file() else {}


def language_of(siteinfo, wiki: str) -> str:
    """The content language: the dump's xml:lang, else the wiki's subdomain (MediaWiki's code where they differ)."""
    if getattr(siteinfo, "language", ""):
        return siteinfo.language
    domain = wiki.removesuffix("wiki").replace("_", "-")
    return packaged("link_trails").get("wiki_language", {}).get(domain, domain)


def link_trail(language: str) -> tuple[str | None, str]:
    """(trail class body, where it came from): MediaWiki's $linkTrail for the language, found by MediaWiki's
    own walk of its fallback languages ([resolved] in the packaged data); None for a language MediaWiki does
    not know (the default applies, and is said)."""
    data = packaged("link_trails")
    code = data.get("resolved", {}).get(language)
    if code is None:
        return None, f"no MediaWiki language {language!r} packaged"
    trail = data.get("trail", {}).get(code, ENGLISH_TRAIL)
    if code == language:
        return trail, f"MediaWiki's link trail of {language} ({data.get('source', {}).get(language, '?')})"
    return trail, f"MediaWiki's link trail of {code}, which {language} falls back to"


def disambiguation_words(language: str) -> list[str]:
    words = packaged("magic_words").get("disambiguation", {})
    return sorted({"__DISAMBIG__", *words.get(language, []), *words.get(language.split("-")[0], [])})


# --- sections ------------------------------------------------------------------------------------------------

REF_TAG = re.compile(r"<ref(?!erences)[^>/]*/>|<ref(?!erences)[^>]*>.*?</ref>", re.S | re.I)
TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
TABLE = re.compile(r"\{\|.*?\|\}", re.S)
LINK = re.compile(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]")
CITATION = re.compile(r"https?://|\bISBN\b|<references|\{\{\s*(cite|citation)", re.I)
YEAR = re.compile(r"\d{4}")
EXTERNAL = re.compile(r"\[https?://[^\]]*\]")
SUBHEADING = re.compile(r"=+[^=].*?=+")
BARE = re.compile(r"(\[\[[^\]]*\]\]\s*)+|__[A-Z_]+__")


def _without_templates(text: str) -> str:
    previous = None
    while previous != text:
        previous, text = text, TEMPLATE.sub("", text)
    return text


def section_kind(body: str, cites: bool = False) -> str:
    """"content" (running text), "citations" (references, notes, bibliography: reference tags, URLs,
    citation templates, book entries, or, in an article with reference tags, only templates: its reference
    list), "links" (a list of links, as in "see also") or "empty" (nothing, or only templates in an article
    without references: a stub's placeholder)."""
    plain = _without_templates(TABLE.sub("", REF_TAG.sub("", body)))
    # categories, files and behaviour switches are no text of the section
    lines = [line.strip() for line in plain.splitlines()
             if line.strip() and not BARE.fullmatch(line.strip()) and not SUBHEADING.fullmatch(line.strip())]
    # running text: the letters and digits left once links and external links are taken out
    prose = sum(sum(ch.isalnum() for ch in EXTERNAL.sub("", LINK.sub("", line))) for line in lines
                if line[0] not in "*#:;|!{<=")
    if prose >= PROSE_CHARS:
        return "content"
    unreferenced = REF_TAG.sub("", body)  # a reference tag in running text does not make it a bibliography
    items = [line for line in unreferenced.splitlines() if line.strip()[:1] in ("*", "#")]
    if not items:
        if not lines:
            return "citations" if cites and body.strip() else "empty"
        if CITATION.search(unreferenced):
            return "citations"
        return "links" if prose * 5 < sum(len(line) for line in lines) else "content"  # a line of links
    # references, bibliography entries (a year), external links; or entries that are a link ("see also")
    # an external link, a citation or link template, or a book (a year, no article linked)
    cited = sum(1 for item in items if CITATION.search(item) or "[http" in item
                or item.lstrip("*#: ").startswith("{{") or (YEAR.search(item) and "[[" not in item))
    linked = sum(1 for item in items if item.lstrip("*#: ").lstrip("'").startswith("[["))
    if (cited + linked) * 10 < len(items) * 6:
        return "content"
    return "citations" if cited >= linked else "links"


def section_profiles(wikitext: str) -> list[tuple[str, str, bool]]:
    """(heading, kind, trailing) of each level-2 section, found line by line (as the engine finds them);
    trailing: at most one content section after it."""
    text = wikitext or ""
    cites = "<ref" in text
    marks = [(begin, end, heading) for begin, end, level, heading in heading_lines(text) if level == 2]
    found = []
    for index, (_, end, heading) in enumerate(marks):
        stop = marks[index + 1][0] if index + 1 < len(marks) else len(text)
        found.append((heading, section_kind(text[end:stop], cites)))
    out, content_after = [], 0
    for heading, kind in reversed(found):
        out.append((heading, kind, content_after <= 1))
        content_after += kind == "content"
    return [item for item in out[::-1] if item[1] != "empty"]


def _profiles(rows):
    for row in rows:
        for heading, kind, trailing in section_profiles(row.wikitext):
            if heading:
                yield section_key(heading), heading, kind != "content", kind == "citations", trailing


def excluded_sections(spark, pages, usual=(), limit: int = 200) -> tuple[list[str], list[dict], set[str]]:
    """Headings that end articles with citations or link lists, learned per heading across the wiki; and
    which of the `usual` names (case-folded) occur in it as sections, from the same pass."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    schema = T.StructType([T.StructField("key", T.StringType()), T.StructField("heading", T.StringType()),
                           T.StructField("reference", T.BooleanType()), T.StructField("citations", T.BooleanType()),
                           T.StructField("trailing", T.BooleanType())])
    articles = pages.where(is_article()).select("wikitext")
    found = spark.createDataFrame(articles.rdd.mapPartitions(_profiles), schema, verifySchema=False)
    stats = (found.groupBy("key").agg(F.count(F.lit(1)).alias("articles"), F.min("heading").alias("heading"),
                                      F.avg(F.col("reference").cast("double")).alias("reference_share"),
                                      F.avg(F.col("citations").cast("double")).alias("citation_share"),
                                      F.avg(F.col("trailing").cast("double")).alias("trailing_share"))
             .where((F.col("reference_share") >= MIN_SHARE) & (F.col("trailing_share") >= MIN_SHARE)
                    # a heading seen once must hold citations: a single list of links may be an index
                    & ((F.col("articles") >= 2) | (F.col("citation_share") >= 1.0)))
             .orderBy(F.col("articles").desc(), "key").limit(limit))
    evidence = [{"heading": r.heading, "articles": r.articles, "reference_share": round(r.reference_share, 3),
                 "trailing_share": round(r.trailing_share, 3)} for r in stats.collect()]
    keys = sorted({section_key(name) for name in usual})
    present = {r.key for r in found.where(F.col("key").isin(keys)).select("key").distinct().collect()} if keys \
        else set()
    return [e["heading"] for e in evidence], evidence, present


# --- disambiguation templates -----------------------------------------------------------------------------------

TAIL_TEMPLATE = re.compile(r"\{\{\s*([^{}|\n]+?)\s*(?:\|[^{}]*)?\}\}")


def shaped_as_disambiguation(title: str, wikitext: str) -> bool:
    """A list of at least two links of which most lead to titles holding the page's own title."""
    base = re.sub(r"\s*\([^()]*\)\s*$", "", title).strip().casefold()
    if not base:
        return False
    stem = base if len(base) < 5 else base[:len(base) - 2]  # the page's own title, an inflection aside
    items = [line for line in (wikitext or "").splitlines() if line.lstrip().startswith(("*", "#"))]
    targets = [m.group(1) for m in (re.search(r"\[\[([^|\]]+)", item) for item in items) if m]
    if len(targets) < 2:
        return False
    return sum(1 for t in targets if stem in t.casefold()) * 2 >= len(targets)


def list_like(wikitext: str) -> bool:
    """A short page that is a list of links, without references (what disambiguation pages look like)."""
    text = wikitext or ""
    if "<ref" in text:
        return False
    items = [line.strip() for line in text.splitlines() if line.strip()[:1] in ("*", "#")]
    if len(items) < 2 or sum(1 for item in items if "[[" in item) * 10 < len(items) * 6:
        return False
    prose = sum(len(line.strip()) for line in _without_templates(text).splitlines()
                if line.strip() and line.strip()[0] not in "*#=[{|<:;")
    return prose <= 300


def _template_name(raw: str) -> str:
    name = raw.replace("_", " ").strip()
    return name[:1].upper() + name[1:]


def _tail_templates(rows):
    for row in rows:
        text = row.wikitext or ""
        if row.title[:1].isdigit():
            continue  # year and date pages are lists too, with navigation templates of their own
        shaped, listed = shaped_as_disambiguation(row.title, text), list_like(text)
        for name in {_template_name(m.group(1)) for m in TAIL_TEMPLATE.finditer(text[-400:])}:
            if name and ":" not in name and "#" not in name:
                yield name, shaped, listed


def disambiguation_templates(spark, pages, language: str, template_prefix: str) -> tuple[list[str], dict]:
    """Templates whose page carries the disambiguation magic word, their redirects, and templates found at the
    end of disambiguation-shaped articles far more than elsewhere."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    words = disambiguation_words(language)
    marked = F.lit(False)
    for word in words:
        marked = marked | F.col("wikitext").contains(word)
    templates = pages.where(F.col("namespace") == 10)
    magic = {r.title.split(":", 1)[-1] for r in templates.where(marked).select("title").limit(1000).collect()}
    redirects = set()
    if magic:
        targets = [f"{template_prefix}:{name}" for name in magic]
        redirects = {r.title.split(":", 1)[-1] for r in templates.where(F.col("redirect_target").isin(targets))
                     .select("title").limit(1000).collect()}
    schema = T.StructType([T.StructField("name", T.StringType()), T.StructField("shaped", T.BooleanType()),
                           T.StructField("listed", T.BooleanType())])
    articles = pages.where(is_article()).select("title", "wikitext")
    uses = spark.createDataFrame(articles.rdd.mapPartitions(_tail_templates), schema, verifySchema=False)
    usage = (uses.groupBy("name").agg(F.sum(F.col("shaped").cast("int")).alias("shaped"),
                                      F.sum(F.col("listed").cast("int")).alias("listed"),
                                      F.sum((F.col("shaped") | F.col("listed")).cast("int")).alias("alike"),
                                      F.count(F.lit(1)).alias("uses"))
             # on pages like disambiguation pages (listing their title's variants, or short lists of links)
             # two times in three, one of them listing its title's variants; or on lists of links 19 times in
             # 20; a template seen once on such a page cannot be told from a navigation box seen once
             .where(((F.col("shaped") >= 1) & (F.col("alike") >= 2) & (F.col("alike") * 3 >= F.col("uses") * 2))
                    | ((F.col("listed") >= 5) & (F.col("listed") * 20 >= F.col("uses") * 19)))
             .orderBy(F.col("shaped").desc(), "name").limit(20).collect())
    learned = {r.name for r in usage}
    names = sorted(magic | redirects | learned)
    return names, {"magic_word": sorted(magic), "redirects": sorted(redirects), "magic_words": words,
                   "ending_disambiguation_pages": {r.name: [int(r.shaped), int(r.uses)] for r in usage}}


# --- date titles ----------------------------------------------------------------------------------------------


def date_title_patterns(pages) -> tuple[list[str], dict]:
    """The default patterns (years), and one per shape of one number and at most two words that many titles
    share ("19 godu symts", "1 Ιανουαρίου")."""
    from pyspark.sql import functions as F

    titles = pages.where(is_article()).select("title")
    shape = F.regexp_replace("title", r"\d+", "#")
    shapes = (titles.where(F.col("title").rlike(r"^\D*\d{1,4}\D*$")).select(shape.alias("shape"))
              .groupBy("shape").count().where(F.col("count") >= MIN_DATE_TITLES)
              .orderBy(F.col("count").desc(), "shape").limit(50).collect())
    patterns, evidence = list(DictionaryConfig().date_title_patterns), {}  # years; shapes are added
    for row in shapes:
        words = row.shape.replace("#", " ").split()
        if row.shape == "#" or not 0 < len(words) <= 2 or not (row.shape.startswith("#") or row.shape.endswith("#")):
            continue
        before, _, after = row.shape.partition("#")
        patterns.append("^" + re.escape(before) + r"\d{1,4}" + re.escape(after) + "$")
        evidence[row.shape] = int(row["count"])
    return patterns, evidence


# --- the layer ---------------------------------------------------------------------------------------------------


def infer(spark, warehouse, wiki: str, snapshot: str, siteinfo) -> dict:
    """The inferred configuration layer of one snapshot: {"snapshot", "language", "values", "notes", "evidence"}."""
    language = language_of(siteinfo, wiki)
    trail, trail_source = link_trail(language)
    text = packaged("text")
    pages = warehouse.read("pages", wiki, snapshot)
    values: dict = {"text": {"language": language}, "dictionary": {}, "recommend": {}}
    notes = {"text.language": f"the dump's siteinfo ({siteinfo.dbname or wiki})", "text.link_trail": trail_source}
    if trail is not None:
        values["text"]["link_trail"] = trail
    ends = text.get("sentence_ends", {}).get(language)
    if ends:
        values["text"]["sentence_ends"] = ends
        notes["text.sentence_ends"] = f"packaged sentence ends of {language}"
    if language in text.get("spaceless", {}).get("languages", []):
        values["dictionary"]["excluded_anchor_patterns"] = [r"^\d+$", r"^\d+[/-]\d+$"]
        notes["dictionary.excluded_anchor_patterns"] = f"{language} writes no spaces: a single character may be a word"
    prefix = siteinfo.namespaces.get(10, "Template")
    templates, disambiguation = disambiguation_templates(spark, pages, language, prefix)
    # the default (English) names stay: many wikis keep them as redirects
    english = DictionaryConfig().disambiguation_templates
    values["dictionary"]["disambiguation_templates"] = sorted({*templates, *english})
    notes["dictionary.disambiguation_templates"] = (
        f"{len(disambiguation['magic_word'])} template(s) carrying {'/'.join(disambiguation['magic_words'])}, "
        f"{len(disambiguation['redirects'])} redirect(s) to them, {len(disambiguation['ending_disambiguation_pages'])} "
        "ending disambiguation-shaped pages; with the English names")
    dates, date_evidence = date_title_patterns(pages)
    values["dictionary"]["date_title_patterns"] = dates
    notes["dictionary.date_title_patterns"] = "the default year patterns, and " + (
        ", ".join(f"'{s}' ({n} titles)" for s, n in date_evidence.items()) or "no shared number pattern")
    usual = text.get("reference_sections", {}).get(language, [])
    sections, section_evidence, present = excluded_sections(spark, pages, usual)
    values["recommend"]["excluded_sections"] = sections
    learned = {section_key(s) for s in sections}
    missed = [name for name in usual if section_key(name) in present and section_key(name) not in learned]
    notes["recommend.excluded_sections"] = (
        f"learned: {len(sections)} headings ending articles with citations or link lists"
        + (f"; the usual names of {language} found in the dump and not learned: {', '.join(missed)}" if missed else ""))
    return {"wiki": wiki, "snapshot": snapshot, "language": language, "values": values, "notes": notes,
            "evidence": {"disambiguation": disambiguation, "date_titles": date_evidence, "sections": section_evidence,
                         "usual_sections_missed": missed}}


def path(warehouse, wiki: str) -> str:
    return f"{warehouse.root}/_config/{wiki}.json"


def save(warehouse, inferred: dict) -> None:
    warehouse.write_text(path(warehouse, inferred["wiki"]), json.dumps(inferred, ensure_ascii=False, indent=2,
                                                                     sort_keys=True))


def load(warehouse, wiki: str) -> dict | None:
    text = warehouse.read_text(path(warehouse, wiki))
    return json.loads(text) if text else None


def english_defaults(config, language: str) -> list[str]:
    """The inferable values a non-English wiki would take from the English defaults."""
    if not language or language.split("-")[0] == "en":
        return []
    return [key for key in ("text.language", "text.link_trail", "dictionary.disambiguation_templates",
                            "recommend.excluded_sections") if config.origin(key) == "default"]
