"""The quality table: every shared dump ingested, trained and backtested; precision and recall at 0.5
under both protocols, with and without the relatedness feature, and a leave-one-out joint model.
Prints a Markdown table; not a test. Usage: python benchmarks/quality.py [DUMP_DIR] [--no-joint]"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
args = [a for a in sys.argv[1:] if not a.startswith("--")]
DUMP_DIR = Path(args[0]) if args else HERE.parent / "tests" / "fixtures" / "dumps"
REFERENCE = {"ltgwiki": (903, 182, 0.83, 0.59), "enwiki": (106, 0, None, 0.0), "jawiki": (189, 5, 0.83, 0.63),
             "elwiki": (524, 101, 0.95, 0.72), "mrwiki": (949, 54, 0.86, 0.58), "bnwiki": (380, 64, 0.87, 0.44),
             "hywiki": (279, 46, 0.81, 0.15)}


def linkrec(warehouse: str, *args: str) -> tuple[int, dict | None, str]:
    done = subprocess.run(["linkrec", "--quiet", "--warehouse", warehouse, *args, "--json"], capture_output=True,
                          text=True)
    lines = done.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1]) if lines else None
    except ValueError:
        summary = None
    return done.returncode, summary, done.stderr.strip().splitlines()[-1:]


def at(summary: dict | None, protocol: str, key: str = "protocols") -> tuple:
    if not summary:
        return (0, None, None)
    point = next(p for p in summary[key][protocol] if p["threshold"] == 0.5)
    return point["n_sentences"], point["precision"], point["recall"]


def fmt(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def main() -> None:
    dumps = {p.name.split("-", 1)[0]: p for p in sorted(DUMP_DIR.glob("*wiki-*.xml*"))}
    rows = {}
    with tempfile.TemporaryDirectory() as warehouse:
        for wiki, dump in dumps.items():
            linkrec(warehouse, "ingest", "--wiki", wiki, "--dump", str(dump), "--allow-truncated")
            code, own, error = linkrec(warehouse, "train", "--wiki", wiki)
            _, plain, _ = linkrec(warehouse, "--set", "model.relatedness=false", "train", "--wiki", wiki)
            rows[wiki] = {"own": own if code == 0 else None, "error": error, "no_rel": plain}
        if "--no-joint" not in sys.argv:
            for wiki in dumps:
                others = ",".join(w for w in dumps if w != wiki)
                linkrec(warehouse, "train", "--wikis", others, "--name", f"without-{wiki}")
                _, joint, _ = linkrec(warehouse, "evaluate", "--wiki", wiki, "--model", f"without-{wiki}")
                rows[wiki]["joint"] = joint
    print("| wiki | articles | test sentences | P ref | R ref | P leak-free | R leak-free | R ref w/o relatedness "
          "| joint (leave-one-out) P / R ref, P / R leak-free, gate | reference system P / R |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    macro_ours, macro_ref = [], []
    for wiki, row in rows.items():
        n, p, r = at(row["own"], "reference")
        _, pl, rl = at(row["own"], "leakage_free")
        _, _, rn = at(row["no_rel"], "reference")
        joint = row.get("joint")
        jn, jp, jr = at(joint, "reference")
        _, jpl, jrl = at(joint, "leakage_free")
        gate = "–" if not joint else ("passes" if joint["gate"].startswith("released") else "fails")
        articles, ref_n, ref_p, ref_r = REFERENCE.get(wiki, (None, None, None, None))
        own_note = "" if row["own"] else f" (own model: {row['error'][0] if row['error'] else 'failed'})"
        macro_ours.append(r or 0.0)
        macro_ref.append(ref_r or 0.0)
        print(f"| {wiki}{own_note} | {articles} | {n if row['own'] else jn} | {fmt(p)} | {fmt(r)} | {fmt(pl)} "
              f"| {fmt(rl)} | {fmt(rn)} | {fmt(jp)} / {fmt(jr)}, {fmt(jpl)} / {fmt(jrl)}, {gate} "
              f"| {fmt(ref_p)} / {fmt(ref_r)} ({ref_n} sentences) |")
    print(f"\nmacro-average recall (reference protocol, own models): {sum(macro_ours) / len(macro_ours):.3f}; "
          f"reference system: {sum(macro_ref) / len(macro_ref):.3f}")


if __name__ == "__main__":
    main()
