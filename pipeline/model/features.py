"""Candidate links and their features, in plain Python: the same code for training, evaluation
and recommendation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import Levenshtein

from pipeline.text.matcher import AnchorMatcher, Match, word_count

FEATURES = ["ngram", "freq", "ambig", "kurtosis", "similarity", "relatedness"]
# bump when a feature's definition changes, so that models trained on the old one are retrained
FEATURES_VERSION = 3  # 3: lower-case text of a capitalised name is no candidate
KURTOSIS_PAD = 1000


def padded_kurtosis(counts: list[int], pad_to: int = KURTOSIS_PAD) -> float:
    """Excess kurtosis of the anchor's target counts padded with ones to `pad_to` values, as the
    reference computes it (scipy.stats.kurtosis: Fisher, biased), in closed form so that the cost is
    the number of targets, not `pad_to`. A peaked distribution (one dominant target) scores high."""
    ones = max(0, pad_to - len(counts))
    n = len(counts) + ones
    mean = (sum(counts) + ones) / n
    m2 = (sum((c - mean) ** 2 for c in counts) + ones * (1 - mean) ** 2) / n
    if m2 == 0:
        return -3.0
    m4 = (sum((c - mean) ** 4 for c in counts) + ones * (1 - mean) ** 4) / n
    return m4 / (m2 * m2) - 3.0


def similarity(anchor: str, title: str) -> float:
    """Jaro similarity of the anchor and the target title (what the reference really uses)."""
    return Levenshtein.jaro(anchor.lower(), title.lower())


MASK64 = (1 << 64) - 1
# splitmix64's finaliser: two (shift, multiply) steps, then a last shift
MIX_STEPS = ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB))
MIX_LAST_SHIFT = 31


def mix(value: int) -> int:
    """Page id → a uniformly scattered 63-bit value (splitmix64's finaliser, top 63 bits, so that it is a
    non-negative Spark long): a sketch keeps the neighbours with the smallest values."""
    value &= MASK64
    for shift, multiplier in MIX_STEPS:
        value = ((value ^ (value >> shift)) * multiplier) & MASK64
    return (value ^ (value >> MIX_LAST_SHIFT)) >> 1


def mix_array(ids):
    """`mix` over a numpy array of page ids (the Spark stage that builds sketches)."""
    import numpy as np

    x = np.asarray(ids).astype(np.uint64)
    with np.errstate(over="ignore"):
        for shift, multiplier in MIX_STEPS:
            x = (x ^ (x >> np.uint64(shift))) * np.uint64(multiplier)
        x = x ^ (x >> np.uint64(MIX_LAST_SHIFT))
    return (x >> np.uint64(1)).astype(np.int64)


@dataclass(frozen=True)
class Sketch:
    """A page's link neighbourhood, bounded: every neighbour (as `mix` of its id) when the degree is
    at most the sketch size, else the `size` smallest (a bottom-k sample); `tau` is then the largest
    kept value, and every neighbour at or below it is kept."""

    degree: int
    mixed: frozenset
    tau: int | None = None  # None: exact

    @classmethod
    def of(cls, degree: int, smallest_mixed, size: int) -> Sketch:
        kept = sorted(smallest_mixed)[:size]
        return cls(degree, frozenset(kept), kept[-1] if degree > len(kept) and kept else None)

    def contains(self, page_id: int) -> bool:
        """Whether `page_id` is a neighbour, as far as the sketch can tell (exact when not sampled)."""
        return mix(page_id) in self.mixed


EMPTY_SKETCH = Sketch(0, frozenset())


def sketch_relatedness(source: Sketch, target: Sketch, source_id: int, target_id: int, articles: int) -> float:
    """Milne–Witten of two pages from their sketches, their own link left out. Exact when neither is
    sampled; else the common neighbours are counted below the smaller threshold and scaled up by the
    share of the hash space it covers (cost: at most the sketch size, whatever the degrees)."""
    if not source.degree or not target.degree:
        return 0.0
    direct = int(target.contains(source_id) or source.contains(target_id))
    shared = source.mixed & target.mixed  # CPython iterates the smaller set
    if source.tau is None and target.tau is None:
        common: float = len(shared)
    else:
        tau = min(t for t in (source.tau, target.tau) if t is not None)
        common = sum(1 for value in shared if value <= tau) * (1 << 63) / (tau + 1)
    return milne_witten_counts(source.degree - direct, target.degree - direct, common, articles)


def milne_witten_counts(size_a: int, size_b: int, common: float, articles: int) -> float:
    """The same from the neighbourhood sizes and their overlap (what a join computes)."""
    if size_a <= 0 or size_b <= 0 or common <= 0 or articles < 2:
        return 0.0
    big, small = max(size_a, size_b), min(size_a, size_b)
    denominator = math.log(articles) - math.log(small)
    if denominator <= 0:
        return 1.0
    return max(0.0, min(1.0, 1.0 - (math.log(big) - math.log(common)) / denominator))


# an anchor the wiki writes capitalised in at least this share of its links inside sentences is a name:
# lower-case text is another word ("anh" he / "Anh" England, "đức" virtue / "Đức" Germany, "bill" / "Bill")
CAPITALISED_NAME_SHARE = 0.9
# the anchors table's columns of an AnchorEntry, after anchor_key
ENTRY_COLUMNS = ("targets", "kurtosis", "link_probability", "capitalised")


@dataclass
class AnchorEntry:
    targets: list[tuple[int, str, int]]  # (page id, title, count), most linked first
    kurtosis: float
    link_probability: float
    capitalised: float = 0.0  # share of its links inside sentences written with an upper-case first letter

    @classmethod
    def of(cls, row) -> AnchorEntry:
        """From a row of the anchors table (or a slice's entry struct)."""
        return cls([(int(t.page_id), t.title, int(t["count"])) for t in row.targets], float(row.kurtosis),
                   float(row.link_probability), float(row.capitalised or 0.0))

    def names_only(self, written: str) -> bool:
        """Whether `written` is lower-case text of an anchor the wiki writes as a name (capitalised): then it
        is another word, not a mention. Scripts without case never are."""
        return self.capitalised >= CAPITALISED_NAME_SHARE and written[:1].islower()


@dataclass
class Lookups:
    """Everything the per-sentence / per-article code needs: dictionary, matcher, link graph."""

    anchors: dict[str, AnchorEntry]
    neighbours: dict[int, Sketch]  # the whole graph (broadcast), or only the pages of a slice
    articles: int
    language: str = ""
    use_relatedness: bool = True
    # a slice's precomputed (source, target) → relatedness, instead of sketches
    pairs: dict[tuple[int, int], float] | None = None
    matcher: AnchorMatcher = field(init=False, repr=False)

    def __post_init__(self):
        self.matcher = AnchorMatcher(self.anchors.keys(), self.language)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("matcher", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.matcher = AnchorMatcher(self.anchors.keys(), self.language)

    def relatedness(self, source: int, target: int) -> float:
        """Milne–Witten over link neighbourhoods (in- and out-links, so that an article created
        yesterday has one). A direct link between the two is left out: a training example's own
        link would otherwise give its label away, and a recommended target is never linked yet."""
        if not self.use_relatedness:
            return 0.0
        if self.pairs is not None:
            return self.pairs.get((source, target), 0.0)
        return sketch_relatedness(self.neighbours.get(source, EMPTY_SKETCH), self.neighbours.get(target, EMPTY_SKETCH),
                                  source, target, self.articles)


@dataclass(frozen=True)
class Candidate:
    match: Match
    text: str  # the anchor as written in the text
    target_id: int
    target_title: str
    features: tuple[float, ...]


def candidates_for(match: Match, text: str, entry: AnchorEntry, lookups: Lookups, source_id: int,
                   per_anchor: int) -> list[Candidate]:
    """The anchor's most linked targets (at most `per_anchor`), the source article itself excluded."""
    written = text[match.start:match.end]
    if entry.names_only(written):
        return []
    ngram = float(word_count(written))
    ambig = float(len(entry.targets))
    out = []
    for target_id, title, count in entry.targets:
        if target_id == source_id:
            continue
        out.append(Candidate(match, written, target_id, title, (
            ngram, float(count), ambig, entry.kurtosis, similarity(written, title),
            lookups.relatedness(source_id, target_id))))
        if len(out) >= per_anchor:
            break
    return out


def sentence_candidates(text: str, lookups: Lookups, source_id: int, per_anchor: int) -> list[Candidate]:
    """Every candidate (anchor × target) of a plain-text sentence."""
    out = []
    for match in lookups.matcher.find(text):
        out.extend(candidates_for(match, text, lookups.anchors[match.anchor], lookups, source_id, per_anchor))
    return out


def choose_links(scored: list[tuple[Candidate, float]], threshold: float, already_linked: set[int] = frozenset(),
                 limit: int | None = None) -> list[tuple[Candidate, float]]:
    """Per anchor occurrence keep the best target if its probability reaches `threshold`; link each
    anchor text and each target once (first occurrence wins); return in text order."""
    best: dict[tuple[int, int], tuple[Candidate, float]] = {}
    for candidate, probability in scored:
        key = (candidate.match.start, candidate.match.end)
        if key not in best or probability > best[key][1] or (
                probability == best[key][1] and candidate.target_id < best[key][0].target_id):
            best[key] = (candidate, probability)
    chosen = []
    seen_anchor: set[str] = set()
    seen_target = set(already_linked)
    for key in sorted(best):
        candidate, probability = best[key]
        if candidate.match.anchor in seen_anchor:
            continue
        seen_anchor.add(candidate.match.anchor)
        if probability < threshold or candidate.target_id in seen_target:
            continue
        seen_target.add(candidate.target_id)
        chosen.append((candidate, probability))
        if limit is not None and len(chosen) >= limit:
            break
    return chosen
