"""Configuration: layering, validation, and `linkrec config show`."""

from __future__ import annotations

import bz2
import collections
import html
import json
import lzma
import re
import tomllib

import pytest

from pipeline.config import ConfigError, load_config
from tests.conftest import DUMPS, run_cli


def test_defaults_are_the_published_constants():
    config = load_config("xxwiki")
    assert config.dictionary.min_link_probability == 0.065
    assert config.recommend.minimum_link_score == 0.6
    assert config.recommend.maximum_links_per_task == 10
    assert config.recommend.minimum_links_per_task == 2
    assert config.gate.min_precision == 0.75 and config.gate.min_recall == 0.20
    assert "Q4167410" in config.dictionary.excluded_qids
    assert config.sources == ("configs/default.toml",)


def test_wiki_file_overrides_defaults():
    ja = load_config("jawiki")
    assert ja.text.sentence_ends[0] == "。" and ja.text.link_trail == ""
    assert ja.sources[-1] == "configs/wikis/jawiki.toml"
    assert load_config("enwiki").dictionary.extra_excluded_qids == ["Q6256", "Q5107"]
    assert "։" in load_config("hywiki").text.sentence_ends
    assert "।" in load_config("bnwiki").text.sentence_ends


def test_later_layers_win(tmp_path):
    extra = tmp_path / "ops.toml"
    extra.write_text("[recommend]\nminimum_link_score = 0.7\nexcluded_sections = ['Notes']\n")
    config = load_config("jawiki", (str(extra),), ("recommend.minimum_link_score=0.8", "gate.threshold=0.6"),
                         {"ingest": {"allow_truncated": True}})
    assert config.recommend.minimum_link_score == 0.8
    assert config.recommend.excluded_sections == ["Notes"]
    assert config.gate.threshold == 0.6 and config.ingest.allow_truncated
    assert config.text.sentence_ends[0] == "。"


@pytest.mark.parametrize("content, message", [
    ("[recommend]\nminimum_link_scor = 0.7\n", r"ops.toml: unknown key 'recommend.minimum_link_scor'"),
    ("[recomend]\n", r"ops.toml: unknown section \[recomend\]"),
    ("[recommend]\nmaximum_links_per_task = 'ten'\n", "expected an integer"),
    ("[recommend]\nminimum_link_score = 1.5\n", "must be between 0 and 1"),
    ("[text]\ncase = 'upper'\n", "text.case"),
    ("[dictionary]\nextra_excluded_qids = ['P31']\n", "not a Wikidata item id"),
    ("[recommend\n", "not valid TOML"),
])
def test_bad_files_name_the_file_and_key(tmp_path, content, message):
    extra = tmp_path / "ops.toml"
    extra.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config("enwiki", (str(extra),))


def test_bad_override_and_wiki_name():
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config("enwiki", (), ("minimum_link_score",))
    with pytest.raises(ConfigError, match="--wiki"):
        load_config("../etc")


def test_config_show_prints_the_effective_config():
    result = run_cli(["--set", "recommend.maximum_links_per_task=5", "config", "show", "--wiki", "hywiki"])
    assert result.exit_code == 0
    shown = tomllib.loads(result.stdout)
    assert shown["recommend"]["maximum_links_per_task"] == 5
    assert shown["text"]["sentence_ends"][0] == "։"
    assert "configs/wikis/hywiki.toml" in result.stdout
    as_json = json.loads(run_cli(["config", "show", "--wiki", "enwiki", "--json"]).stdout)
    assert as_json["dictionary"]["extra_excluded_qids"] == ["Q6256", "Q5107"]


def test_config_show_rejects_bad_override_in_one_line():
    result = run_cli(["--set", "recommend.maximum_links_per_task=0", "config", "show", "--wiki", "enwiki"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "linkrec: error: recommend.maximum_links_per_task: 0 must be positive"]


SECTION = re.compile(r"^==([^=].*?)==\s*$", re.M)
# a references list: the tag, or a wiki's references-list template (names as the dumps use them)
REFERENCES_LIST = re.compile(r"<references|\{\{\s*(reflist|references|nūruodis|ծանցանկ|ծանոթագրություններ|"
                             r"সূত্র তালিকা|টীকা তালিকা|संदर्भयादी|संदर्भ यादी|παραπομπές)", re.I)
STANDALONE_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}\s*")


def reference_like_headings(path) -> set[str]:
    """Headings read off the dump's own content: sections that hold a references list or nothing but
    external web links, in at least half of the five or more articles that have them."""
    opener = bz2.open if str(path).endswith(".bz2") else lzma.open
    text = html.unescape(opener(path).read().decode("utf-8", "replace"))
    kinds: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for page in re.findall(r"<text[^>]*>(.*?)</text>", text, re.S):
        heads = list(SECTION.finditer(page))
        for i, head in enumerate(heads):
            body = page[head.end(): heads[i + 1].start() if i + 1 < len(heads) else len(page)]
            lines = [line for line in body.splitlines() if line.strip() and not line.startswith("[[")
                     and not STANDALONE_TEMPLATE.fullmatch(line.strip())]
            items = [line for line in lines if line.startswith("*")]
            web_links = (bool(items) and len(items) >= 0.8 * len(lines)
                         and sum("http" in item for item in items) >= 0.8 * len(items))
            name = head.group(1).strip()
            kinds[name]["all"] += 1
            kinds[name]["reference_like"] += bool(REFERENCES_LIST.search(body)) or web_links
    return {name for name, c in kinds.items() if c["all"] >= 5 and c["reference_like"] >= c["all"] / 2}


@pytest.mark.parametrize("wiki", sorted(DUMPS))
def test_every_shared_wiki_excludes_its_reference_sections(wiki):
    excluded = {name.casefold() for name in load_config(wiki).recommend.excluded_sections}
    found = reference_like_headings(DUMPS[wiki])
    assert found, "the dump has reference sections"
    assert {name for name in found if name.casefold() not in excluded} == set()


def test_the_packaged_defaults_and_the_code_defaults_agree():
    """configs/default.toml names every key the code has, with the same default, and nothing else."""
    from pipeline.config import Config

    text = (DUMPS["enwiki"].parents[3] / "configs" / "default.toml").read_text(encoding="utf-8")
    packaged = tomllib.loads(text)
    coded = {name: section for name, section in Config(wiki="xxwiki").to_dict().items() if isinstance(section, dict)}
    assert set(packaged) == set(coded)
    for name, section in coded.items():
        assert set(packaged[name]) == set(section), name
        for key, value in section.items():
            assert packaged[name][key] == value, f"{name}.{key}"
