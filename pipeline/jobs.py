"""The jobs, callable from Python, the command line and spark-submit: ingest, train, recommend (with its
targeting and sinks), run (ingest → train → gate → recommend → sinks) and nightly (run for many wikis)."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime

from pipeline.config import Config, ConfigError, load_config

EXIT_INCOMPLETE = 3


class UsageError(Exception):
    """Options that contradict each other or cannot be parsed (the command line exits 2)."""


class Runtime:
    """What every job needs: the configuration layers, a Spark session and the warehouse (opened on
    first use), the per-wiki lock, and where progress lines go."""

    def __init__(self, warehouse: str | None = None, config_files: tuple[str, ...] = (),
                 overrides: tuple[str, ...] = (), quiet: bool = False):
        self.warehouse_option = warehouse
        self.config_files = config_files
        self.overrides = overrides
        self.quiet = quiet
        self._spark = None

    def config(self, wiki: str, flags: dict | None = None) -> Config:
        """The wiki's configuration, with what its ingested dump implies under the written files."""
        return load_config(wiki, self.config_files, self.overrides, flags, inferred=self.inferred(wiki))

    def inferred(self, wiki: str) -> dict | None:
        """The configuration layer saved when the wiki's current dump was ingested (pipeline/siteconfig.py)."""
        from pipeline import siteconfig
        from pipeline.config import WIKI_NAME
        from pipeline.warehouse import Warehouse, resolve_root

        if not WIKI_NAME.fullmatch(wiki):
            return None  # load_config names the bad wiki
        return siteconfig.load(Warehouse(None, resolve_root(self.warehouse_option)), wiki)

    def english_defaults(self, config: Config) -> str | None:
        """One line when a non-English wiki would run on English defaults (None when it would not)."""
        from pipeline import siteconfig

        inferred = self.inferred(config.wiki) or {}
        written = config.origin("text.language") != "default"
        # nothing known yet: the wiki's name says its language (ukwiki → uk)
        language = inferred.get("language") or (config.text.language if written else
                                                 siteconfig.language_of(None, config.wiki))
        keys = siteconfig.english_defaults(config, language)
        if not keys:
            return None
        return (f"{config.wiki} ({language}) runs on English defaults for {', '.join(keys)}: "
                + ("nothing was inferred from a dump of it (ingest one with this version)" if not inferred else
                   "its dump and the packaged data did not give them")
                + f"; write them in configs/wikis/{config.wiki}.toml or --config")

    def spark(self, config: Config):
        if self._spark is None:
            from pipeline.spark import get_spark
            self._spark = get_spark(config.spark)
        return self._spark

    def warehouse(self, config: Config):
        from pipeline.warehouse import Warehouse, resolve_root
        # Spark starts when a table is read, not for a manifest or a model file
        return Warehouse(lambda: self.spark(config), resolve_root(self.warehouse_option))

    def locked(self, wiki: str):
        """The warehouse lock of one wiki (WarehouseBusy when another run holds it)."""
        from pipeline.warehouse import resolve_root, wiki_lock
        return wiki_lock(resolve_root(self.warehouse_option), wiki)

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def database_url(self, db: str | None, wiki: str) -> str:
        """The wiki's database: `db` with `{wiki}` filled in, else its own embedded file (GrowthExperiments'
        tables have no wiki column, so one database per wiki)."""
        from pipeline.warehouse import resolve_root

        if not db:
            root = resolve_root(self.warehouse_option)
            if "://" in root:
                raise UsageError("--db is required when the warehouse is not a local folder")
            db = f"sqlite:///{root}/{{wiki}}.db"
        return db.replace("{wiki}", wiki)


def parse_now(value: str | None) -> datetime:
    """The reference time: ISO 8601 (UTC when no zone is given), or now."""
    if not value:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--now {value!r}: expected an ISO 8601 time such as 2026-01-31T00:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- ingest ------------------------------------------------------------------------------------------


def ingest(rt: Runtime, wiki: str, dump=None, table=None, index=None, siteinfo=None, snapshot=None,
           allow_truncated=False):
    """A dump or a page table → the wiki's tables; problems and warnings said on stderr. (config, result)."""
    from pipeline.ingest import job
    from pipeline.ingest.dumpreader import Problem, detect_format
    from pipeline.progress import spark_progress

    config = rt.config(wiki, {"ingest": {"allow_truncated": True}} if allow_truncated else None)
    if dump:
        detect_format(dump)  # a missing or foreign file is said before a JVM starts
    spark, warehouse = rt.spark(config), rt.warehouse(config)
    rt.say(f"linkrec: ingesting {dump or table} into {warehouse.root} …")
    with spark_progress(spark, "ingest", rt.say):
        if dump:
            result = job.ingest_dump(spark, warehouse, config, dump, index, snapshot)
        else:
            result = job.ingest_table(spark, warehouse, config, table, siteinfo, snapshot)
    # what the dump implies is now saved: every later stage reads it
    config = rt.config(wiki, {"ingest": {"allow_truncated": True}} if allow_truncated else None)
    shown = result.problems[:50]
    for problem in shown:
        print(f"linkrec: {problem['kind']}: {Problem(**problem).describe()}", file=sys.stderr)
    if len(result.problems) > len(shown):
        print(f"linkrec: … and {len(result.problems) - len(shown)} more problems", file=sys.stderr)
    for warning in result.warnings:
        print(f"linkrec: warning: {warning}", file=sys.stderr)
    for line in ingest_lines(result):
        rt.say(line)
    return config, result


def ingest_lines(result) -> list[str]:
    namespaces = ", ".join(f"{ns}: {n}" for ns, n in result.pages_per_namespace.items())
    derived = result.derived
    return [
        f"{result.wiki} snapshot {result.snapshot}: {result.pages} pages ({namespaces})",
        f"  main namespace: {result.ns0_articles} articles, {result.ns0_redirects} redirects",
        f"  redirects: {derived.get('redirects')}; cycles: {len(derived.get('redirect_cycles', []))}",
        f"  links in articles: {derived.get('links')} {derived.get('links_by_target')}",
        f"  problems: {len(result.problems)}{' (truncated input)' if result.truncated else ''}; "
        f"{result.seconds} s",
    ]


def ingest_exit(config: Config, result) -> int:
    """Non-zero when pages were lost, unless truncation was allowed and truncation is all there was."""
    from pipeline.ingest.job import accepted

    return 0 if accepted(result.problems, config.ingest.allow_truncated) else EXIT_INCOMPLETE


def ingested_already(warehouse, wiki: str, path: str, snapshot: str | None) -> dict | None:
    """The manifest entry of the current snapshot when it was made from exactly this input file or folder."""
    from pipeline.ingest.job import file_identity, source_path

    manifest = warehouse.manifest(wiki) or {}
    current = manifest.get("snapshots", {}).get(manifest.get("current_snapshot", ""), {})
    source = current.get("source", {})
    identity = {"path": source_path(path), **file_identity(path)}
    same = (source.get("path") == identity["path"] and source.get("bytes") == identity.get("bytes")
            and source.get("mtime") == identity.get("mtime"))
    if same and (snapshot is None or snapshot == manifest.get("current_snapshot")):
        return {**current, "snapshot": manifest["current_snapshot"]}
    return None


# --- train -------------------------------------------------------------------------------------------


def train(rt: Runtime, config: Config, wikidata=None, force=False, db=None, feedback=False):
    """Dictionaries, examples, XGBoost, backtests and the gate for one wiki, with progress lines; the
    editors' decisions on the links served into `db` (default: the wiki's own database) learned from.
    `feedback`: those decisions, read already (False: read them here)."""
    from pipeline.model import train as model_train
    from pipeline.progress import spark_progress

    if feedback is False:
        feedback = reviewed(rt, config, db)
    rt.say(f"linkrec: training the {config.wiki} model (dictionaries, examples, XGBoost, backtests"
           f"{', ' + str(feedback[1]['examples']) + ' reviewed links' if feedback else ''}) …")
    with spark_progress(rt.spark(config), "train", rt.say):
        return model_train.train(rt.spark(config), rt.warehouse(config), config, wikidata, force,
                                 feedback=feedback)


def reviewed(rt: Runtime, config: Config, db=None):
    """The editors' decisions on the links served into the wiki's database, as training examples (or None)."""
    from pipeline.feedback.learn import reviewed_examples
    from pipeline.warehouse import resolve_root

    if db is None and "://" in resolve_root(rt.warehouse_option):
        return None  # no default database beside a remote warehouse
    return reviewed_examples(rt.warehouse(config), config, rt.database_url(db, config.wiki))


def train_orphans(rt: Runtime, config: Config, force=False) -> dict:
    """The orphan-link model of one wiki: simulated orphans, examples, XGBoost, backtest, gate."""
    from pipeline.orphans import model as orphan_model
    from pipeline.progress import spark_progress

    if not force:
        record = orphan_model.up_to_date(rt.warehouse(config), config)
        if record is not None:
            rt.say(f"linkrec: orphan model {record['name']} {record['version']} is up to date ({record['reason']})")
            return {**orphan_model.recorded_summary(rt.warehouse(config), record), "reused": True}
    rt.say(f"linkrec: training the {config.wiki} orphan-link model (simulated orphans, XGBoost, backtest) …")
    with spark_progress(rt.spark(config), "train orphans", rt.say):
        summary = orphan_model.train(rt.spark(config), rt.warehouse(config), config, force)
    point = next(p for p in summary["protocols"][orphan_model.PROTOCOL] if p["threshold"] == 0.5)
    rt.say(f"linkrec: orphan model {summary['model']} {summary['version']}: {summary['reason']}\n"
           f"  simulated orphans: {point['n_links']} hidden links, precision {point['precision']:.3f}, "
           f"recall {point['recall']:.3f} at 0.5")
    return summary


def staged_submissions(spark, warehouse, database, wiki: str) -> str | None:
    """The task's submissions table copied into the warehouse in bounded batches, for the run's joins (None: no
    database, or nothing reviewed); the caller deletes it."""
    from pipeline.feedback.job import stage_submissions

    if database is None:
        return None
    return stage_submissions(spark, warehouse, database, wiki, f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-"
                                                              f"{database.task.name}")


def orphans(rt: Runtime, config: Config, pages=None, page_ids=None, titles_file=None, now=None, db=None,
            search_url=None, search_mode=None, events=None, pagelinks=None, model_name=None, ignore_gate=False,
            force=False, dry_run=False, allow_mass_delete=False, chosen=None) -> dict:
    """Orphan links for the selected eligible pages → the orphan task's rows and tags; old outputs pruned.
    `chosen`: a Selection made already (the pages the link task's targeting chose)."""
    from pipeline.orphans import task as orphan_task_job
    from pipeline.progress import spark_progress
    from pipeline.recommend.job import Selection, prune_runs
    from sinks.base import orphan_task
    from sinks.connect import open_sinks

    task = orphan_task(config.orphans.table, config.orphans.submissions_table)
    if chosen is None:
        explicit = bool(pages or page_ids or titles_file)
        chosen = selection(pages, page_ids, titles_file) if explicit else Selection()
    moment = now if isinstance(now, datetime) else parse_now(now)
    db = None if dry_run else rt.database_url(db, config.wiki)
    database, tags = (None, None) if dry_run else open_sinks(config, moment, db, search_url, search_mode, events, task)
    staged = None
    try:
        spark, warehouse = rt.spark(config), rt.warehouse(config)
        staged = staged_submissions(spark, warehouse, database, config.wiki)
        rt.say(f"linkrec: finding links to orphan articles of {config.wiki} …")
        with spark_progress(spark, "orphans", rt.say):
            result = orphan_task_job.recommend(spark, warehouse, config, chosen, moment, ignore_gate, staged,
                                               pagelinks, model_name or config.orphans.model or None)
        summary = result.summary()
        rt.say(f"  {summary['orphans']} orphans, {summary['orphans_with_suggestion']} with a suggestion; "
               f"{summary['pages_with_links']} pages with links ({summary['links']} links), "
               f"{summary['null_rows']} NULL rows")
        if database is not None:
            write_round(rt, config, result, summary, (database, tags), db, search_url, search_mode, events, moment,
                        force, allow_mass_delete, task)
        summary["dry_run"] = dry_run
        summary["pruned_runs"] = len(prune_runs(warehouse, config.wiki, config.recommend.keep_runs, [result.output],
                                                orphan_task_job.runs_folder(warehouse, config.wiki)))
        rt.say(where_line(config, db, search_url, tags, [result.output], dry_run, task))
    finally:
        for sink in (database, tags):
            if sink is not None:
                sink.finish()
        if staged is not None:
            rt.warehouse(config).delete(staged)
    return summary


# --- recommend -----------------------------------------------------------------------------------------


def selection(pages: str | None, page_ids: str | None, titles_file: str | None):
    """The explicit selection: a page-id range, ids, or a file of titles."""
    from pipeline.recommend.job import Selection

    first = last = None
    if pages:
        try:
            first, last = (int(x) for x in pages.split("-", 1))
        except ValueError:
            raise UsageError(f"--pages {pages!r}: expected a page-id range such as 100-200") from None
        if first > last:
            raise UsageError(f"--pages {pages!r}: the range is empty (the first id is above the last)")
    ids: tuple[int, ...] = ()
    if page_ids:
        try:
            ids = tuple(int(x) for x in page_ids.split(",") if x.strip())
        except ValueError:
            raise UsageError(f"--page-ids {page_ids!r}: expected comma-separated page ids") from None
    titles: tuple[str, ...] = ()
    if titles_file:
        try:
            with open(titles_file, encoding="utf-8") as handle:
                titles = tuple(line.strip().replace("_", " ") for line in handle if line.strip())
        except OSError as exc:
            raise ConfigError(f"--titles-file {titles_file}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"--titles-file {titles_file}: not UTF-8 text (byte {exc.start})") from None
    return Selection(first, last, ids, titles)


def articles(rt: Runtime, config: Config):
    """(page id, title, namespace, latest revision) of every main-namespace article of the current snapshot."""
    from pipeline.ingest.derived import is_article
    from pipeline.warehouse import current_snapshot

    warehouse = rt.warehouse(config)
    pages = warehouse.read("pages", config.wiki, current_snapshot(warehouse, config.wiki))
    rows = pages.where(is_article()).select("page_id", "title", "namespace", "revision_id").orderBy("page_id")
    return [(r.page_id, r.title, r.namespace, r.revision_id) for r in rows.toLocalIterator()]


def article_ids_after(rt: Runtime, config: Config):
    """(cursor, limit) → the first `limit` article ids above `cursor`, asked of Spark (only they reach the driver)."""
    from pyspark.sql import functions as F

    from pipeline.ingest.derived import is_article
    from pipeline.warehouse import current_snapshot

    warehouse = rt.warehouse(config)
    pages = warehouse.read("pages", config.wiki, current_snapshot(warehouse, config.wiki))
    ids = pages.where(is_article()).select("page_id")
    return lambda cursor, limit: [r.page_id for r in ids.where(F.col("page_id") > cursor).orderBy("page_id")
                                  .limit(limit).collect()]


def topic_source(rt: Runtime, config: Config, database, tags, topics_file: str | None):
    """Topic membership and task counts: from a topic table and the database, or from the index."""
    from sinks.search import IndexTags
    from sinks.topic_table import load_topic_table, topic_vocabulary
    from targeting.topics import IndexTopics, TableTopics

    if topics_file:
        table = load_topic_table(topics_file)
        ids = {title: page_id for page_id, title, _, _ in articles(rt, config)}
        members: dict[str, set[int]] = {}
        for title, labels in table.items():
            if title in ids:
                for label in labels:
                    members.setdefault(label, set()).add(ids[title])
        return TableTopics(members, database)
    if not isinstance(tags, IndexTags):
        raise ConfigError("topic targeting needs --search-url (topics from the index) or --topics FILE")
    keywords, _, _ = topic_vocabulary()
    return IndexTopics(tags.client, tags.index, sorted(set(keywords.values())))


def recommend(rt: Runtime, config: Config, pages=None, page_ids=None, titles_file=None, now=None,
              model_name=None, ignore_gate=False, force=False, dry_run=False, lookups_path=None, db=None,
              search_url=None, search_mode=None, events=None, targeting=None, limit=None, topics=None,
              report_dir=None, allow_mass_delete=False, earlier_stages: dict | None = None,
              then=None) -> dict:
    """Pages chosen by the targeting → recommendations → database rows and search tags, in rounds when
    the targeting asks for them; the report; old outputs pruned. The summary. `then(selection)`: a step
    run on the pages this run selected (the orphan task of `run`) after the writes and before the
    report; its summary goes to the report and to summary["then"]."""
    from pipeline.progress import spark_progress
    from pipeline.recommend.job import Selection, prune_runs
    from pipeline.recommend.job import recommend as compute
    from sinks.connect import open_sinks
    from targeting import rounds

    wiki = config.wiki
    explicit = bool(pages or page_ids or titles_file)
    chosen = selection(pages, page_ids, titles_file) if explicit else Selection()
    strategy = "explicit" if explicit else (targeting or config.targeting.strategy)
    moment = now if isinstance(now, datetime) else parse_now(now)
    db = None if dry_run else rt.database_url(db, wiki)
    database, tags = (None, None) if dry_run else open_sinks(config, moment, db, search_url, search_mode, events)
    outputs: list[str] = []
    picked_ids: list[int] = []
    topic_counts = None
    warning = rt.english_defaults(config)
    if warning:
        print(f"linkrec: warning: {warning}", file=sys.stderr)
    staged = None
    try:
        spark, warehouse = rt.spark(config), rt.warehouse(config)
        staged = staged_submissions(spark, warehouse, database, wiki)

        def one_round(picked: Selection) -> dict:
            picked_ids.extend(picked.page_ids)
            rt.say(f"linkrec: recommending for {wiki} …")
            with spark_progress(spark, "recommend", rt.say):
                result = compute(spark, warehouse, config, picked, moment, model_name, ignore_gate, staged,
                                 lookups_path)
            outputs.append(result.output)
            part = result.summary()
            if result.unmatched:
                shown = ", ".join(repr(name) for name in result.unmatched[:20])
                print(f"linkrec: warning: {len(result.unmatched)} of the pages asked for match no page of the "
                      f"snapshot: {shown}{' …' if len(result.unmatched) > 20 else ''}", file=sys.stderr)
            rt.say(f"  {part['pages_read']} pages, {part['eligible']} eligible, {part['with_links']} with links "
                   f"({part['links']} links), {part['null_rows']} NULL rows; skipped {part['skipped']}")
            mark = time.time()
            if database is not None:
                write_round(rt, config, result, part, (database, tags), db, search_url, search_mode, events, moment,
                            force, allow_mass_delete)
            part["seconds_per_stage"] = {"recommend": part["seconds"], "write": round(time.time() - mark, 2)}
            return part

        if strategy == "iterate":
            summary = rounds.iterate(database, wiki, article_ids_after(rt, config), limit or config.targeting.limit,
                                     one_round)
        elif strategy == "topics":
            source = topic_source(rt, config, database, tags, topics)
            summary, topic_counts = rounds.fill_topics(source, config.targeting, one_round, dry_run, rt.say)
        else:
            summary = one_round(chosen)
            summary["targeting"] = {"strategy": strategy}
        summary["dry_run"] = dry_run
        if warning:
            summary["warnings"] = [warning]
        if "changed" in summary:
            rt.say(f"  database: {summary['database']}")
            if "search" in summary:
                rt.say(f"  search: {summary['search']}")
            rt.say("  nothing changed" if not summary["changed"] else "  changes written")
        summary["seconds_per_stage"] = {**(earlier_stages or {}), **summary.get("seconds_per_stage", {})}
        if then is not None:
            # the pages the targeting chose (ids it already holds), or the run's own selection
            mark = time.time()
            targeted = strategy in ("iterate", "topics")
            summary["then"] = then(None if targeted and not picked_ids else
                                   Selection(page_ids=tuple(sorted(set(picked_ids)))) if targeted else chosen)
            summary["seconds_per_stage"]["orphans"] = round(time.time() - mark, 2)
        if staged is not None:
            from pipeline.feedback.job import analyse

            summary["feedback"], _ = analyse(spark, warehouse, config, "link", db, staged)
            if summary["feedback"]["newest_version"]["below_floor"] or summary["feedback"]["newest_version"][
                    "dropped"]:
                newest = summary["feedback"]["newest_version"]
                summary.setdefault("warnings", []).append(
                    f"editors accepted {newest['acceptance']} of the links of model version {newest['version']} "
                    f"({newest['decisions']} decisions; floor {newest['minimum_acceptance']}, previous version "
                    f"{newest['previous_acceptance']})")
        if report_dir:
            from pipeline.report import build_report, write_report

            run_id = moment.strftime("%Y%m%dT%H%M%S")
            report, images = build_report(spark, warehouse, wiki, run_id, summary, outputs, topic_counts,
                                          summary.get("then"))
            summary["report"] = dict(zip(("json", "html"), write_report(report_dir, report, images), strict=True))
            rt.say(f"linkrec: report {summary['report']['html']}")
        summary["pruned_runs"] = len(prune_runs(warehouse, wiki, config.recommend.keep_runs, outputs))
        rt.say(where_line(config, db, search_url, tags, outputs, dry_run))
    finally:
        for sink in (database, tags):
            if sink is not None:
                sink.finish()
        if staged is not None:
            rt.warehouse(config).delete(staged)
    return summary


def write_round(rt: Runtime, config: Config, result, summary: dict, sinks, db: str, search_url, search_mode, events,
                moment: datetime, force: bool, allow_mass_delete: bool, task=None) -> None:
    """One computed output → its task's rows and tags, the counts added to `summary` (a sink that stops
    raises SinkError carrying the summary of what was written)."""
    from pipeline.feedback.served import record_served
    from pipeline.progress import Progress
    from sinks.base import LINK, SinkError, redact
    from sinks.results import write_output

    task = task or LINK
    database, tags = sinks
    rt.say(f"linkrec: writing to {redact(db)} table {task.table}"
           f"{' and ' + (redact(search_url) if search_url else events) if tags else ''} …")
    progress = Progress("written", summary["pages_read"] - summary["skipped"].get("not_main_namespace", 0), rt.say)
    try:
        published = write_output(rt.spark(config), rt.warehouse(config), config, result, database, tags, db,
                                 search_url, search_mode, moment, force, progress, allow_mass_delete, task)
    except SinkError as exc:
        partial = getattr(exc, "partial", None)
        exc.summary = {**summary, **(partial.summary() if partial else {}), "error": str(exc)}
        raise
    summary.update(published.summary())
    summary["served_recorded"] = record_served(rt.spark(config), rt.warehouse(config), task.name, config.wiki, db,
                                               result.snapshot, result.output, result.model, result.version)


def where_line(config: Config, db, search_url, tags, outputs: list[str], dry_run: bool, task=None) -> str:
    """The last line of a recommend run: where its rows and tags are, and how to look at them."""
    from sinks.base import LINK, redact
    from sinks.search import EventTags

    task = task or LINK
    if dry_run:
        return f"linkrec: dry run, nothing written; the computed rows are in {outputs[-1] if outputs else '-'}"
    if db.startswith("sqlite:///"):
        path = db[len("sqlite:///"):]
        where = (f"rows in {path} (look: sqlite3 {path} "
                 f"'SELECT gelr_page, gelr_revision, length(gelr_data) FROM {task.table} LIMIT 10')")
    else:
        where = f"rows in {redact(db)}, table {task.table}"
    if isinstance(tags, EventTags):
        where += f"; tag events in {tags.path}"
    elif search_url:
        where += (f"; tags in {config.sinks.search_index.format(wiki=config.wiki)} (look: linkrec search --wiki "
                  f"{config.wiki} --search-url {redact(search_url)} hasrecommendation:{task.name})")
    return f"linkrec: {where}"


# --- run and nightly -----------------------------------------------------------------------------------


def run_wiki(rt: Runtime, wiki: str, dump: str | None = None, table: str | None = None, index=None, snapshot=None,
             allow_truncated=False, force=False, model_name=None, siteinfo=None, **options) -> tuple[dict, int]:
    """Ingest (unless this input is ingested already), train (unless the model is up to date), recommend,
    write the sinks. Returns the summary and the exit code."""
    from pipeline import errors
    from pipeline.model import train as model_train
    from pipeline.recommend.job import Selection

    started = time.time()
    stages: dict[str, float] = {}
    summary: dict = {"wiki": wiki}
    config = rt.config(wiki, {"ingest": {"allow_truncated": True}} if allow_truncated else None)
    warehouse = rt.warehouse(config)
    current = None if force else ingested_already(warehouse, wiki, dump or table, snapshot)
    if current is not None:
        rt.say(f"linkrec: {dump or table} is already ingested (snapshot {current['snapshot']}); reusing it")
        summary["ingest"] = {"reused": True, "snapshot": current["snapshot"], "problems": current.get("problems", 0)}
        incomplete = bool(current.get("problems")) and not (current.get("truncated") and allow_truncated)
    else:
        config, result = ingest(rt, wiki, dump, table, index, siteinfo, snapshot, allow_truncated)
        summary["ingest"] = result.summary()
        incomplete = ingest_exit(config, result) != 0
    stages["ingest"] = round(time.time() - started, 2)
    if incomplete:
        # a reused snapshot printed its problems when it was ingested, so say here what they were
        what = "see above" if current is None else (
            f"snapshot {current['snapshot']} was ingested with {current.get('problems')} problem(s)"
            f"{', the input is truncated' if current.get('truncated') else ''}")
        rt.say(f"linkrec: stopping after ingestion: the input is incomplete ({what}); "
               "--allow-truncated continues with the complete pages")
        summary["seconds_per_stage"] = stages
        return summary, EXIT_INCOMPLETE
    mark = time.time()
    if model_name is None:
        decisions = reviewed(rt, config, options.get("db"))
        record = None if force else model_train.up_to_date_model(warehouse, config, feedback=decisions and decisions[1])
        if record is not None:
            rt.say(f"linkrec: model {wiki} {record['version']} is up to date; reusing it ({record['reason']})")
            summary["train"] = {"reused": True, "version": record["version"], "released": record["released"]}
        else:
            trained = train(rt, config, force=force, db=options.get("db"), feedback=decisions)
            rt.say(f"linkrec: model {trained.name} {trained.version}: {trained.reason}")
            summary["train"] = {"reused": False, **trained.summary()}
    stages["train"] = round(time.time() - mark, 2)

    orphan_runs: list[dict] = []

    def run_orphans(chosen) -> dict:
        orphan_runs.append(orphan_stage(rt, config, force, options, chosen))
        return orphan_runs[-1]

    try:
        summary["recommend"] = recommend(rt, config, model_name=model_name, force=force, earlier_stages=stages,
                                         then=run_orphans if config.orphans.enabled else None, **options)
    except Exception as exc:
        if errors.exit_code(exc) is None:
            raise
        if config.orphans.enabled and not orphan_runs:
            # the link task failed: the orphan task still runs on the run's own selection (none for targeting)
            targeted = (options.get("targeting") or config.targeting.strategy) in ("iterate", "topics")
            explicit = any(options.get(k) for k in ("pages", "page_ids", "titles_file"))
            run_orphans(selection(options.get("pages"), options.get("page_ids"), options.get("titles_file"))
                        if explicit else None if targeted else Selection())
        if orphan_runs:
            summary["orphans"] = orphan_runs[-1]
        exc.summary = {**summary, "recommend": getattr(exc, "summary", {}), "error": str(exc)}
        raise
    code = 0
    if config.orphans.enabled:
        summary["orphans"] = summary["recommend"].pop("then")
        code = summary["orphans"].get("exit_code", 0)
    summary["seconds_per_stage"] = summary["recommend"]["seconds_per_stage"]
    summary["seconds"] = round(time.time() - started, 2)
    return summary, code


ORPHAN_OPTIONS = ("now", "db", "search_url", "search_mode", "events", "ignore_gate", "dry_run", "allow_mass_delete")


def orphan_stage(rt: Runtime, config: Config, force: bool, options: dict, chosen) -> dict:
    """The orphan task of `run` and `nightly` on the pages the link task selected (`chosen`; None: none):
    its model trained when out of date, the task written when the model passes its gate for this wiki
    (or --ignore-gate). It fails on its own: the link task stands, and the summary says why, with the
    exit code the failure would have had."""
    from pipeline import errors
    from pipeline.model import ModelError
    from pipeline.orphans import model as orphan_model

    if chosen is None:
        rt.say(f"linkrec: no orphan task for {config.wiki}: the targeting selected no pages")
        return {"skipped": "the targeting selected no pages"}
    try:
        if config.orphans.model:
            record, _ = orphan_model.load(rt.warehouse(config), config, config.orphans.model)
            released, reason = orphan_model.gate_for(rt.warehouse(config), record, config.wiki)
            trained = {"model": record["name"], "version": record["version"], "reason": reason,
                       "released": released}
        else:
            trained = train_orphans(rt, config, force)
        if not trained["released"] and not options.get("ignore_gate"):
            rt.say(f"linkrec: no orphan task for {config.wiki}: orphan model {trained['model']} is "
                   f"{trained['reason']}")
            return {"skipped": trained["reason"], "model": trained["model"], "version": trained["version"]}
        return orphans(rt, config, force=force, model_name=config.orphans.model or None, chosen=chosen,
                       **{k: v for k, v in options.items() if k in ORPHAN_OPTIONS})
    except ModelError as exc:  # no model can serve this wiki (too few orphans to train, no gate result)
        rt.say(f"linkrec: no orphan task for {config.wiki}: {exc}")
        return {"skipped": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the link task is written already; a bug still raises
        code = errors.exit_code(exc)
        if code is None:
            raise
        message = errors.describe(exc, code)
        rt.say(f"linkrec: error: the orphan task of {config.wiki} failed: {message}")
        return {**getattr(exc, "summary", {}), "failed": message, "exit_code": code}


def newest_input(wiki: str, dump_dir: str | None, tables: str | None) -> tuple[str | None, str | None]:
    """(dump, table) of one wiki: the newest file in DUMP_DIR named <wiki>-*, or PATH/wiki=<wiki> (or PATH/<wiki>)."""
    if tables:
        for folder in (os.path.join(tables, f"wiki={wiki}"), os.path.join(tables, wiki)):
            if os.path.isdir(folder):
                return None, folder
        raise ConfigError(f"{tables}: no wiki={wiki} (or {wiki}) folder")
    try:
        names = [n for n in os.listdir(dump_dir) if n.startswith(f"{wiki}-") and "index" not in n]
    except OSError as exc:
        raise ConfigError(f"--dump-dir {dump_dir}: {exc.strerror}") from None
    if not names:
        raise ConfigError(f"{dump_dir}: no dump named {wiki}-*")
    paths = [os.path.join(dump_dir, n) for n in names]
    return max(paths, key=lambda path: (os.path.getmtime(path), path)), None


def nightly(rt: Runtime, wikis: list[str], dump_dir=None, tables=None, now=None, db=None, events=None, force=False,
            embeddings=False, **options) -> dict:
    """`run_wiki` for each wiki, each isolated (one failing does not stop the others) and resumable: the
    day of `now` names the run, and a re-run that day skips the wikis already done."""
    moment = parse_now(now)
    run_id = moment.strftime("%Y%m%d")
    warehouse = rt.warehouse(rt.config(wikis[0]))
    state_path = f"{warehouse.root}/_nightly/{run_id}.json"
    state = json.loads(warehouse.read_text(state_path) or '{"wikis": {}}')
    outcome: dict = {"run": run_id, "wikis": {}}
    for wiki in wikis:
        if state["wikis"].get(wiki, {}).get("status") == "ok" and not force:
            rt.say(f"linkrec: {wiki}: done already in run {run_id}; skipped")
            outcome["wikis"][wiki] = {"status": "done_earlier"}
            continue
        rt.say(f"linkrec: === {wiki} ===")
        try:
            dump, table = newest_input(wiki, dump_dir, tables)
            siteinfo = os.path.join(tables, f"{wiki}-siteinfo.json") if tables else None
            with rt.locked(wiki):
                summary, code = run_wiki(
                    rt, wiki, dump=dump, table=table, force=force, now=moment,
                    siteinfo=siteinfo if siteinfo and os.path.exists(siteinfo) else None,
                    db=db,
                    events=os.path.join(events, "") if events else None, **options)
            entry = {"status": "ok" if code == 0 else "incomplete", "exit_code": code, "summary": summary}
            newest = summary.get("recommend", {}).get("feedback", {}).get("newest_version", {})
            if newest.get("below_floor") or newest.get("dropped"):
                entry["feedback"] = {k: newest[k] for k in ("version", "acceptance", "decisions", "below_floor",
                                                            "previous_version", "previous_acceptance", "dropped")}
            if embeddings:
                try:
                    with rt.locked(wiki):
                        entry["embeddings"] = embeddings_nightly(rt, rt.config(wiki))
                except Exception as exc:  # noqa: BLE001 - the link task stands; the wiki is reported as failed
                    rt.say(f"linkrec: {wiki}: embeddings failed: {exc}")
                    entry.update(status="failed", error=f"embeddings: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one wiki's failure must not stop the others
            rt.say(f"linkrec: {wiki} failed: {exc}")
            entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        outcome["wikis"][wiki] = entry
        state["wikis"][wiki] = {k: v for k, v in entry.items() if k != "summary"}
        warehouse.write_text(state_path, json.dumps(state, indent=2, sort_keys=True))
    outcome["failed"] = [w for w, e in outcome["wikis"].items() if e["status"] in ("failed", "incomplete")]
    # editors' verdict on the newest model: below the acceptance floor, or worse than the model it replaced
    outcome["feedback_flagged"] = [w for w, e in outcome["wikis"].items() if "feedback" in e]
    rt.say(f"linkrec: nightly {run_id}: {len(wikis) - len(outcome['failed'])} of {len(wikis)} wikis done"
           + (f"; failed: {', '.join(outcome['failed'])}" if outcome["failed"] else "")
           + (f"; acceptance flagged: {', '.join(outcome['feedback_flagged'])}" if outcome["feedback_flagged"]
              else ""))
    return outcome


# --- embeddings ---------------------------------------------------------------------------------------


def embeddings_build(rt: Runtime, wiki: str, kind="links", qids=None, sessions=None, force=False) -> dict:
    """Build (or reuse) the wiki's embeddings snapshot of the current ingested snapshot."""
    from pipeline.embeddings import snapshot
    from pipeline.progress import spark_progress

    if kind == "reading" and not sessions:  # a usage error: said before the JVM starts
        raise UsageError("--model reading needs --sessions TABLE (one row per reading session, a list of page ids)")
    config = rt.config(wiki)
    spark, warehouse = rt.spark(config), rt.warehouse(config)
    with spark_progress(spark, "embeddings", rt.say):
        return snapshot.build(spark, warehouse, config, kind, qids, sessions, force, rt.say)


def embeddings_publish(rt: Runtime, wiki: str, kind="links", to=None, snapshot_name=None, keep=None,
                       ssh_key=None) -> dict:
    """Copy a built snapshot (default: the newest) to `to` (default: embeddings.publish_to)."""
    from pipeline.embeddings import EmbeddingError, model_name, publish, snapshot

    config = rt.config(wiki)
    target = to or config.embeddings.publish_to
    if not target:
        raise UsageError("give --to URI or set embeddings.publish_to")
    warehouse = rt.warehouse(config)
    name = model_name(wiki, kind)
    built = snapshot.local_snapshots(warehouse, name)
    chosen = snapshot_name or (built[-1] if built else None)
    if chosen not in built:
        raise EmbeddingError(f"{name}: no built snapshot{' ' + chosen if chosen else ''} under {warehouse.root} "
                             f"(built: {', '.join(built) or 'none'}); run `linkrec embeddings build --wiki {wiki}`")
    return publish.publish(warehouse, f"{snapshot.snapshots_root(warehouse)}/{name}/{chosen}", target,
                           keep or config.embeddings.keep_snapshots, config.embeddings.publish_chunk_bytes, ssh_key,
                           rt.say)


def neighbours(rt: Runtime, wiki: str, title: str, k: int, kind="links", source=None, ssh_key=None) -> dict:
    from pipeline.embeddings import model_name
    from pipeline.embeddings.neighbours import neighbours as nearest
    from pipeline.embeddings.neighbours import open_snapshot
    from pipeline.text.titles import TitleNormaliser
    from pipeline.warehouse import siteinfo_of

    config = rt.config(wiki)
    warehouse = rt.warehouse(config)
    snap = open_snapshot(model_name(wiki, kind), source or config.embeddings.publish_to or None, warehouse, ssh_key)
    normaliser = TitleNormaliser.from_siteinfo(siteinfo_of(warehouse, wiki, snap.manifest["snapshot"]),
                                               config.text.case)
    return nearest(snap, title, k, lambda t: normaliser.display(t) or t)


def embeddings_nightly(rt: Runtime, config: Config) -> dict:
    """The nightly step: build the links model when the input snapshot changed, publish when a destination
    is configured."""
    built = embeddings_build(rt, config.wiki)
    out = {"snapshot": built["snapshot"], "reused": built["reused"], "vectors": built["counts"]["vectors"]}
    if config.embeddings.publish_to:
        out["published"] = embeddings_publish(rt, config.wiki)["latest"]
    return out


# --- the development index, search and reconcile ---------------------------------------------------------


def index_init(rt: Runtime, wiki: str, search_url: str, topics=None, recreate=False) -> dict:
    """<wiki>_content with one document per article and its topic tags."""
    from sinks import index as search_index
    from sinks.search import client_for, search_errors
    from sinks.topic_table import load_topic_table, topic_tags

    config = rt.config(wiki)
    name = config.sinks.search_index.format(wiki=wiki)
    table = load_topic_table(topics) if topics else {}
    client = client_for(search_url, config.sinks.timeout_seconds)
    with search_errors(search_url, name):
        client.info()  # a search server answers before the articles are read
    documents = [(page_id, title, namespace, topic_tags(table.get(title, {})))
                 for page_id, title, namespace, _ in articles(rt, config)]
    with search_errors(search_url, name):
        search_index.create_index(client, name, recreate)
        indexed = search_index.index_documents(client, name, documents, config.sinks.bulk_size)
    with_topics = sum(1 for document in documents if document[3])
    rt.say(f"linkrec: {name}: {indexed} articles indexed, {with_topics} with topic tags")
    return {"wiki": wiki, "index": name, "documents": indexed, "with_topics": with_topics}


def search(rt: Runtime, wiki: str, search_url: str, query: str, limit: int) -> dict:
    """A CirrusSearch-style query on <wiki>_content: the total and the first `limit` hits."""
    from sinks import query as queries
    from sinks.search import client_for, search_errors
    from sinks.topic_table import topic_vocabulary

    config = rt.config(wiki)
    keywords, _, _ = topic_vocabulary()
    body = queries.parse_query(query, keywords)
    client = client_for(search_url, config.sinks.timeout_seconds)
    name = config.sinks.search_index.format(wiki=wiki)
    with search_errors(search_url, name):
        total = queries.count(client, name, body)
        hits = queries.search(client, name, body, limit)
    return {"query": query, "total": total, "hits": [{"page_id": p, "title": t} for p, t in hits]}


def reconcile(rt: Runtime, wiki: str, db, search_url: str, search_mode=None, fix=False, task_name="link"):
    """Database rows against index tags (latest revisions from the ingested snapshot when there is one)."""
    from sinks.base import task_named
    from sinks.connect import open_sinks
    from sinks.query import tagged_pages
    from sinks.reconcile import reconcile as compare_and_fix
    from sinks.search import search_errors

    config = rt.config(wiki)
    task = task_named(task_name, config.orphans.table, config.orphans.submissions_table)
    found = articles(rt, config) if rt.warehouse(config).manifest(wiki) else None
    database, tags = open_sinks(config, parse_now(None), rt.database_url(db, wiki), search_url, search_mode, None, task)
    try:
        latest = None if found is None else {page_id: revision for page_id, _, _, revision in found}
        titles = {page_id: title for page_id, title, _, _ in found or []}
        with search_errors(search_url, tags.index):
            tagged = tagged_pages(tags.client, tags.index, task)
        return compare_and_fix(database, tags, tagged, latest, fix, titles)
    finally:
        database.finish()
        tags.finish()


def feedback(rt: Runtime, config: Config, db: str | None, events: str | None = None, since: str | None = None,
             task_name: str = "link") -> tuple[dict, list[str]]:
    """What editors did with the links this project served: the submissions table read batch by batch into
    the warehouse and joined there to the served-links ledger. The summary and the bad rows shown."""
    from pipeline.feedback.job import analyse, parse_since
    from sinks.base import SinkUnusable, redact, task_named
    from sinks.connect import open_database

    wiki = config.wiki
    moment = parse_since(since)
    if events and not os.path.exists(events):
        raise UsageError(f"--events {events}: no such file or folder")
    url = rt.database_url(db, wiki)
    task = task_named(task_name, config.orphans.table, config.orphans.submissions_table)
    database = open_database(url, wiki, config.sinks.retries, config.sinks.backoff_seconds, lock=False,
                             timeout=config.sinks.timeout_seconds, task=task)
    spark, warehouse = rt.spark(config), rt.warehouse(config)
    try:
        others = [owner for owner in database.owners() if owner != wiki]
        if others:
            raise SinkUnusable(f"{redact(url)} holds the tasks of {', '.join(others)}, not of {wiki}")
        rt.say(f"linkrec: reading {task.submissions} from {redact(url)} …")
        staged = staged_submissions(spark, warehouse, database, wiki)
    finally:
        database.finish()
    try:  # nothing reviewed yet (staged None): the same summary, all zero
        return analyse(spark, warehouse, config, task.name, url, staged, events, moment)
    finally:
        if staged is not None:
            warehouse.delete(staged)
