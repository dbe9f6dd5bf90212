"""The reading protocol: links read in context by a person, versioned with the code.

  python benchmarks/judge.py draw --warehouse W --wiki X [--task link|orphan_link] [-n 50] [--seed 1]
      a deterministic random sample of N links of the newest run of X (task) → benchmarks/judged/X-TASK.tsv
      (an earlier judgement of X-TASK moves to benchmarks/judged/history/ first), with the columns a reader
      fills in empty: right_target (yes/no), kept (yes/no), reason (for every "no"); --out FILE: an
      experiment's sample (a configuration not the default's), written there and nothing moved.
  python benchmarks/judge.py blind FILE > reader.tsv
      the same links without the scores (what a reader is given: a reader never sees a score).
  python benchmarks/judge.py merge FILE READER.tsv
      a reader's answers (id, right_target, kept, reason, note) into the judged file.
  python benchmarks/judge.py score [FILES…] [--json]
      right-target and kept rates per wiki and task, and the reasons of the rejected links.
  python benchmarks/judge.py feedback --warehouse W --wiki X --db URL [--events OUT] FILES…
      the judged links as GrowthExperiments' feedback: each one the served-links ledger of that database
      holds becomes a growthexperiments_link_submissions row (kept → 'a', not kept → 'r'), each rejection's
      reason an event line in OUT (for `linkrec feedback --events OUT`).

Criteria (README "Reading protocol"): right target — the link goes to the article the text means; kept —
an editor of that wiki would keep the link under its Manual of Style (no everyday words, no country or
place every reader knows, no dates or plain numbers, not a part of a longer name or word, not inside a
quotation or a reference, the right target). Reasons are GrowthExperiments' own (everyday, wrong-target,
more-fewer-words, other), refined after a "/" where useful (REASONS)."""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
    sys.path.pop(0)  # benchmarks/sinks.py would shadow the sinks package
JUDGED = HERE / "judged"
COLUMNS = ["id", "wiki", "task", "page_id", "title", "section", "score", "link_text", "link_target", "sentence",
           "target_gloss", "right_target", "kept", "reason", "note"]
READER_COLUMNS = [c for c in COLUMNS if c != "score"]
REASONS = {
    "everyday": "an everyday word or concept",
    "everyday/place": "a country, region or city every reader knows",
    "everyday/date": "a date, year, number or unit",
    "wrong-target": "the link goes to another sense or article than the text means",
    "more-fewer-words": "the link text is too long or too short for the name",
    "more-fewer-words/part": "the link text is part of a longer name or word",
    "other": "another reason (say it in the note)",
    "other/quotation": "inside a quotation, a title or a reference",
}


def newest_run(root: Path) -> Path:
    runs = sorted((p for p in root.iterdir() if p.name.startswith("run=")), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise SystemExit(f"judge: no run under {root}")
    return runs[-1]


def plain_sentence(wikitext: str, offset: int, length: int, normaliser, trail: str, ends: list[str]) -> str:
    """The sentence of the wikitext that holds the link at `offset`, as running text, the anchor in ⟦ ⟧."""
    from pipeline.text.sentences import render_plain, split_sentences

    marked = wikitext[:offset] + "⟦" + wikitext[offset:offset + length] + "⟧" + wikitext[offset + length:]
    plain = render_plain(marked, normaliser, trail).text
    at = plain.find("⟦")
    if at < 0:
        return ""
    for start, end in split_sentences(plain, ends):
        if start <= at < end:
            sentence = plain[start:end]
            return sentence if "⟧" in sentence else sentence + " …⟧"
    return plain[max(0, at - 150):at + 150]


def gloss(wikitext: str, normaliser, trail: str, ends: list[str]) -> str:
    """The first sentence of the target article (what it is about), for judging the target."""
    from pipeline.text.sentences import render_plain, split_sentences

    plain = render_plain(wikitext or "", normaliser, trail).text
    for start, end in split_sentences(plain, ends):
        if len(plain[start:end].split()) >= 3 or end - start >= 12:
            return plain[start:end][:300]
    return plain[:300]


def draw(args) -> None:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from pipeline.config import SparkConfig, load_config
    from pipeline.siteconfig import load as load_inferred
    from pipeline.spark import get_spark
    from pipeline.text.sections import section_at
    from pipeline.text.titles import TitleNormaliser
    from pipeline.warehouse import Warehouse, current_snapshot, siteinfo_of

    spark = get_spark(SparkConfig(master="local[2]", driver_memory="3g", shuffle_partitions=4))
    warehouse = Warehouse(spark, args.warehouse)
    config = load_config(args.wiki, inferred=load_inferred(warehouse, args.wiki))
    snapshot = current_snapshot(warehouse, args.wiki)
    root = Path(args.warehouse) / "recommendations" / f"wiki={args.wiki}"
    run = newest_run(root / "orphan_link" if args.task == "orphan_link" else root)
    link = T.StructType([T.StructField(k, T.StringType()) for k in ("link_text", "link_target")]
                        + [T.StructField("wikitext_offset", T.LongType()), T.StructField("score", T.DoubleType())])
    links = (spark.read.parquet(str(run)).where(F.col("gelr_data").isNotNull())
             .select("page_id", F.explode(F.from_json("gelr_data", T.StructType([
                 T.StructField("links", T.ArrayType(link))]))["links"]).alias("l"))
             .select("page_id", "l.*"))
    sample = (links.orderBy(F.xxhash64("page_id", "wikitext_offset", F.lit(args.seed)), "page_id", "wikitext_offset")
              .limit(args.n).collect())
    pages = warehouse.read("pages", args.wiki, snapshot)
    texts = {r.page_id: (r.title, r.wikitext) for r in pages.where(F.col("page_id").isin(
        [r.page_id for r in sample])).select("page_id", "title", "wikitext").collect()}
    targets = {r.title: r.wikitext for r in pages.where((F.col("namespace") == 0) & F.col("title").isin(
        [r.link_target for r in sample])).select("title", "wikitext").collect()}
    normaliser = TitleNormaliser.from_siteinfo(siteinfo_of(warehouse, args.wiki, snapshot), config.text.case)
    trail, ends = config.text.link_trail, config.text.sentence_ends
    rows = []
    for index, r in enumerate(sorted(sample, key=lambda r: (r.page_id, r.wikitext_offset))):
        title, text = texts[r.page_id]
        rows.append({"id": f"{args.wiki}-{args.task}-{index + 1:03d}", "wiki": args.wiki, "task": args.task,
                     "page_id": r.page_id, "title": title, "section": section_at(text, r.wikitext_offset),
                     "score": f"{r.score:.3f}", "link_text": r.link_text, "link_target": r.link_target,
                     "sentence": plain_sentence(text, r.wikitext_offset, len(r.link_text), normaliser, trail, ends),
                     "target_gloss": gloss(targets.get(r.link_target, ""), normaliser, trail, ends),
                     "right_target": "", "kept": "", "reason": "", "note": ""})
    out = args.out or JUDGED / f"{args.wiki}-{args.task}.tsv"
    if out.exists() and not args.out:  # the earlier judgement is kept, dated
        (JUDGED / "history").mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.fromtimestamp(out.stat().st_mtime, datetime.UTC).strftime("%Y%m%dT%H%M%S")
        os.replace(out, JUDGED / "history" / f"{args.wiki}-{args.task}-{stamp}.tsv")
    write(out, rows, COLUMNS)
    print(f"judge: {len(rows)} links of {run.name} → {out}")


def read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def write(path: Path, rows: list[dict], columns: list[str], handle=None) -> None:
    def put(out):
        writer = csv.DictWriter(out, columns, delimiter="\t", lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: str(row.get(k, "")).replace("\t", " ").replace("\n", " ") for k in columns})
    if handle is not None:
        put(handle)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as out:
        put(out)


def check(row: dict, where: str) -> None:
    """A judged row is complete: yes/no answers, a known reason for every "no"."""
    for key in ("right_target", "kept"):
        if row[key] not in ("yes", "no"):
            raise SystemExit(f"judge: {where}: {key} must be yes or no, not {row[key]!r}")
    if row["kept"] == "no" or row["right_target"] == "no":
        if row["reason"] not in REASONS:
            raise SystemExit(f"judge: {where}: reason {row['reason']!r} is not one of {', '.join(REASONS)}")
    if row["right_target"] == "no" and row["kept"] == "yes":
        raise SystemExit(f"judge: {where}: a link to the wrong article cannot be kept")


def merge(args) -> None:
    rows = read(Path(args.file))
    answers = {row["id"]: row for row in read(Path(args.answers))}
    for row in rows:
        answer = answers.get(row["id"])
        if answer is None:
            raise SystemExit(f"judge: {args.answers}: no answer for {row['id']}")
        for key in ("right_target", "kept", "reason", "note"):
            row[key] = (answer.get(key) or "").strip()
        check(row, f"{args.answers} {row['id']}")
    write(Path(args.file), rows, COLUMNS)
    print(f"judge: {len(rows)} answers merged into {args.file}")


def score(args) -> dict:
    files = [Path(f) for f in args.files] or sorted(JUDGED.glob("*.tsv"))
    table = {}
    for path in files:
        rows = [row for row in read(path) if row["kept"]]
        for index, row in enumerate(rows):
            check(row, f"{path} row {index + 2}")
        if not rows:
            continue
        reasons: dict[str, int] = {}
        for row in rows:
            if row["kept"] == "no":
                reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
        key = f"{rows[0]['wiki']}-{rows[0]['task']}"
        table[key] = {"judged": len(rows), "right_target": round(sum(r["right_target"] == "yes" for r in rows)
                                                                 / len(rows), 3),
                      "kept": round(sum(r["kept"] == "yes" for r in rows) / len(rows), 3),
                      "reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))}
    if args.json:
        print(json.dumps(table, ensure_ascii=False, sort_keys=True))
    else:
        print("| wiki-task | judged | right target | kept | why not kept |\n|---|---|---|---|---|")
        for key, t in sorted(table.items()):
            why = ", ".join(f"{reason} {n}" for reason, n in t["reasons"].items())
            print(f"| {key} | {t['judged']} | {100 * t['right_target']:.0f} % | {100 * t['kept']:.0f} % | {why} |")
    return table


def feedback(args) -> dict:
    from pipeline.config import SparkConfig
    from pipeline.feedback.judged import insert_submissions, judged_submissions, read_judged
    from pipeline.spark import get_spark
    from pipeline.warehouse import Warehouse
    from sinks.base import task_named
    from sinks.connect import open_database

    spark = get_spark(SparkConfig(master="local[2]", driver_memory="3g", shuffle_partitions=4))
    url = args.db.replace("{wiki}", args.wiki)
    judged = read_judged(args.files, args.wiki, args.task)
    found, missing = judged_submissions(spark, Warehouse(spark, args.warehouse), args.wiki, args.task, url, judged)
    for line in missing:
        print(f"judge: {line}", file=sys.stderr)
    database = open_database(url, args.wiki, lock=False, task=task_named(args.task))
    try:
        inserted = insert_submissions(database, found)
    finally:
        database.finish()
    if args.events:
        Path(args.events).write_text("".join(s.event() + "\n" for s in found if s.feedback == "r"), encoding="utf-8")
    print(f"judge: {inserted} submissions of {len(judged)} judged links written to {args.task} of {args.wiki}"
          f"{f', rejection reasons to {args.events}' if args.events else ''}; {len(missing)} never served there")
    return {"judged": len(judged), "written": inserted, "missing": len(missing)}


def main(argv: list[str]):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("draw")
    d.add_argument("--warehouse", required=True)
    d.add_argument("--wiki", required=True)
    d.add_argument("--task", choices=["link", "orphan_link"], default="link")
    d.add_argument("-n", type=int, default=50)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--out", type=Path, help="an experiment's file (e.g. benchmarks/judged/experiments/…): the "
                   "current judgement stays")
    b = sub.add_parser("blind")
    b.add_argument("file")
    m = sub.add_parser("merge")
    m.add_argument("file")
    m.add_argument("answers")
    s = sub.add_parser("score")
    s.add_argument("files", nargs="*")
    s.add_argument("--json", action="store_true")
    f = sub.add_parser("feedback")
    f.add_argument("--warehouse", required=True)
    f.add_argument("--wiki", required=True)
    f.add_argument("--task", choices=["link", "orphan_link"], default="link")
    f.add_argument("--db", required=True, help="sqlite:///path or mysql://…, as the run wrote to")
    f.add_argument("--events", help="write the rejection reasons here (JSON lines)")
    f.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "feedback":
        return feedback(args)
    if args.command == "draw":
        draw(args)
    elif args.command == "blind":
        write(Path("-"), read(Path(args.file)), READER_COLUMNS, handle=sys.stdout)
    elif args.command == "merge":
        merge(args)
    else:
        score(args)


if __name__ == "__main__":
    main(sys.argv[1:])
