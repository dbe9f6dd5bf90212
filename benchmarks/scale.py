"""Scale benchmark: k-times larger corpora made from a shared dump, each copy written in its own
"language" (a fixed letter permutation per copy over titles, link targets and text; markup, namespace
prefixes and template names left alone), so that the dictionary, the link graph and the work per
article grow like a real wiki's. Prints, per stage, CPU seconds per 1,000 articles (the driver, the
JVM and every Python worker, summed) and the peak RSS of the Python driver, the JVM and the largest
Python worker, with fixed memory settings (local[2], 2 GB driver heap).

    python benchmarks/scale.py --dump ../shared/data/ltgwiki-….xml.bz2 --wiki ltgwiki -k 1 4 16 32 [--lookups join]

Figures, not tests: the README's table comes from this script."""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import string
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COPY_STRIDE = 10_000_000  # page and revision ids of copy c are shifted by c × this


def permutation(copy: int) -> dict[int, str]:
    """A fixed bijection of the ASCII letters (lower and upper case alike) for one copy; copy 0 keeps them."""
    letters = list(string.ascii_lowercase)
    shuffled = letters[:]
    if copy:
        random.Random(copy).shuffle(shuffled)
    table = {ord(a): b for a, b in zip(letters, shuffled, strict=True)}
    table.update({ord(a.upper()): b.upper() for a, b in zip(letters, shuffled, strict=True)})
    return table


def protected_pattern(namespace_names: list[str]) -> re.Pattern:
    names = "|".join(sorted((re.escape(n) for n in namespace_names if n), key=len, reverse=True))
    return re.compile(
        r"<[^<>]*>"                      # tags and their attributes
        r"|\{\{\s*[^{}|]*"               # template and parser-function names
        r"|\{\|[^\n]*"                   # table openings
        r"|__[A-Z_]+__|#[A-Za-z]+"       # magic words, #REDIRECT
        r"|&[A-Za-z]+;"                  # entities
        r"|\[?https?://[^\s\]|]*"        # URLs
        + (rf"|\[\[\s*:?\s*(?:{names})\s*:" if names else "")  # namespace prefixes of links
        , re.I)


def translate(text: str, table: dict[int, str], protected: re.Pattern) -> str:
    out, position = [], 0
    for match in protected.finditer(text):
        out.append(text[position:match.start()].translate(table))
        out.append(match.group(0))
        position = match.end()
    out.append(text[position:].translate(table))
    return "".join(out)


def translate_title(title: str, table: dict[int, str], namespace_names: set[str]) -> str:
    prefix, colon, rest = title.partition(":")
    if colon and prefix.strip().casefold() in namespace_names:
        return prefix + colon + rest.translate(table)
    return title.translate(table)


def make_corpus(dump: str, copies: int, out_dir: Path) -> tuple[str, str, int]:
    """Parquet page table (one file per copy) and siteinfo JSON; returns their paths and the articles."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.ingest.dumpreader import Page, plan_chunks, read_chunk, read_siteinfo

    siteinfo = read_siteinfo(dump)
    names = [n for n in siteinfo.namespaces.values() if n] + ["Category", "File", "Image", "Template", "Media",
                                                                "Help", "Wikipedia", "Module", "Special"]
    protected = protected_pattern(names)
    folded = {n.casefold() for n in names}
    pages = [p for chunk in plan_chunks(dump, 1 << 30) for p in read_chunk(chunk) if isinstance(p, Page)]
    table_dir = out_dir / "pages"
    table_dir.mkdir(parents=True)
    articles = 0
    seen: set[tuple[int, str]] = set()  # a wiki has one page per title: a title two copies share is kept once
    for copy in range(copies):
        table = permutation(copy)
        rows = {"page_id": [], "namespace": [], "title": [], "redirect_target": [], "revision_id": [],
                "revision_timestamp": [], "wikitext": []}
        for page in pages:
            title = translate_title(page.title, table, folded)
            if (page.namespace, title) in seen:
                continue
            seen.add((page.namespace, title))
            rows["page_id"].append(page.page_id + copy * COPY_STRIDE)
            rows["namespace"].append(page.namespace)
            rows["title"].append(title)
            rows["redirect_target"].append(translate_title(page.redirect_target, table, folded)
                                           if page.redirect_target else None)
            rows["revision_id"].append(page.revision_id + copy * COPY_STRIDE)
            rows["revision_timestamp"].append(page.revision_timestamp)
            rows["wikitext"].append(translate(page.wikitext, table, protected))
            articles += page.namespace == 0 and not page.redirect_target
        pq.write_table(pa.table(rows), table_dir / f"copy-{copy:04d}.parquet", row_group_size=256)
    siteinfo_path = out_dir / "siteinfo.json"
    siteinfo_path.write_text(json.dumps(siteinfo.to_json()), encoding="utf-8")
    return str(table_dir), str(siteinfo_path), articles


# --- measuring the process tree -------------------------------------------------------------------

CLOCK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                out.extend(int(c) for c in handle.read().split())
    except OSError:
        pass
    return out


def tree(pid: int) -> list[int]:
    seen, stack = [], [pid]
    while stack:
        current = stack.pop()
        seen.append(current)
        stack.extend(_children(current))
    return seen


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of each process and of its reaped children (workers that have exited)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))
        except OSError:
            continue
    return total / CLOCK


def kind(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    if pid == os.getpid():
        return "driver"
    if "java" in cmdline.split(" ")[0]:
        return "jvm"
    if "pyspark" in cmdline or "python" in cmdline:
        return "worker"
    return "other"


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Stage:
    """CPU of the whole tree and peak RSS per process kind while the `with` block runs."""

    def __init__(self):
        self.peaks = {"driver": 0.0, "jvm": 0.0, "worker": 0.0}
        self._stop = threading.Event()

    def _sample(self):
        for pid in tree(os.getpid()):
            k = kind(pid)
            if k in self.peaks:
                self.peaks[k] = max(self.peaks[k], rss_mb(pid), rss_mb(pid, "VmHWM"))

    def _poll(self):
        while not self._stop.wait(0.2):
            self._sample()

    def __enter__(self):
        for pid in tree(os.getpid()):
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as handle:
                    handle.write("5")  # resets the peak (VmHWM) so that it is this stage's
            except OSError:
                pass
        self.cpu0 = cpu_seconds(tree(os.getpid()))
        self.wall0 = time.time()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._sample()
        self._stop.set()
        self._thread.join()
        self.cpu = cpu_seconds(tree(os.getpid())) - self.cpu0
        self.wall = time.time() - self.wall0


def run(dump: str, wiki: str, copies: int, lookups: str, workdir: Path, overrides: tuple[str, ...] = ()) -> dict:
    from pipeline.config import SparkConfig, load_config
    from pipeline.ingest.job import ingest_table
    from pipeline.model import train as model_train
    from pipeline.recommend.job import Selection, recommend
    from pipeline.spark import get_spark
    from pipeline.warehouse import Warehouse

    table, siteinfo, articles = make_corpus(dump, copies, workdir / "corpus")
    spark = get_spark(SparkConfig(master="local[2]", driver_memory="2g", shuffle_partitions=8))
    config = load_config(wiki, overrides=(f"lookups.mode={lookups}", *overrides))
    warehouse = Warehouse(spark, str(workdir / "warehouse"))
    out = {"k": copies, "articles": articles, "lookups": lookups, "overrides": list(overrides), "stages": {}}

    def stage(name, action):
        with Stage() as measured:
            result = action()
        out["stages"][name] = {"cpu_s": round(measured.cpu, 1), "wall_s": round(measured.wall, 1),
                               "cpu_s_per_1000": round(measured.cpu / articles * 1000, 2),
                               "driver_mb": round(measured.peaks["driver"]), "jvm_mb": round(measured.peaks["jvm"]),
                               "worker_mb": round(measured.peaks["worker"])}
        return result

    stage("ingest", lambda: ingest_table(spark, warehouse, config, table, siteinfo, "20170901"))
    stats = stage("tables", lambda: model_train.build_tables(spark, warehouse, config))
    trained = stage("train", lambda: model_train.train(spark, warehouse, config))
    now = datetime(2030, 1, 1, tzinfo=UTC)
    result = stage("recommend", lambda: recommend(spark, warehouse, config, Selection(), now, ignore_gate=True,
                                                  lookups_path=lookups))
    out.update({"anchors": stats["anchors_reference"], "edges_sketched": stats["sketch_values_reference"],
                "examples": trained.training["reference"]["examples"],
                "recall_leakage_free_0.5": trained.curves["leakage_free"][5]["recall"],
                "precision_leakage_free_0.5": trained.curves["leakage_free"][5]["precision"],
                "with_links": result.with_links, "recommend_lookups": result.lookups})
    spark.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dump", required=True)
    parser.add_argument("--wiki", required=True)
    parser.add_argument("-k", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--lookups", default="join", choices=["auto", "broadcast", "join"])
    parser.add_argument("--workdir", help="Keep corpora and warehouses here [default: a temporary folder].")
    # the small-wiki anchor rule switches at 10,000 articles: off, every k keeps one dictionary rule
    parser.add_argument("--set", dest="overrides", action="append", default=["dictionary.small_wiki_articles=0"],
                        help="A configuration override for every k (repeatable).")
    args = parser.parse_args()
    for copies in args.k:
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="linkrec-scale-")) / f"k{copies}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        # one process per k: the JVM's and the workers' memory start from nothing each time
        code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import scale; "
                f"print('RESULT ' + json.dumps(scale.run({args.dump!r}, {args.wiki!r}, {copies}, {args.lookups!r}, "
                f"__import__('pathlib').Path({str(workdir)!r}), {tuple(args.overrides)!r})))")
        import subprocess

        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            print(f"k={copies}: failed ({done.returncode})\n{done.stderr[-3000:]}", file=sys.stderr)
            sys.exit(1)
        print(lines[-1][len("RESULT "):], flush=True)
        if not args.workdir:
            shutil.rmtree(workdir.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
