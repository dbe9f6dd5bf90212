"""Wall time of `linkrec ingest` (a fresh process each: Spark start-up included) on every shared dump.
Prints a table; not a test. Usage: python benchmarks/ingest_speed.py [DUMP_DIR]"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DUMP_DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "tests" / "fixtures" / "dumps"


def main() -> None:
    print(f"{'wiki':<9} {'MB in':>6} {'pages':>6} {'articles':>8} {'redirects':>9} {'links':>7} "
          f"{'job s':>6} {'wall s':>7} {'exit':>4}")
    for dump in sorted(DUMP_DIR.glob("*wiki-*.xml*")):
        wiki = dump.name.split("-", 1)[0]
        with tempfile.TemporaryDirectory() as warehouse:
            started = time.time()
            done = subprocess.run(["linkrec", "--quiet", "--warehouse", warehouse, "ingest", "--wiki", wiki,
                                   "--dump", str(dump), "--json"], capture_output=True, text=True)
            wall = time.time() - started
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{wiki:<9} {dump.stat().st_size / 1e6:>6.1f} {summary['pages']:>6} {summary['ns0_articles']:>8} "
              f"{summary['ns0_redirects']:>9} {summary['derived']['links']:>7} {summary['seconds']:>6.1f} "
              f"{wall:>7.1f} {done.returncode:>4}")


if __name__ == "__main__":
    main()
