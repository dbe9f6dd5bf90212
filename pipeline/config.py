"""Effective configuration: configs/default.toml, then configs/wikis/<wiki>.toml, then extra files,
then `--set section.key=value` overrides, then command flags. One typed, validated object."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A configuration file or override is wrong; the message names the source and the key."""


@dataclass(frozen=True)
class SparkConfig:
    master: str = "local[*]"
    driver_memory: str = "6g"
    shuffle_partitions: int = 8
    conf: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        _positive(self.shuffle_partitions, "spark.shuffle_partitions")
        if not re.fullmatch(r"\d+[kmgt]?", self.driver_memory, re.I):
            raise ConfigError(f"spark.driver_memory: {self.driver_memory!r} is not a JVM size such as '6g'")


@dataclass(frozen=True)
class IngestConfig:
    chunk_bytes: int = 32 * 1024 * 1024
    allow_truncated: bool = False
    max_redirect_hops: int = 10
    # a compressed single-stream dump larger than this is read by one task: say what to use instead
    single_stream_warning_bytes: int = 256 * 1024 * 1024

    def check(self) -> None:
        _positive(self.chunk_bytes, "ingest.chunk_bytes")
        _positive(self.max_redirect_hops, "ingest.max_redirect_hops")


@dataclass(frozen=True)
class TextConfig:
    language: str = "en"
    # empty: take the wiki's <case> rule from the dump's siteinfo
    case: str = ""
    sentence_ends: list[str] = field(default_factory=lambda: [".", "!", "?"])
    # characters (a regex class body) that join a link when written right after it: [[Foo]]bar
    link_trail: str = "a-z"

    def check(self) -> None:
        if self.case not in ("", "first-letter", "case-sensitive"):
            raise ConfigError(f"text.case: {self.case!r} must be '', 'first-letter' or 'case-sensitive'")
        if not self.sentence_ends or any(not s for s in self.sentence_ends):
            raise ConfigError("text.sentence_ends: give at least one non-empty sentence end")
        if self.link_trail:
            try:
                re.compile(f"[{self.link_trail}]+")
            except re.error as exc:
                raise ConfigError(f"text.link_trail: {self.link_trail!r} is not a regex class: {exc}") from exc


@dataclass(frozen=True)
class DictionaryConfig:
    # an anchor must be used as a link more than once (algorithm.md) …
    min_anchor_links: int = 2
    # … except on wikis with fewer articles than this, where once is enough (0: never)
    small_wiki_articles: int = 10000
    small_wiki_min_anchor_links: int = 1
    min_link_probability: float = 0.065
    excluded_anchor_patterns: list[str] = field(default_factory=lambda: [r"^\d+$", r"^\d+[/-]\d+$", r"^\w$"])
    # the reference's types that are never link targets: disambiguation and list pages, dates, units, names
    excluded_qids: list[str] = field(default_factory=lambda: [
        "Q4167410", "Q13406463",
        "Q3186692", "Q577", "Q573", "Q39911", "Q578", "Q36507", "Q47150325", "Q47018478", "Q205892",
        "Q14795564", "Q18340514",
        "Q1978718", "Q1790144", "Q1302471", "Q3647172", "Q2916980", "Q3550873", "Q8142", "Q27084",
        "Q202444", "Q1243157", "Q3409032", "Q12308941", "Q11879590",
    ])
    extra_excluded_qids: list[str] = field(default_factory=list)
    disambiguation_templates: list[str] = field(default_factory=lambda: ["Disambiguation", "Disambig", "Dab"])
    date_title_patterns: list[str] = field(default_factory=lambda: [r"^\d{1,4}$", r"^\d{1,4} (BC|AD|BCE|CE)$",
                                                                    r"^\d{1,4}s$"])
    # hubs (the home country, continents, broad fields): a target linked from this share of the wiki's
    # articles, and from at least hub_min_articles of them, is never recommended (0: no hubs; off because on
    # the shared wikis no share keeps the backtest's recall at the reference system's: README "Reading protocol")
    hub_link_share: float = 0.0
    hub_min_articles: int = 10
    # common words: an anchor mentioned (linked or not) in this share of the articles, and in at least
    # common_min_articles of them, is left out of the dictionary (0: off; README "Reading protocol")
    common_mention_share: float = 0.0
    common_min_articles: int = 10

    def check(self) -> None:
        _positive(self.min_anchor_links, "dictionary.min_anchor_links")
        _fraction(self.hub_link_share, "dictionary.hub_link_share")
        _positive(self.hub_min_articles, "dictionary.hub_min_articles")
        _fraction(self.common_mention_share, "dictionary.common_mention_share")
        _positive(self.common_min_articles, "dictionary.common_min_articles")
        _positive(self.small_wiki_min_anchor_links, "dictionary.small_wiki_min_anchor_links")
        if self.small_wiki_articles < 0:
            raise ConfigError("dictionary.small_wiki_articles must not be negative")
        _fraction(self.min_link_probability, "dictionary.min_link_probability")
        for key in ("excluded_anchor_patterns", "date_title_patterns"):
            for pattern in getattr(self, key):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ConfigError(f"dictionary.{key}: {pattern!r} is not a regex: {exc}") from exc
        for qid in self.excluded_qids + self.extra_excluded_qids:
            if not re.fullmatch(r"Q[1-9][0-9]*", qid):
                raise ConfigError(f"dictionary excluded QIDs: {qid!r} is not a Wikidata item id like 'Q5'")


@dataclass(frozen=True)
class ModelConfig:
    seed: int = 42
    test_fraction: float = 0.2
    # small wikis test more of their articles, so that the backtest has enough sentences
    min_test_articles: int = 200
    max_test_fraction: float = 0.6
    # a wiki with fewer usable links cannot train a model of its own: all its articles are held out for
    # evaluating joint models on it
    min_training_links: int = 500
    n_estimators: int = 200
    max_depth: int = 6
    learning_rate: float = 0.1
    candidates_per_anchor: int = 10
    # the link-graph relatedness feature (false: a constant 0, to measure what it brings)
    relatedness: bool = True
    # neighbours kept per page for relatedness: exact up to this degree, a bottom-k sample above it
    relatedness_sketch: int = 1024
    # training examples handed to XGBoost at most (beyond it a deterministic sample, each class's share kept)
    max_training_examples: int = 2_000_000
    # XGBoost threads (0: every core); the model is the same whatever the number
    threads: int = 0

    def check(self) -> None:
        _fraction(self.test_fraction, "model.test_fraction")
        _fraction(self.max_test_fraction, "model.max_test_fraction")
        if self.min_test_articles < 0 or self.min_training_links < 0:
            raise ConfigError("model.min_test_articles and model.min_training_links must not be negative")
        _positive(self.n_estimators, "model.n_estimators")
        _positive(self.max_depth, "model.max_depth")
        _positive(self.candidates_per_anchor, "model.candidates_per_anchor")
        _positive(self.relatedness_sketch, "model.relatedness_sketch")
        _positive(self.max_training_examples, "model.max_training_examples")
        if self.threads < 0:
            raise ConfigError(f"model.threads: {self.threads} must not be negative (0: every core)")
        if not 0 < self.learning_rate <= 1:
            raise ConfigError(f"model.learning_rate: {self.learning_rate} must be in (0, 1]")


@dataclass(frozen=True)
class GateConfig:
    # the backtest protocol whose figures decide the release
    protocol: str = "leakage_free"
    threshold: float = 0.5
    min_precision: float = 0.75
    min_recall: float = 0.20

    def check(self) -> None:
        for key in ("threshold", "min_precision", "min_recall"):
            _fraction(getattr(self, key), f"gate.{key}")
        if self.protocol not in ("reference", "leakage_free"):
            raise ConfigError(f"gate.protocol: {self.protocol!r} must be 'reference' or 'leakage_free'")


@dataclass(frozen=True)
class RecommendConfig:
    minimum_link_score: float = 0.6
    # the served threshold rises above minimum_link_score to the lowest backtest threshold at which the
    # wiki's own model reaches this leakage-free precision (0: off; README "Reading protocol")
    target_precision: float = 0.8
    maximum_links_per_task: int = 10
    minimum_links_per_task: int = 2
    minimum_time_since_last_edit: int = 86400
    minimum_word_count: int = 0
    # 0 means unbounded
    maximum_word_count: int = 0
    excluded_sections: list[str] = field(default_factory=list)
    exclude_lead: bool = False
    excluded_templates: list[str] = field(default_factory=list)
    excluded_categories: list[str] = field(default_factory=list)
    # recommendation outputs kept per wiki (the newest; dry runs included)
    keep_runs: int = 3
    # the orphan task's links merged into the link task's (README: the measured effect)
    include_orphans: bool = False

    def check(self) -> None:
        _fraction(self.minimum_link_score, "recommend.minimum_link_score")
        _fraction(self.target_precision, "recommend.target_precision")
        _positive(self.keep_runs, "recommend.keep_runs")
        _positive(self.maximum_links_per_task, "recommend.maximum_links_per_task")
        for key in ("minimum_links_per_task", "minimum_time_since_last_edit", "minimum_word_count",
                    "maximum_word_count"):
            if getattr(self, key) < 0:
                raise ConfigError(f"recommend.{key}: {getattr(self, key)} must not be negative")
        if self.minimum_links_per_task > self.maximum_links_per_task:
            raise ConfigError("recommend.minimum_links_per_task must not exceed maximum_links_per_task")
        if self.maximum_word_count and self.maximum_word_count < self.minimum_word_count:
            raise ConfigError("recommend.maximum_word_count must be 0 (unbounded) or ≥ minimum_word_count")


@dataclass(frozen=True)
class FeedbackConfig:
    # `linkrec feedback` exits 3 when the newest model version's acceptance (accepted / decided) is below
    # this over at least minimum_reviews decisions
    minimum_acceptance: float = 0.5
    minimum_reviews: int = 50
    # the acceptance whose threshold the feedback summary names
    target_acceptance: float = 0.8
    # a new model version whose acceptance falls this much below the one it replaced is flagged by nightly
    maximum_drop: float = 0.05
    # each accepted (positive) or rejected (negative) link weighs this much in training (0: not learned from)
    weight: float = 1.0

    def check(self) -> None:
        if self.weight < 0:
            raise ConfigError(f"feedback.weight: {self.weight} must not be negative (0: not learned from)")
        _fraction(self.maximum_drop, "feedback.maximum_drop")
        _fraction(self.minimum_acceptance, "feedback.minimum_acceptance")
        _fraction(self.target_acceptance, "feedback.target_acceptance")
        _positive(self.minimum_reviews, "feedback.minimum_reviews")


@dataclass(frozen=True)
class TargetingConfig:
    strategy: str = "all"
    limit: int = 0
    minimum_tasks_per_topic: int = 500
    seed: int = 42

    def check(self) -> None:
        if self.strategy not in ("all", "iterate", "topics"):
            raise ConfigError(f"targeting.strategy: {self.strategy!r} must be 'all', 'iterate' or 'topics'")
        if self.limit < 0 or self.minimum_tasks_per_topic < 0:
            raise ConfigError("targeting.limit and targeting.minimum_tasks_per_topic must not be negative")


@dataclass(frozen=True)
class SinksConfig:
    search_mode: str = "painless"
    search_index: str = "{wiki}_content"
    batch_size: int = 500
    bulk_size: int = 500
    retries: int = 5
    backoff_seconds: float = 0.5
    # MariaDB and search-index writes from the executors, a task per partition (false: through the driver)
    from_executors: bool = True
    # a run that would delete or clear more than this share of the existing tasks needs --allow-mass-delete
    max_delete_share: float = 0.5
    # ... unless it deletes or clears fewer tasks than this
    mass_delete_minimum: int = 20
    # seconds a database lock wait, a statement or a search request may take before it is retried
    timeout_seconds: float = 60.0

    def check(self) -> None:
        _fraction(self.max_delete_share, "sinks.max_delete_share")
        if self.timeout_seconds <= 0:
            raise ConfigError("sinks.timeout_seconds must be positive")
        if self.mass_delete_minimum < 0:
            raise ConfigError("sinks.mass_delete_minimum must not be negative")
        if self.search_mode not in ("cirrus", "painless"):
            raise ConfigError(f"sinks.search_mode: {self.search_mode!r} must be 'cirrus' or 'painless'")
        _positive(self.bulk_size, "sinks.bulk_size")
        _positive(self.batch_size, "sinks.batch_size")
        if "{wiki}" not in self.search_index:
            raise ConfigError(f"sinks.search_index: {self.search_index!r} must contain {{wiki}}")
        if self.retries < 0 or self.backoff_seconds < 0:
            raise ConfigError("sinks.retries and sinks.backoff_seconds must not be negative")


@dataclass(frozen=True)
class LookupsConfig:
    mode: str = "auto"
    # auto: broadcast the lookups while their estimated size in one Python process stays below this
    broadcast_max_bytes: int = 512 * 1024 * 1024
    # anchors per matcher shard on the join path (one shard's automaton per worker at a time)
    anchors_per_shard: int = 2_000_000

    def check(self) -> None:
        if self.mode not in ("auto", "broadcast", "join"):
            raise ConfigError(f"lookups.mode: {self.mode!r} must be 'auto', 'broadcast' or 'join'")
        _positive(self.broadcast_max_bytes, "lookups.broadcast_max_bytes")
        _positive(self.anchors_per_shard, "lookups.anchors_per_shard")


@dataclass(frozen=True)
class EmbeddingsConfig:
    dimensions: int = 100
    window: int = 5
    # a key seen in fewer documents has no vector of its own (an article still embeds from its other out-links)
    min_count: int = 1
    iterations: int = 1
    # Word2Vec's own partitions: more train faster, but the sum of their updates depends on float order
    partitions: int = 1
    step_size: float = 0.025
    seed: int = 42
    max_document_length: int = 1000
    # links to pages the input lacks (red links) as context words: measured to make neighbours worse (README)
    missing_targets: bool = False
    # the nearest-neighbour index: usearch HNSW over cosine, vectors quantised to this type
    index_quantisation: str = "f16"
    index_connectivity: int = 16
    index_expansion_add: int = 128
    index_expansion_search: int = 64
    # where `embeddings publish` and `nightly --embeddings` copy snapshots ("" = nowhere)
    publish_to: str = ""
    keep_snapshots: int = 3
    publish_chunk_bytes: int = 8 * 1024 * 1024

    def check(self) -> None:
        for key in ("dimensions", "window", "min_count", "iterations", "partitions", "max_document_length",
                    "index_connectivity", "index_expansion_add", "index_expansion_search", "keep_snapshots",
                    "publish_chunk_bytes"):
            _positive(getattr(self, key), f"embeddings.{key}")
        if not 0 < self.step_size <= 1:
            raise ConfigError(f"embeddings.step_size: {self.step_size} must be in (0, 1]")
        if self.index_quantisation not in ("f32", "f16", "i8"):
            raise ConfigError(f"embeddings.index_quantisation: {self.index_quantisation!r} must be 'f32', 'f16' "
                              "or 'i8'")


@dataclass(frozen=True)
class OrphansConfig:
    # run and nightly write the orphan task when the wiki's orphan model passes its gate
    enabled: bool = True
    table: str = "growthexperiments_orphan_link_recommendations"
    # its own reviewed links (contracts.md §4): never the link task's
    submissions_table: str = "growthexperiments_orphan_link_submissions"
    # the orphan model that serves the wiki: "" its own (trained by run / nightly), or a joint one's name
    model: str = ""
    minimum_link_score: float = 0.5
    maximum_links_per_task: int = 3
    minimum_links_per_task: int = 1
    # mention filters (README: each one's effect)
    min_mention_chars: int = 4
    min_mention_chars_spaceless: int = 2
    max_plain_share: float = 0.02
    min_plain_pages: int = 10
    max_anchor_probability: float = 0.3
    case_check: bool = True
    # a mention's stem (its last letter cut) matches with a link trail, when its last word has this many letters
    stem_min_letters: int = 5
    # simulated orphans: articles with this many incoming article links, their links removed
    simulated_min_incoming: int = 1
    simulated_max_incoming: int = 10
    simulated_max: int = 20000
    simulated_test_fraction: float = 0.3
    n_estimators: int = 150
    max_depth: int = 4
    gate_threshold: float = 0.5
    gate_min_precision: float = 0.75
    gate_min_recall: float = 0.20

    def check(self) -> None:
        for key in ("maximum_links_per_task", "minimum_links_per_task", "min_mention_chars",
                    "min_mention_chars_spaceless", "simulated_min_incoming", "simulated_max_incoming", "simulated_max",
                    "n_estimators", "max_depth"):
            _positive(getattr(self, key), f"orphans.{key}")
        for key in ("minimum_link_score", "max_plain_share", "max_anchor_probability", "simulated_test_fraction",
                    "gate_threshold", "gate_min_precision", "gate_min_recall"):
            _fraction(getattr(self, key), f"orphans.{key}")
        if self.minimum_links_per_task > self.maximum_links_per_task:
            raise ConfigError("orphans.minimum_links_per_task must not exceed orphans.maximum_links_per_task")
        if self.simulated_min_incoming > self.simulated_max_incoming:
            raise ConfigError("orphans.simulated_min_incoming must not exceed orphans.simulated_max_incoming")
        for key in ("table", "submissions_table"):
            if not re.fullmatch(r"[A-Za-z0-9_]+", getattr(self, key)):
                raise ConfigError(f"orphans.{key}: {getattr(self, key)!r} must be a plain SQL table name")
        if self.submissions_table == "growthexperiments_link_submissions":
            raise ConfigError("orphans.submissions_table: the orphan task never reads the link task's submissions")


@dataclass(frozen=True)
class Config:
    wiki: str
    spark: SparkConfig = field(default_factory=SparkConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    text: TextConfig = field(default_factory=TextConfig)
    dictionary: DictionaryConfig = field(default_factory=DictionaryConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    targeting: TargetingConfig = field(default_factory=TargetingConfig)
    sinks: SinksConfig = field(default_factory=SinksConfig)
    lookups: LookupsConfig = field(default_factory=LookupsConfig)
    embeddings: EmbeddingsConfig = field(default_factory=EmbeddingsConfig)
    orphans: OrphansConfig = field(default_factory=OrphansConfig)
    sources: tuple[str, ...] = ()
    # "section.key" → the layer that set the value (a file, "inferred from …", --set); absent: the default
    origins: dict[str, str] = field(default_factory=dict, compare=False)
    # what the inferred layer says of each value it set (the evidence, in one line)
    notes: dict[str, str] = field(default_factory=dict, compare=False)
    # the layers it was built from, but for the inferred one (to rebuild it once a dump has been read)
    layers: tuple = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("sources", "origins", "notes", "layers"):
            out.pop(key)
        return out

    def with_inferred(self, inferred: dict | None) -> Config:
        """The same layers with this inferred layer (what a dump just read implies) under the written ones."""
        if not self.layers:
            return load_config(self.wiki, inferred=inferred)
        return _build(self.wiki, list(self.layers), inferred)

    def origin(self, key: str) -> str:
        """Where "section.key" came from: "written" (a file or --set), "inferred" (the dump) or "default"."""
        source = self.origins.get(key, DEFAULT_SOURCE)
        if source == DEFAULT_SOURCE:
            return "default"
        return "inferred" if source.startswith(INFERRED_SOURCE) else "written"

    def to_toml(self) -> str:
        lines = [f"# effective configuration of {self.wiki}", f"# from: {', '.join(self.sources)}",
                 f"wiki = {_toml_value(self.wiki)}"]
        for name, section in self.to_dict().items():
            if not isinstance(section, dict):
                continue
            lines.append(f"\n[{name}]")
            for key, value in section.items():
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"



SECTION_TYPES_CLS = {
    "spark": SparkConfig, "ingest": IngestConfig, "text": TextConfig, "dictionary": DictionaryConfig,
    "model": ModelConfig, "gate": GateConfig, "recommend": RecommendConfig, "feedback": FeedbackConfig,
    "targeting": TargetingConfig, "sinks": SinksConfig, "lookups": LookupsConfig, "embeddings": EmbeddingsConfig,
    "orphans": OrphansConfig,
}


def _positive(value: int, key: str) -> None:
    if value <= 0:
        raise ConfigError(f"{key}: {value} must be positive")


def _fraction(value: float, key: str) -> None:
    if not 0 <= value <= 1:
        raise ConfigError(f"{key}: {value} must be between 0 and 1")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check one value against its declared type; ints are accepted where floats are declared."""
    origin = get_origin(hint)
    if origin is list:
        (item,) = get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return {str(k): _coerce(v, get_args(hint)[1], f"{where}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {hint}")


DEFAULT_SOURCE = "configs/default.toml"
INFERRED_SOURCE = "inferred from the dump"


def _merge(base: dict[str, dict[str, Any]], layer: dict[str, Any], source: str,
           origins: dict[str, str] | None = None) -> None:
    for section, values in layer.items():
        if section == "wiki":
            continue
        if section not in SECTION_TYPES_CLS:
            raise ConfigError(f"{source}: unknown section [{section}] (known: {', '.join(SECTION_TYPES_CLS)})")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        hints = get_type_hints(SECTION_TYPES_CLS[section])
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(f"{source}: unknown key '{section}.{key}' (known: {', '.join(hints)})")
            base.setdefault(section, {})[key] = _coerce(value, hints[key], f"{source}: {section}.{key}")
            if origins is not None:
                origins[f"{section}.{key}"] = source


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc


def parse_override(assignment: str) -> dict[str, Any]:
    """`section.key=value`, the value read as TOML (so lists, numbers and booleans keep their type)."""
    match = re.fullmatch(r"\s*([a-z_]+)\.([a-z_]+)\s*=(.*)", assignment, re.S)
    if not match:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value")
    section, key, raw = match.groups()
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is taken as a string
    return {section: {key: value}}


def _packaged(name: str) -> str | None:
    resource = resources.files("configs").joinpath(name)
    return resource.read_text(encoding="utf-8") if resource.is_file() else None


WIKI_NAME = re.compile(r"[a-z][a-z0-9_]*")


def load_config(wiki: str, files: tuple[str, ...] = (), overrides: tuple[str, ...] = (),
                flags: dict[str, dict[str, Any]] | None = None, inferred: dict | None = None,
                wiki_file: bool = True) -> Config:
    """Build the effective configuration of one wiki; raise ConfigError naming the source of a bad value.
    Layers, each over the one before: the packaged defaults, what the wiki's own dump implies (`inferred`:
    pipeline/siteconfig.py, saved at ingestion), the hand-written configs/wikis/<wiki>.toml (unless
    `wiki_file` is False), --config files, --set overrides, command flags."""
    if not WIKI_NAME.fullmatch(wiki):
        raise ConfigError(f"--wiki {wiki!r}: expected a database name such as 'enwiki'")
    layers: list[tuple[str, dict[str, Any]]] = []
    default = _packaged("default.toml")
    if default is None:
        raise ConfigError("configs/default.toml is missing from the installation")
    layers.append((DEFAULT_SOURCE, _read_toml(default, DEFAULT_SOURCE)))
    per_wiki = _packaged(f"wikis/{wiki}.toml") if wiki_file else None
    if per_wiki is not None:
        layers.append((f"configs/wikis/{wiki}.toml", _read_toml(per_wiki, f"configs/wikis/{wiki}.toml")))
    for path in files:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--config {path}: cannot read: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"--config {path}: not UTF-8 text (byte {exc.start})") from None
        layers.append((path, _read_toml(text, path)))
    for assignment in overrides:
        layers.append((f"--set {assignment}", parse_override(assignment)))
    if flags:
        layers.append(("command flags", {s: v for s, v in flags.items() if v}))
    return _build(wiki, layers, inferred)


def _build(wiki: str, written: list[tuple[str, dict[str, Any]]], inferred: dict | None) -> Config:
    """The layers merged in order, the inferred one right above the packaged defaults."""
    layers = list(written)
    if inferred:
        layers.insert(1, (f"{INFERRED_SOURCE} (snapshot {inferred.get('snapshot', '?')})", inferred["values"]))
    merged: dict[str, dict[str, Any]] = {}
    sources = []
    origins: dict[str, str] = {}
    for source, layer in layers:
        _merge(merged, layer, source, origins)
        sources.append(source)
    sections = {}
    for name, cls in SECTION_TYPES_CLS.items():
        section = cls(**merged.get(name, {}))
        section.check()
        sections[name] = section
    notes = dict((inferred or {}).get("notes", {}))
    return Config(wiki=wiki, sources=tuple(sources), origins=origins, notes=notes, layers=tuple(written), **sections)
