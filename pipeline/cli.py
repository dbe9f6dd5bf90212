"""The `linkrec` command line."""

from __future__ import annotations

import json
import os
import sys
import time

import click

from pipeline import __version__
from pipeline.config import Config, ConfigError, load_config
from pipeline.ingest.dumpreader import DumpError
from pipeline.warehouse import WarehouseBusy
from sinks.base import MassDeleteRefused, SinkError, SinkUnusable

EXIT_FAILED = 1
EXIT_INCOMPLETE = 3


class Invocation:
    """One command line's global options, and the Spark session and warehouse it opens on first use."""

    def __init__(self, warehouse: str | None, config_files: tuple[str, ...], overrides: tuple[str, ...],
                 quiet: bool):
        self.warehouse_option = warehouse
        self.config_files = config_files
        self.overrides = overrides
        self.quiet = quiet
        self._spark = None

    def config(self, wiki: str, flags: dict | None = None) -> Config:
        return load_config(wiki, self.config_files, self.overrides, flags)

    def spark(self, config: Config):
        if self._spark is None:
            from pipeline.spark import get_spark
            self._spark = get_spark(config.spark)
        return self._spark

    def warehouse(self, config: Config):
        from pipeline.warehouse import Warehouse, resolve_root
        return Warehouse(self.spark(config), resolve_root(self.warehouse_option))

    def locked(self, wiki: str):
        """The warehouse lock of one wiki (WarehouseBusy when another run holds it)."""
        from pipeline.warehouse import resolve_root, wiki_lock
        return wiki_lock(resolve_root(self.warehouse_option), wiki)

    def say(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)


def fail(message: str, code: int = EXIT_FAILED):
    click.echo(f"linkrec: error: {message}", err=True)
    sys.exit(code)


def emit_json(summary: dict) -> None:
    click.echo(json.dumps(summary, ensure_ascii=False, sort_keys=True, default=str))


def sink_failed(exc: SinkError, as_json: bool):
    """Exit 3 after a sink stopped a run: what was written stands; the summary says how far it got."""
    if as_json:
        emit_json({**getattr(exc, "summary", {}), "error": str(exc), "exit_code": EXIT_INCOMPLETE})
    fail(f"{exc}; the run is incomplete, a re-run converges", EXIT_INCOMPLETE)


# Spark failures an operator can fix with a setting: (text in the Java error, what to say)
SPARK_LIMITS = (
    ("spark.driver.maxResultSize", "a result sent to the driver exceeded spark.driver.maxResultSize: raise it "
                                   "(--set 'spark.conf={\"spark.driver.maxResultSize\"=\"4g\"}') or use "
                                   "--lookups join"),
    ("Java heap space", "a JVM ran out of heap: raise spark.driver_memory (local mode) or spark.executor.memory"),
    ("GC overhead limit exceeded", "a JVM ran out of heap: raise spark.driver_memory (local mode) or "
                                   "spark.executor.memory"),
    ("exceeding memory limits", "an executor exceeded its container's memory: raise spark.executor.memoryOverhead "
                                "(Python workers live there)"),
    ("Python worker exited unexpectedly", "a Python worker died (often killed for memory): raise "
                                          "spark.executor.memoryOverhead or use --lookups join"),
)


def spark_failure(exc: BaseException) -> str | None:
    """One line for a Spark (JVM) failure, naming the setting when it is a known limit; None when
    `exc` is not a Spark failure."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    if not isinstance(exc, (Py4JJavaError, PySparkException)):
        return None
    text = str(exc)
    for needle, advice in SPARK_LIMITS:
        if needle in text:
            return f"Spark stopped: {advice}"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"Spark stopped: {first[:300]}"


class Linkrec(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:  # noqa: BLE001 - only Spark failures are turned into one line
            message = spark_failure(exc)
            if message is None:
                raise
            fail(message)


@click.group(cls=Linkrec, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="linkrec")
@click.option("--warehouse", envvar="LINKREC_WAREHOUSE", metavar="DIR",
              help="Root of every table: a path or an hdfs:// / s3a:// URI [env LINKREC_WAREHOUSE; ./warehouse].")
@click.option("--config", "config_files", multiple=True, metavar="FILE",
              help="Extra TOML file over configs/default.toml and configs/wikis/<wiki>.toml (repeatable).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override one configuration value, e.g. --set recommend.minimum_link_score=0.7.")
@click.option("--quiet", is_flag=True, help="No progress messages on stderr.")
@click.pass_context
def main(ctx, warehouse, config_files, overrides, quiet):
    """linkrec: train the "Add a link" model and precompute link recommendations with Spark."""
    ctx.obj = Invocation(warehouse, config_files, overrides, quiet)


@main.group("config")
def config_group():
    """Inspect the configuration."""


@config_group.command("show")
@click.option("--wiki", required=True, help="Wiki database name, e.g. enwiki.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@click.pass_obj
def config_show(obj: Invocation, wiki, as_json):
    """Print the effective configuration of a wiki and the files it came from."""
    try:
        config = obj.config(wiki)
    except ConfigError as exc:
        fail(str(exc))
    if as_json:
        emit_json({"wiki": config.wiki, "sources": list(config.sources), **config.to_dict()})
    else:
        click.echo(config.to_toml(), nl=False)


def _report_problems(obj: Invocation, problems: list[dict]) -> None:
    from pipeline.ingest.dumpreader import Problem

    shown = problems[:50]
    for problem in shown:
        click.echo(f"linkrec: {problem['kind']}: {Problem(**problem).describe()}", err=True)
    if len(problems) > len(shown):
        click.echo(f"linkrec: … and {len(problems) - len(shown)} more problems", err=True)


def _ingest(obj: Invocation, wiki, dump, table, index, siteinfo, snapshot, allow_truncated):
    from pipeline.ingest import job
    from pipeline.progress import spark_progress

    flags = {"ingest": {"allow_truncated": True}} if allow_truncated else None
    config = obj.config(wiki, flags)
    spark = obj.spark(config)
    warehouse = obj.warehouse(config)
    obj.say(f"linkrec: ingesting {dump or table} into {warehouse.root} …")
    with spark_progress(spark, "ingest", obj.say):
        if dump:
            result = job.ingest_dump(spark, warehouse, config, dump, index, snapshot)
        else:
            result = job.ingest_table(spark, warehouse, config, table, siteinfo, snapshot)
    _report_problems(obj, result.problems)
    for warning in result.warnings:
        click.echo(f"linkrec: warning: {warning}", err=True)
    return config, result


def _ingest_lines(result) -> list[str]:
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


def _incomplete_exit(config: Config, result) -> int:
    """Non-zero when pages were lost, unless truncation was allowed and truncation is all there was."""
    from pipeline.ingest.job import accepted

    return 0 if accepted(result.problems, config.ingest.allow_truncated) else EXIT_INCOMPLETE


dump_options = [
    click.option("--wiki", required=True, help="Wiki database name, e.g. enwiki."),
    click.option("--index", type=click.Path(dir_okay=False), help="Multistream index (…-multistream-index.txt.bz2)."),
    click.option("--snapshot", help="Snapshot name [default: the date in the dump's file name, else "
                                    "the date of its newest revision]."),
    click.option("--allow-truncated", is_flag=True, help="A truncated input is not an error (complete pages are "
                                                         "always kept)."),
    click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout."),
]


def with_options(options):
    def wrap(func):
        for option in reversed(options):
            func = option(func)
        return func
    return wrap


@main.command()
@with_options(dump_options[:1])
@click.option("--dump", type=click.Path(dir_okay=False), help="MediaWiki XML dump (.bz2, .xz, .gz or plain).")
@click.option("--table", type=click.Path(), help="Parquet table with one row per page instead of a dump.")
@click.option("--siteinfo", type=click.Path(dir_okay=False),
              help="With --table: siteinfo JSON (ours, or the MediaWiki API's meta=siteinfo answer).")
@with_options(dump_options[1:])
@click.pass_obj
def ingest(obj: Invocation, wiki, dump, table, siteinfo, index, snapshot, allow_truncated, as_json):
    """Read a dump or a page table into the pages, titles and links tables."""
    if bool(dump) == bool(table):
        fail("give exactly one of --dump PATH or --table PATH", 2)
    try:
        with obj.locked(wiki):
            config, result = _ingest(obj, wiki, dump, table, index, siteinfo, snapshot, allow_truncated)
    except (ConfigError, DumpError) as exc:
        fail(str(exc))
    except WarehouseBusy as exc:
        fail(str(exc), EXIT_INCOMPLETE)
    for line in _ingest_lines(result):
        obj.say(line)
    if as_json:
        emit_json(result.summary())
    sys.exit(_incomplete_exit(config, result))


recommend_options = [
    click.option("--pages", help="Page-id range A-B."),
    click.option("--page-ids", help="Comma-separated page ids."),
    click.option("--titles-file", type=click.Path(dir_okay=False), help="A file with one title per line."),
    click.option("--db", help="sqlite:///path or mysql://user[:password]@host[:port]/database [default: "
                              "sqlite:///<warehouse>/linkrec.db]. MariaDB credentials may also come from "
                              "LINKREC_DB_USER / LINKREC_DB_PASSWORD or ?read_default_file=~/.my.cnf."),
    click.option("--search-url", help="Elasticsearch / OpenSearch / CirrusSearch URL: set or clear the "
                                      "recommendation.link/exists tag of every page written."),
    click.option("--search-mode", type=click.Choice(["cirrus", "painless"]),
                 help="cirrus: super_detect_noop updates (search-extra plugin); painless: vanilla script "
                      "updates [default: sinks.search_mode, painless]."),
    click.option("--events", type=click.Path(), help="Write page_weighted_tags_change events (NDJSON) to this "
                                                     "file, or to <wiki>-<time>.ndjson in this folder."),
    click.option("--now", help="Reference time for minimumTimeSinceLastEdit, ISO 8601 [default: now]."),
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


@main.command()
@with_options(dump_options[:1])
@click.option("--dump", type=click.Path(dir_okay=False), required=True,
              help="MediaWiki XML dump (.bz2, .xz, .gz or plain).")
@with_options(dump_options[1:-1])
@with_options(recommend_options)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout.")
@click.pass_obj
def run(obj: Invocation, wiki, dump, index, snapshot, allow_truncated, as_json, **options):
    """The main job for one wiki: ingest → train → backtest and gate → recommend → database and search
    index. Up-to-date tables and models are reused (--force rebuilds them)."""
    from pipeline.model.train import ModelError

    try:
        with obj.locked(wiki):
            summary, code = run_wiki(obj, wiki, dump=dump, index=index, snapshot=snapshot,
                                     allow_truncated=allow_truncated, **options)
    except WarehouseBusy as exc:
        fail(str(exc), EXIT_INCOMPLETE)
    except (ConfigError, DumpError, ModelError, MassDeleteRefused, SinkUnusable) as exc:
        fail(str(exc))
    except SinkError as exc:
        sink_failed(exc, as_json)
    if as_json:
        emit_json(summary)
    sys.exit(code)


def _input_is_ingested(warehouse, wiki: str, path: str, snapshot: str | None) -> dict | None:
    """The manifest entry of the current snapshot when it was made from exactly this input file or folder."""
    from pipeline.ingest.job import _file_identity, source_path

    manifest = warehouse.manifest(wiki) or {}
    current = manifest.get("snapshots", {}).get(manifest.get("current_snapshot", ""), {})
    source = current.get("source", {})
    identity = {"path": source_path(path), **_file_identity(path)}
    same = (source.get("path") == identity["path"] and source.get("bytes") == identity.get("bytes")
            and source.get("mtime") == identity.get("mtime"))
    if same and (snapshot is None or snapshot == manifest.get("current_snapshot")):
        return {**current, "snapshot": manifest["current_snapshot"]}
    return None


def run_wiki(obj: Invocation, wiki: str, dump: str | None = None, table: str | None = None, index=None, snapshot=None,
             allow_truncated=False, force=False, model_name=None, siteinfo=None, **options) -> tuple[dict, int]:
    """Ingest (unless this input is ingested already), train (unless the model is up to date), recommend,
    write the sinks. Returns the summary and the exit code."""
    from pipeline.model import train as model_train
    from pipeline.progress import spark_progress

    started = time.time()
    stages: dict[str, float] = {}
    summary: dict = {"wiki": wiki}
    flags = {"ingest": {"allow_truncated": True}} if allow_truncated else None
    config = obj.config(wiki, flags)
    warehouse = obj.warehouse(config)
    current = None if force else _input_is_ingested(warehouse, wiki, dump or table, snapshot)
    if current is not None:
        obj.say(f"linkrec: {dump or table} is already ingested (snapshot {current['snapshot']}); reusing it")
        summary["ingest"] = {"reused": True, "snapshot": current["snapshot"], "problems": current.get("problems", 0)}
        incomplete = bool(current.get("problems")) and not (current.get("truncated") and allow_truncated)
    else:
        config, result = _ingest(obj, wiki, dump, table, index, siteinfo, snapshot, allow_truncated)
        for line in _ingest_lines(result):
            obj.say(line)
        summary["ingest"] = result.summary()
        incomplete = _incomplete_exit(config, result) != 0
    stages["ingest"] = round(time.time() - started, 2)
    if incomplete:
        # a reused snapshot printed its problems when it was ingested, so say here what they were
        what = "see above" if current is None else (
            f"snapshot {current['snapshot']} was ingested with {current.get('problems')} problem(s)"
            f"{', the input is truncated' if current.get('truncated') else ''}")
        obj.say(f"linkrec: stopping after ingestion: the input is incomplete ({what}); "
                "--allow-truncated continues with the complete pages")
        summary["seconds_per_stage"] = stages
        return summary, EXIT_INCOMPLETE
    mark = time.time()
    if model_name is None:
        record = None if force else model_train.up_to_date_model(warehouse, config)
        if record is not None:
            obj.say(f"linkrec: model {wiki} {record['version']} is up to date; reusing it ({record['reason']})")
            summary["train"] = {"reused": True, "version": record["version"], "released": record["released"]}
        else:
            obj.say(f"linkrec: training the {wiki} model (dictionaries, examples, XGBoost, backtests) …")
            with spark_progress(obj.spark(config), "train", obj.say):
                trained = model_train.train(obj.spark(config), warehouse, config, force=force)
            obj.say(f"linkrec: model {trained.name} {trained.version}: {trained.reason}")
            summary["train"] = {"reused": False, **trained.summary()}
    stages["train"] = round(time.time() - mark, 2)
    mark = time.time()
    try:
        summary["recommend"] = _recommend(obj, config, model_name=model_name, force=force, earlier_stages=stages,
                                          **options)
    except SinkError as exc:
        exc.summary = {**summary, "recommend": getattr(exc, "summary", {}), "error": str(exc)}
        raise
    summary["seconds_per_stage"] = summary["recommend"]["seconds_per_stage"]
    summary["seconds"] = round(time.time() - started, 2)
    return summary, 0


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


@main.command("nightly")
@click.option("--wikis", required=True, help="Comma-separated wiki database names.")
@click.option("--dump-dir", type=click.Path(file_okay=False), help="Folder of dumps: each wiki's newest <wiki>-* file.")
@click.option("--tables", type=click.Path(file_okay=False),
              help="Folder of page tables: PATH/wiki=<wiki>, with PATH/<wiki>-siteinfo.json when there is one.")
@click.option("--db", help="Database URL; {wiki} is replaced by the wiki name [default: the embedded SQLite file].")
@click.option("--search-url", help="Search server for the tags (see `recommend`).")
@click.option("--search-mode", type=click.Choice(["cirrus", "painless"]), help="How tags are updated.")
@click.option("--events", type=click.Path(), help="Folder for the page_weighted_tags_change event files.")
@click.option("--report-dir", type=click.Path(file_okay=False), help="Write each wiki's run report here.")
@click.option("--ignore-gate", is_flag=True, help="Use models that did not pass the release gate.")
@click.option("--allow-truncated", is_flag=True, help="Truncated dumps are used (their complete pages).")
@click.option("--force", is_flag=True, help="Re-ingest, retrain and rewrite even when up to date.")
@click.option("--allow-mass-delete", is_flag=True, help="See `recommend`.")
@click.option("--now", help="Reference time, ISO 8601 [default: now]; its day names the run for resuming.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout.")
@click.pass_obj
def nightly(obj: Invocation, wikis, dump_dir, tables, db, search_url, search_mode, events, report_dir, ignore_gate,
            allow_truncated, force, allow_mass_delete, now, as_json):
    """Per wiki: ingest when the input is newer, retrain when data or config changed, gate, select pages
    with the configured targeting, recommend, write the sinks and the report. One wiki failing does not
    stop the others (exit 1 names them); a re-run on the same day skips the wikis already done."""
    if bool(dump_dir) == bool(tables):
        fail("give exactly one of --dump-dir DIR or --tables PATH", 2)
    names = [w.strip() for w in wikis.split(",") if w.strip()]
    if not names:
        fail(f"--wikis {wikis!r}: no wiki named (expected e.g. enwiki,frwiki)", 2)
    moment = _now(now)
    run_id = moment.strftime("%Y%m%d")
    try:
        warehouse = obj.warehouse(obj.config(names[0]))
    except ConfigError as exc:
        fail(str(exc))
    state_path = f"{warehouse.root}/_nightly/{run_id}.json"
    state = json.loads(warehouse.read_text(state_path) or '{"wikis": {}}')
    outcome: dict = {"run": run_id, "wikis": {}}
    for wiki in names:
        if state["wikis"].get(wiki, {}).get("status") == "ok" and not force:
            obj.say(f"linkrec: {wiki}: done already in run {run_id}; skipped")
            outcome["wikis"][wiki] = {"status": "done_earlier"}
            continue
        obj.say(f"linkrec: === {wiki} ===")
        try:
            dump, table = newest_input(wiki, dump_dir, tables)
            siteinfo = os.path.join(tables, f"{wiki}-siteinfo.json") if tables else None
            with obj.locked(wiki):
                summary, code = run_wiki(
                    obj, wiki, dump=dump, table=table, allow_truncated=allow_truncated, force=force,
                    siteinfo=siteinfo if siteinfo and os.path.exists(siteinfo) else None,
                    now=moment.isoformat(), ignore_gate=ignore_gate, db=db.replace("{wiki}", wiki) if db else None,
                    search_url=search_url, search_mode=search_mode, events=os.path.join(events, "") if events else None,
                    report_dir=report_dir, allow_mass_delete=allow_mass_delete)
            entry = {"status": "ok" if code == 0 else "incomplete", "exit_code": code, "summary": summary}
        except Exception as exc:  # noqa: BLE001 - one wiki's failure must not stop the others
            obj.say(f"linkrec: {wiki} failed: {exc}")
            entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        outcome["wikis"][wiki] = entry
        state["wikis"][wiki] = {k: v for k, v in entry.items() if k != "summary"}
        warehouse.write_text(state_path, json.dumps(state, indent=2, sort_keys=True))
    failed = [w for w, e in outcome["wikis"].items() if e["status"] in ("failed", "incomplete")]
    outcome["failed"] = failed
    obj.say(f"linkrec: nightly {run_id}: {len(names) - len(failed)} of {len(names)} wikis done"
            + (f"; failed: {', '.join(failed)}" if failed else ""))
    if as_json:
        emit_json(outcome)
    sys.exit(EXIT_FAILED if failed else 0)


@main.command("train")
@click.option("--wiki", help="Train the model of one wiki (its tables must be ingested).")
@click.option("--wikis", help="With --name: a joint model for these wikis, comma-separated.")
@click.option("--name", help="Name of a joint model.")
@click.option("--wikidata", type=click.Path(),
              help="page_id → P31 QIDs (Parquet page_id,qid or TSV); recorded, and reused by every later command "
                   "until another is given ('none' stops using it).")
@click.option("--force", is_flag=True, help="Rebuild every table even when up to date.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout.")
@click.pass_obj
def train_command(obj: Invocation, wiki, wikis, name, wikidata, force, as_json):
    """Build the dictionaries, train, backtest under both protocols and apply the release gate."""
    from pipeline.model import train as model_train
    from pipeline.progress import spark_progress

    if bool(wiki) == bool(wikis):
        fail("give --wiki W, or --wikis a,b,c with --name NAME", 2)
    if wikis and not name:
        fail("--wikis needs --name for the joint model", 2)
    try:
        if wiki:
            config = obj.config(wiki)
            with obj.locked(wiki), spark_progress(obj.spark(config), "train", obj.say):
                result = model_train.train(obj.spark(config), obj.warehouse(config), config, wikidata, force)
        else:
            from pipeline.model import joint
            configs = [obj.config(w.strip()) for w in wikis.split(",") if w.strip()]
            result = joint.train_joint(obj.spark(configs[0]), obj.warehouse(configs[0]), configs, name, force)
    except (ConfigError, model_train.ModelError, ValueError) as exc:
        fail(str(exc))
    except WarehouseBusy as exc:
        fail(str(exc), EXIT_INCOMPLETE)
    obj.say(f"linkrec: model {result.name} {result.version} at {result.path}")
    obj.say(f"linkrec: {result.reason}")
    for protocol, curve in result.curves.items():
        point = next(p for p in curve if p["threshold"] == 0.5)
        obj.say(f"  {protocol}: {point['n_sentences']} test sentences, precision {point['precision']:.3f}, "
                f"recall {point['recall']:.3f} at 0.5")
    if as_json:
        emit_json(result.summary())


@main.command("evaluate")
@click.option("--wiki", required=True, help="Backtest on this wiki's own test sentences and dictionaries.")
@click.option("--model", "model_name", help="Model name (a wiki or a joint model) [default: the wiki's own].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout.")
@click.pass_obj
def evaluate_command(obj: Invocation, wiki, model_name, as_json):
    """Micro precision and recall at thresholds 0.0 … 0.9 under the reference and leakage-free protocols."""
    from pipeline.model import train as model_train

    try:
        config = obj.config(wiki)
        result = model_train.evaluate(obj.spark(config), obj.warehouse(config), config, model_name)
    except (ConfigError, model_train.ModelError) as exc:
        fail(str(exc))
    for protocol, curve in result["protocols"].items():
        obj.say(f"{protocol}:")
        for point in curve:
            obj.say(f"  {point['threshold']:.1f}  precision {point['precision']:.3f}  recall {point['recall']:.3f}"
                    f"  ({point['n_sentences']} sentences)")
    if as_json:
        emit_json(result)


def _selection(pages: str | None, page_ids: str | None, titles_file: str | None):
    from pipeline.recommend.job import Selection

    first = last = None
    if pages:
        try:
            first, last = (int(x) for x in pages.split("-", 1))
        except ValueError:
            fail(f"--pages {pages!r}: expected a page-id range such as 100-200", 2)
        if first > last:
            fail(f"--pages {pages!r}: the range is empty (the first id is above the last)", 2)
    ids: tuple[int, ...] = ()
    if page_ids:
        try:
            ids = tuple(int(x) for x in page_ids.split(",") if x.strip())
        except ValueError:
            fail(f"--page-ids {page_ids!r}: expected comma-separated page ids", 2)
    titles: tuple[str, ...] = ()
    if titles_file:
        try:
            with open(titles_file, encoding="utf-8") as handle:
                titles = tuple(line.strip().replace("_", " ") for line in handle if line.strip())
        except OSError as exc:
            fail(f"--titles-file {titles_file}: {exc.strerror}")
        except UnicodeDecodeError as exc:
            fail(f"--titles-file {titles_file}: not UTF-8 text (byte {exc.start})")
    return Selection(first, last, ids, titles)


def _now(value: str | None):
    from datetime import UTC, datetime

    if not value:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--now {value!r}: expected an ISO 8601 time such as 2026-01-31T00:00:00Z", 2)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _default_db(obj: Invocation, config: Config) -> str:
    from pipeline.warehouse import resolve_root

    root = resolve_root(obj.warehouse_option)
    if "://" in root:
        fail("--db is required when the warehouse is not a local folder", 2)
    return f"sqlite:///{root}/linkrec.db"


def _write(spark, warehouse, config: Config, result, database, tags, db, search_url, search_mode, moment, force,
           progress, allow_mass_delete=False):
    """Rows and tags of one recommend output: from the executors into MariaDB and a search index, else
    streamed through the driver into the single-file sinks (SQLite, an events file). A run that would
    delete or clear too many tasks is refused first (`sinks.max_delete_share`)."""
    from sinks.base import Published, TagCounts, publish
    from sinks.mariadb import MariaDbDatabase
    from sinks.results import SinkSpec, check_mass_delete, page_results, publish_from_executors
    from sinks.search import EventTags

    sinks = config.sinks
    spec = None
    if sinks.from_executors and isinstance(database, MariaDbDatabase):
        spec = SinkSpec(db, config.wiki, sinks.retries, sinks.backoff_seconds, sinks.batch_size, search_url,
                        sinks.search_index.format(wiki=config.wiki), search_mode or sinks.search_mode, sinks.bulk_size,
                        moment, force, sinks.timeout_seconds)
    if not allow_mass_delete:
        check_mass_delete(spark, result.output, database, sinks, spec)
    if spec is not None and not isinstance(tags, EventTags):
        return publish_from_executors(spark, warehouse, config.wiki, result.snapshot, result.output, spec)
    totals = Published(search=None if tags is None else TagCounts())
    try:
        return publish(progress.wrap(page_results(spark, warehouse, config.wiki, result.snapshot, result.output)),
                       database, tags, sinks.batch_size, force, totals)
    except SinkError as exc:
        exc.partial = totals  # what was written before the sink stopped, for the summary
        raise


def _open_sinks(obj: Invocation, config: Config, moment, db, search_url, search_mode, events):
    from sinks.connect import open_database, open_tags
    from sinks.search import IndexTags, check_index

    sinks = config.sinks
    database = open_database(db or _default_db(obj, config), config.wiki, sinks.retries, sinks.backoff_seconds,
                             timeout=sinks.timeout_seconds)
    try:
        tags = open_tags(config.wiki, moment, sinks.search_index.format(wiki=config.wiki), search_url,
                         search_mode or sinks.search_mode, events, sinks.bulk_size, sinks.retries,
                         sinks.backoff_seconds, sinks.timeout_seconds)
        if isinstance(tags, IndexTags):
            check_index(tags.client, search_url, tags.index)  # before the expensive compute
    except BaseException:
        database.finish()
        raise
    return database, tags


def _merge(total: dict, part: dict) -> dict:
    """Add up two run summaries (numbers summed, dicts merged the same way, the rest from the latest)."""
    for key, value in part.items():
        if isinstance(value, bool):
            total[key] = bool(total.get(key)) or value
        elif isinstance(value, dict):
            total[key] = _merge(dict(total.get(key, {})), value)
        elif isinstance(value, (int, float)):
            total[key] = round(total.get(key, 0) + value, 2)
        else:
            total[key] = value
    return total


def _topic_source(obj: Invocation, config: Config, database, tags, topics_file: str | None):
    from sinks import index as search_index
    from sinks.search import IndexTags
    from targeting.topics import IndexTopics, TableTopics

    if topics_file:
        table = search_index.load_topic_table(topics_file)
        articles = {title: page_id for page_id, title, _, _ in _articles(obj, config)}
        members: dict[str, set[int]] = {}
        for title, labels in table.items():
            if title in articles:
                for label in labels:
                    members.setdefault(label, set()).add(articles[title])
        return TableTopics(members, database)
    if not isinstance(tags, IndexTags):
        raise ConfigError("topic targeting needs --search-url (topics from the index) or --topics FILE")
    keywords, _, _ = search_index.topic_vocabulary()
    return IndexTopics(tags.client, tags.index, sorted(set(keywords.values())))


def _recommend(obj: Invocation, config: Config, pages=None, page_ids=None, titles_file=None, now=None, model_name=None,
               ignore_gate=False, force=False, dry_run=False, lookups_path=None, db=None, search_url=None,
               search_mode=None, events=None, targeting=None, limit=None, topics=None, report_dir=None,
               allow_mass_delete=False, earlier_stages: dict | None = None) -> dict:
    from pipeline.progress import Progress, spark_progress
    from pipeline.recommend.job import Selection, prune_runs, recommend
    from sinks.base import redact
    from targeting import cursor
    from targeting import topics as topic_targeting

    wiki = config.wiki
    explicit = bool(pages or page_ids or titles_file)
    strategy = "explicit" if explicit else (targeting or config.targeting.strategy)
    limit = limit or config.targeting.limit
    moment = _now(now)
    database, tags = (None, None) if dry_run else _open_sinks(obj, config, moment, db, search_url, search_mode,
                                                              events)
    summary: dict = {}
    outputs: list[str] = []
    topic_counts = None
    try:
        submitted, rejected = database.submissions() if database is not None else (set(), {})
        spark = obj.spark(config)
        warehouse = obj.warehouse(config)

        def one_round(selection: Selection) -> dict:
            obj.say(f"linkrec: recommending for {wiki} …")
            with spark_progress(spark, "recommend", obj.say):
                result = recommend(spark, warehouse, config, selection, moment, model_name, ignore_gate, submitted,
                                   rejected, lookups_path)
            outputs.append(result.output)
            part = result.summary()
            if result.unmatched:
                shown = ", ".join(repr(name) for name in result.unmatched[:20])
                click.echo(f"linkrec: warning: {len(result.unmatched)} of the pages asked for match no page of the "
                           f"snapshot: {shown}{' …' if len(result.unmatched) > 20 else ''}", err=True)
            obj.say(f"  {part['pages_read']} pages, {part['eligible']} eligible, {part['with_links']} with links "
                    f"({part['links']} links), {part['null_rows']} NULL rows; skipped {part['skipped']}")
            mark = time.time()
            if database is not None:
                obj.say(f"linkrec: writing to {redact(db) if db else 'the embedded database'}"
                        f"{' and ' + (redact(search_url) if search_url else events) if tags else ''} …")
                progress = Progress("written", part["pages_read"] - part["skipped"].get("not_main_namespace", 0),
                                    obj.say)
                try:
                    published = _write(spark, warehouse, config, result, database, tags, db, search_url, search_mode,
                                       moment, force, progress, allow_mass_delete)
                except SinkError as exc:
                    partial = getattr(exc, "partial", None)
                    exc.summary = {**part, **(partial.summary() if partial else {}), "error": str(exc)}
                    raise
                part.update(published.summary())
            part["seconds_per_stage"] = {"recommend": part["seconds"], "write": round(time.time() - mark, 2)}
            return part

        if strategy == "iterate":
            pages_after = _article_ids_after(obj, config)
            batch = cursor.next_batch(database, wiki, pages_after, limit) if database is not None else \
                pages_after(-1, limit)
            summary = one_round(Selection(page_ids=tuple(batch)))
            if database is not None:
                cursor.advance(database, wiki, batch)  # only once the batch is written
            summary["targeting"] = {"strategy": "iterate", "pages": len(batch), "first": min(batch, default=None),
                                    "last": max(batch, default=None)}
        elif strategy == "topics":
            source = _topic_source(obj, config, database, tags, topics)
            minimum = config.targeting.minimum_tasks_per_topic
            before = {label: source.tasks(label) for label in source.labels}
            evaluated: set[int] = set()
            selected_per_topic: dict[str, int] = {}
            rounds = 0
            while True:
                chosen = topic_targeting.picks(source, minimum, config.targeting.seed, evaluated)
                selected = sorted({page for batch in chosen.values() for page in batch})
                if not selected:
                    break
                for label, batch in chosen.items():
                    selected_per_topic[label] = selected_per_topic.get(label, 0) + len(batch)
                obj.say(f"linkrec: topic round {rounds + 1}: {len(selected)} articles for {len(chosen)} topics below "
                        f"{minimum} tasks")
                summary = _merge(summary, one_round(Selection(page_ids=tuple(selected))))
                evaluated.update(selected)
                rounds += 1
                if dry_run:
                    break
                source.refresh()
            after = {label: source.tasks(label) for label in source.labels}
            topic_counts = {"minimum": minimum, "before": before, "after": after}
            summary["targeting"] = {"strategy": "topics", "rounds": rounds, "pages": len(evaluated),
                                    "selected": selected_per_topic, **topic_counts}
        else:
            summary = one_round(_selection(pages, page_ids, titles_file) if explicit else Selection())
            summary["targeting"] = {"strategy": strategy}
        summary["dry_run"] = dry_run
        if "changed" in summary:
            obj.say(f"  database: {summary['database']}")
            if "search" in summary:
                obj.say(f"  search: {summary['search']}")
            obj.say("  nothing changed" if not summary["changed"] else "  changes written")
        summary["seconds_per_stage"] = {**(earlier_stages or {}), **summary.get("seconds_per_stage", {})}
        if report_dir:
            from pipeline.report import build_report, write_report

            run_id = moment.strftime("%Y%m%dT%H%M%S")
            report, images = build_report(spark, warehouse, wiki, run_id, summary, outputs, topic_counts)
            summary["report"] = dict(zip(("json", "html"), write_report(report_dir, report, images), strict=True))
            obj.say(f"linkrec: report {summary['report']['html']}")
        summary["pruned_runs"] = len(prune_runs(warehouse, wiki, config.recommend.keep_runs, outputs))
        obj.say(_where_line(obj, config, db, search_url, tags, outputs, dry_run))
    finally:
        for sink in (database, tags):
            if sink is not None:
                sink.finish()
    return summary


def _where_line(obj: Invocation, config: Config, db, search_url, tags, outputs: list[str], dry_run: bool) -> str:
    """The last line of a recommend run: where its rows and tags are, and how to look at them."""
    from sinks.base import redact
    from sinks.search import EventTags
    from sinks.table import RECOMMENDATIONS

    if dry_run:
        return f"linkrec: dry run, nothing written; the computed rows are in {outputs[-1] if outputs else '-'}"
    url = db or _default_db(obj, config)
    if url.startswith("sqlite:///"):
        where = (f"rows in {url[len('sqlite:///'):]} (look: sqlite3 {url[len('sqlite:///'):]} "
                 f"'SELECT gelr_page, gelr_revision, length(gelr_data) FROM {RECOMMENDATIONS} LIMIT 10')")
    else:
        where = f"rows in {redact(url)}, table {RECOMMENDATIONS}"
    if isinstance(tags, EventTags):
        where += f"; tag events in {tags.path}"
    elif search_url:
        where += (f"; tags in {config.sinks.search_index.format(wiki=config.wiki)} (look: linkrec search --wiki "
                  f"{config.wiki} --search-url {redact(search_url)} hasrecommendation:link)")
    return f"linkrec: {where}"


@main.command("recommend")
@click.option("--wiki", required=True, help="Wiki database name, e.g. enwiki.")
@with_options(recommend_options)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout.")
@click.pass_obj
def recommend_command(obj: Invocation, wiki, as_json, **options):
    """Compute link recommendations for the selected pages (default: the configured targeting) and write them."""
    from pipeline.model.train import ModelError

    try:
        config = obj.config(wiki)
        with obj.locked(wiki):
            summary = _recommend(obj, config, **options)
    except WarehouseBusy as exc:
        fail(str(exc), EXIT_INCOMPLETE)
    except (ConfigError, ModelError, MassDeleteRefused, SinkUnusable) as exc:
        fail(str(exc))
    except SinkError as exc:
        sink_failed(exc, as_json)
    if as_json:
        emit_json(summary)


def _article_ids_after(obj: Invocation, config: Config):
    """(cursor, limit) → the first `limit` article ids above `cursor`, asked of Spark (only they reach the driver)."""
    from pyspark.sql import functions as F

    from pipeline.ingest.derived import is_article
    from pipeline.model.train import current_snapshot

    warehouse = obj.warehouse(config)
    pages = warehouse.read("pages", config.wiki, current_snapshot(warehouse, config.wiki))
    ids = pages.where(is_article()).select("page_id")
    return lambda cursor, limit: [r.page_id for r in ids.where(F.col("page_id") > cursor).orderBy("page_id")
                                  .limit(limit).collect()]


def _articles(obj: Invocation, config: Config):
    """(page id, title, namespace, latest revision) of every main-namespace article of the current snapshot."""
    from pipeline.ingest.derived import is_article
    from pipeline.model.train import current_snapshot

    warehouse = obj.warehouse(config)
    pages = warehouse.read("pages", config.wiki, current_snapshot(warehouse, config.wiki))
    rows = pages.where(is_article()).select(
        "page_id", "title", "namespace", "revision_id").orderBy("page_id")
    return [(r.page_id, r.title, r.namespace, r.revision_id) for r in rows.toLocalIterator()]


@main.group("index")
def index_group():
    """A development search index (<wiki>_content) on an Elasticsearch-compatible server."""


@index_group.command("init")
@click.option("--wiki", required=True, help="An ingested wiki: one document per main-namespace article.")
@click.option("--search-url", required=True, help="Elasticsearch-compatible server, e.g. http://127.0.0.1:9200.")
@click.option("--topics", type=click.Path(dir_okay=False, exists=True),
              help="Topic table (JSON title → topic, or Parquet title, topic[, probability]) → articletopic tags.")
@click.option("--recreate", is_flag=True, help="Drop the index first if it exists (its tags are lost).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout.")
@click.pass_obj
def index_init(obj: Invocation, wiki, search_url, topics, recreate, as_json):
    """Create <wiki>_content with id = page id, title, namespace and weighted_tags (topic tags)."""
    from pipeline.model.train import ModelError
    from sinks import index as search_index
    from sinks.search import client_for, search_errors

    try:
        config = obj.config(wiki)
        name = config.sinks.search_index.format(wiki=wiki)
        table = search_index.load_topic_table(topics) if topics else {}
        client = client_for(search_url, config.sinks.timeout_seconds)
        with search_errors(search_url, name):
            client.info()  # a search server answers before the articles are read
        articles = _articles(obj, config)
        documents = [(page_id, title, namespace, search_index.topic_tags(table.get(title, {})))
                     for page_id, title, namespace, _ in articles]
        with search_errors(search_url, name):
            search_index.create_index(client, name, recreate)
            indexed = search_index.index_documents(client, name, documents, config.sinks.bulk_size)
    except (ConfigError, ModelError, SinkError) as exc:
        fail(str(exc))
    with_topics = sum(1 for document in documents if document[3])
    obj.say(f"linkrec: {name}: {indexed} articles indexed, {with_topics} with topic tags")
    if as_json:
        emit_json({"wiki": wiki, "index": name, "documents": indexed, "with_topics": with_topics})


@main.command("search")
@click.argument("query")
@click.option("--wiki", required=True, help="Wiki database name: searches <wiki>_content.")
@click.option("--search-url", required=True, help="Elasticsearch-compatible server URL.")
@click.option("--limit", default=100, show_default=True, help="At most this many hits.")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON on the last line of stdout.")
@click.pass_obj
def search_command(obj: Invocation, query, wiki, search_url, limit, as_json):
    """Run a CirrusSearch-style query: hasrecommendation:link, -hasrecommendation:link,
    articletopic:<topic>[|<topic>…], combined with spaces (AND). Prints page id and title per hit.
    A query that starts with "-" goes after "--": linkrec search --wiki W --search-url URL -- -hasrecommendation:link"""
    from sinks import index as search_index
    from sinks.search import client_for, search_errors

    try:
        config = obj.config(wiki)
        keywords, _, _ = search_index.topic_vocabulary()
        body = search_index.parse_query(query, keywords)
        client = client_for(search_url, config.sinks.timeout_seconds)
        name = config.sinks.search_index.format(wiki=wiki)
        with search_errors(search_url, name):
            total = search_index.count(client, name, body)
            hits = search_index.search(client, name, body, limit)
    except search_index.QueryError as exc:
        fail(str(exc), 2)
    except (ConfigError, SinkError) as exc:
        fail(str(exc))
    if as_json:
        emit_json({"query": query, "total": total, "hits": [{"page_id": p, "title": t} for p, t in hits]})
        return
    for page_id, title in hits:
        click.echo(f"{page_id}\t{title}")
    obj.say(f"linkrec: {total} hits, {len(hits)} shown")


@main.command("reconcile")
@click.option("--wiki", required=True, help="Wiki database name.")
@click.option("--db", help="sqlite:///path or mysql://… [default: sqlite:///<warehouse>/linkrec.db].")
@click.option("--search-url", required=True, help="Elasticsearch-compatible server URL.")
@click.option("--search-mode", type=click.Choice(["cirrus", "painless"]), help="How --fix updates tags.")
@click.option("--fix", is_flag=True, help="Repair: delete stale rows, set missing tags, clear stray tags.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout.")
@click.pass_obj
def reconcile_command(obj: Invocation, wiki, db, search_url, search_mode, fix, as_json):
    """Check "tagged in search ⇔ a non-NULL row for the latest revision" and print the differences.
    Latest revisions come from the wiki's current snapshot when it is ingested, else from the rows."""
    from sinks import index as search_index
    from sinks.reconcile import reconcile
    from sinks.search import search_errors

    try:
        config = obj.config(wiki)
        # latest revisions from the current snapshot when the wiki is ingested
        articles = _articles(obj, config) if obj.warehouse(config).manifest(wiki) else None
        database, tags = _open_sinks(obj, config, _now(None), db, search_url, search_mode, None)
        try:
            latest = None if articles is None else {page_id: revision for page_id, _, _, revision in articles}
            titles = {page_id: title for page_id, title, _, _ in articles or []}
            with search_errors(search_url, tags.index):
                tagged = search_index.tagged_pages(tags.client, tags.index)
            differences = reconcile(database, tags, tagged, latest, fix, titles)
        finally:
            database.finish()
            tags.finish()
    except (ConfigError, SinkError) as exc:
        fail(str(exc))
    summary = {"wiki": wiki, **differences.summary()}
    for kind in ("tag_without_task", "task_without_tag", "stale_rows"):
        if summary[kind]:
            obj.say(f"  {kind}: {summary[kind]} (e.g. {summary['examples'][kind]})")
    obj.say(f"linkrec: {differences.total} differences" + (f"; repaired: {differences.repaired}" if fix else ""))
    if as_json:
        emit_json(summary)
    sys.exit(EXIT_FAILED if differences.total and not fix else 0)


@main.group("bench")
def bench_group():
    """Benchmarks that print figures (not tests)."""


@bench_group.command("speed")
@click.option("--wiki", required=True, help="A wiki with an ingested snapshot and a trained model.")
@click.option("--model", "model_name", help="Model name [default: the wiki's own].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout.")
@click.pass_obj
def bench_speed(obj: Invocation, wiki, model_name, as_json):
    """Articles per second per core: mwparserfromhell.parse alone, the engine, the Spark recommend job."""
    from pipeline.bench import speed
    from pipeline.model.train import ModelError

    try:
        config = obj.config(wiki)
        result = speed(obj.spark(config), obj.warehouse(config), config, _now(None), model_name)
    except (ConfigError, ModelError) as exc:
        fail(str(exc))
    click.echo(f"{wiki}: {result['articles']} articles; parse only {result['parse_articles_per_s']}/s, "
               f"engine {result['engine_articles_per_s']}/s, Spark job {result['spark_articles_per_s']}/s per core "
               f"({result['cores']} cores)", err=as_json)
    if as_json:
        emit_json(result)


if __name__ == "__main__":
    main()
