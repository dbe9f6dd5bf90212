"""The sinks end to end: `linkrec run` on shared dumps writing to MariaDB + a real search server
(noida-db, painless updates) and to SQLite + an events file, then `reconcile`, then a second identical
run. Prints a Markdown table; not a test. Needs MariaDB at 127.0.0.1:3306 (root, no password).
Usage: python benchmarks/sinks.py [WIKI ...]   (default: ltgwiki elwiki mrwiki)"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pymysql

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from tests.conftest import DUMPS, SearchServer  # noqa: E402 - the same server the tests start

WIKIS = sys.argv[1:] or ["ltgwiki", "elwiki", "mrwiki"]


def linkrec(warehouse: str, *args: str) -> tuple[int, dict | None]:
    done = subprocess.run(["linkrec", "--quiet", "--warehouse", warehouse, *args, "--json"], capture_output=True,
                          text=True)
    lines = done.stdout.strip().splitlines()
    return done.returncode, json.loads(lines[-1]) if lines else None


def events_differences(db: str, events: str, wiki: str) -> int:
    """Pages whose tag state after replaying the event files differs from "has a task row"."""
    import sqlite3

    from sinks.search import replay_events

    tagged = {page for page, on in replay_events(sorted(str(p) for p in Path(events).glob(f"{wiki}-*"))).items()
              if on}
    tasks = {page for (page,) in sqlite3.connect(db).execute(
        "SELECT gelr_page FROM growthexperiments_link_recommendations WHERE gelr_data IS NOT NULL")}
    return len(tagged ^ tasks)


def main() -> None:
    print("| wiki | sinks | rows (tasks / NULL) | tags set | write s | reconcile differences | 2nd run changed | "
          "2nd run: rows unchanged, tags unchanged | 2nd write s |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as base:
        server = SearchServer(Path(base) / "noida")
        server.start()
        admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
        try:
            warehouse = f"{base}/warehouse"
            for wiki in WIKIS:
                dump = str(DUMPS[wiki])
                run = ["run", "--wiki", wiki, "--dump", dump, "--allow-truncated", "--now", "2026-01-01T00:00:00Z"]
                linkrec(warehouse, *run, "--dry-run")  # ingest and train once, outside the figures
                linkrec(warehouse, "index", "init", "--wiki", wiki, "--search-url", server.url, "--recreate")
                database = f"linkrec_bench_{wiki}"
                admin.cursor().execute(f"DROP DATABASE IF EXISTS {database}")
                admin.cursor().execute(f"CREATE DATABASE {database}")
                for label, sinks, check in (
                        ("MariaDB + search (painless)",
                         ["--db", f"mysql://root@127.0.0.1:3306/{database}", "--search-url", server.url], True),
                        ("SQLite + events", ["--db", f"sqlite:///{base}/{wiki}.db", "--events", f"{base}/events/"],
                         False)):
                    _, first = linkrec(warehouse, *run, *sinks)
                    if check:
                        _, found = linkrec(warehouse, "reconcile", "--wiki", wiki, "--search-url", server.url,
                                           "--db", sinks[1])
                        differences = found["differences"]
                    else:
                        differences = events_differences(f"{base}/{wiki}.db", f"{base}/events", wiki)
                    _, second = linkrec(warehouse, *run, *sinks)
                    a, b = first["recommend"], second["recommend"]
                    rows = f"{a['database']['rows_written']} / {a['database']['null_rows_written']}"
                    print(f"| {wiki} | {label} | {rows} "
                          f"| {a['search']['tags_set']} | {a['seconds_per_stage']['write']} | {differences} "
                          f"| {b['changed']} | {b['database']['unchanged']}, {b['search']['unchanged']} "
                          f"| {b['seconds_per_stage']['write']} |")
                admin.cursor().execute(f"DROP DATABASE IF EXISTS {database}")
        finally:
            admin.close()
            server.stop()


if __name__ == "__main__":
    main()
