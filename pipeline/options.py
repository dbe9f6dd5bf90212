"""The option groups several `linkrec` commands share (the wiki, the dump, the sinks, the recommend run)."""

from __future__ import annotations

import click


def with_options(options):
    def wrap(func):
        for option in reversed(options):
            func = option(func)
        return func
    return wrap


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout.")(
        func)


wiki_option = click.option("--wiki", required=True, help="Wiki database name, e.g. enwiki.")
dump_options = [
    click.option("--index", type=click.Path(dir_okay=False), help="Multistream index (…-multistream-index.txt.bz2)."),
    click.option("--snapshot", help="Snapshot name [default: the date in the dump's file name, else "
                                    "the date of its newest revision]."),
    click.option("--allow-truncated", is_flag=True, help="A truncated input is not an error (complete pages are "
                                                         "always kept)."),
]
sink_options = [
    click.option("--db", help="sqlite:///path or mysql://user[:password]@host[:port]/database, one per wiki; "
                              "{wiki} in it is the wiki's name [default: sqlite:///<warehouse>/{wiki}.db]. "
                              "MariaDB credentials may also come from "
                              "LINKREC_DB_USER / LINKREC_DB_PASSWORD or ?read_default_file=~/.my.cnf."),
    click.option("--search-url", help="Elasticsearch / OpenSearch / CirrusSearch URL: set or clear the "
                                      "recommendation.link/exists tag of every page written."),
    click.option("--search-mode", type=click.Choice(["cirrus", "painless"]),
                 help="cirrus: super_detect_noop updates (search-extra plugin); painless: vanilla script "
                      "updates [default: sinks.search_mode, painless]."),
]
selection_options = [
    click.option("--pages", help="Page-id range A-B."),
    click.option("--page-ids", help="Comma-separated page ids."),
    click.option("--titles-file", type=click.Path(dir_okay=False), help="A file with one title per line."),
    *sink_options,
    click.option("--events", type=click.Path(), help="Write page_weighted_tags_change events (NDJSON) to this "
                                                     "file, or to <wiki>[-<task>]-<time>.ndjson in this folder."),
    click.option("--now", help="Reference time for minimumTimeSinceLastEdit, ISO 8601 [default: now]."),
]
recommend_options = [
    *selection_options,
    click.option("--model", "model_name", help="Model name [default: the wiki's own]."),
    click.option("--ignore-gate", is_flag=True, help="Use the model even if it is not released."),
    click.option("--force", is_flag=True, help="Rebuild tables and models even when up to date, and rewrite "
                                               "rows even when unchanged."),
    click.option("--dry-run", is_flag=True, help="Compute everything, write nothing to the database."),
    click.option("--allow-mass-delete", is_flag=True,
                 help="Write even when the run deletes or clears more than sinks.max_delete_share of the tasks."),
    click.option("--targeting", type=click.Choice(["all", "iterate", "topics"]),
                 help="Which pages: all; iterate (the next --limit pages after the stored cursor); topics (fill "
                      "topics below targeting.minimum_tasks_per_topic) [default: targeting.strategy]."),
    click.option("--limit", type=int, help="With --targeting iterate: pages per run [default: targeting.limit]."),
    click.option("--topics", type=click.Path(dir_okay=False, exists=True),
                 help="With --targeting topics: a topic table instead of the index's topic tags."),
    click.option("--report-dir", type=click.Path(file_okay=False), help="Write the run report (JSON + HTML) here."),
    click.option("--lookups", "lookups_path", type=click.Choice(["auto", "broadcast", "join"]),
                 help="How the dictionary, link graph and titles reach the tasks: broadcast (small wikis), joins "
                      "(nothing proportional to the wiki in one process), or auto: by estimated size "
                      "[default: lookups.mode]."),
]
task_option = click.option("--task", type=click.Choice(["link", "orphan_link"]), default="link", show_default=True,
                           help="link: the Add-a-link task; orphan_link: links to orphan articles.")
orphan_options = [
    *selection_options,
    click.option("--pagelinks", type=click.Path(),
                 help="A Parquet pagelinks table (pl_from, pl_namespace, pl_title): orphans by the wiki's own "
                      "link table (links from templates count) instead of the articles' wikitext links."),
    click.option("--model", "model_name", help="Another wiki's orphan model, e.g. enwiki-orphan_link [default: "
                                               "the wiki's own, <wiki>-orphan_link]."),
    click.option("--ignore-gate", is_flag=True, help="Use the orphan model even if it is not released."),
    click.option("--force", is_flag=True, help="Rewrite rows even when unchanged."),
    click.option("--dry-run", is_flag=True, help="Compute everything, write nothing to the database."),
    click.option("--allow-mass-delete", is_flag=True,
                 help="Write even when the run deletes or clears more than sinks.max_delete_share of the tasks."),
]
