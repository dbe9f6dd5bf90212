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

EXIT_FAILED = 1
EXIT_INCOMPLETE = 3


class Context:
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

    def say(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)


def fail(message: str, code: int = EXIT_FAILED):
    click.echo(f"linkrec: error: {message}", err=True)
    sys.exit(code)


def emit_json(summary: dict) -> None:
    click.echo(json.dumps(summary, ensure_ascii=False, sort_keys=True, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj = Context(warehouse, config_files, overrides, quiet)


@main.group("config")
def config_group():
    """Inspect the configuration."""


@config_group.command("show")
@click.option("--wiki", required=True, help="Wiki database name, e.g. enwiki.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@click.pass_obj
def config_show(obj: Context, wiki, as_json):
    """Print the effective configuration of a wiki and the files it came from."""
    try:
        config = obj.config(wiki)
    except ConfigError as exc:
        fail(str(exc))
    if as_json:
        emit_json({"wiki": config.wiki, "sources": list(config.sources), **config.to_dict()})
    else:
        click.echo(config.to_toml(), nl=False)


def _report_problems(obj: Context, problems: list[dict]) -> None:
    shown = problems[:50]
    for problem in shown:
        page = ""
        if problem.get("title") is not None or problem.get("page_id") is not None:
            page = f" page {problem.get('title')!r} (id {problem.get('page_id')})"
        click.echo(f"linkrec: {problem['kind']}: {problem['file']}: {problem['where']}:{page} "
                   f"{problem['reason']}", err=True)
    if len(problems) > len(shown):
        click.echo(f"linkrec: … and {len(problems) - len(shown)} more problems", err=True)


def _ingest(obj: Context, wiki, dump, table, index, siteinfo, snapshot, allow_truncated):
    from pipeline.ingest import job

    flags = {"ingest": {"allow_truncated": True}} if allow_truncated else None
    config = obj.config(wiki, flags)
    spark = obj.spark(config)
    warehouse = obj.warehouse(config)
    obj.say(f"linkrec: ingesting {dump or table} into {warehouse.root} …")
    if dump:
        result = job.ingest_dump(spark, warehouse, config, dump, index, snapshot)
    else:
        result = job.ingest_table(spark, warehouse, config, table, siteinfo, snapshot)
    _report_problems(obj, result.problems)
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
    if not result.problems:
        return 0
    only_truncation = all(p["kind"] == "truncated" for p in result.problems)
    if only_truncation and config.ingest.allow_truncated:
        return 0
    return EXIT_INCOMPLETE


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
def ingest(obj: Context, wiki, dump, table, siteinfo, index, snapshot, allow_truncated, as_json):
    """Read a dump or a page table into the pages, titles and links tables."""
    if bool(dump) == bool(table):
        fail("give exactly one of --dump PATH or --table PATH", 2)
    try:
        config, result = _ingest(obj, wiki, dump, table, index, siteinfo, snapshot, allow_truncated)
    except (ConfigError, DumpError) as exc:
        fail(str(exc))
    for line in _ingest_lines(result):
        obj.say(line)
    if as_json:
        emit_json(result.summary())
    sys.exit(_incomplete_exit(config, result))


recommend_options = [
    click.option("--pages", help="Page-id range A-B."),
    click.option("--page-ids", help="Comma-separated page ids."),
    click.option("--titles-file", type=click.Path(dir_okay=False), help="A file with one title per line."),
    click.option("--db", help="sqlite:///path [default: <warehouse>/linkrec.db]."),
    click.option("--now", help="Reference time for minimumTimeSinceLastEdit, ISO 8601 [default: now]."),
    click.option("--model", "model_name", help="Model name [default: the wiki's own]."),
    click.option("--ignore-gate", is_flag=True, help="Use the model even if it is not released."),
    click.option("--force", is_flag=True, help="Rebuild tables and models even when up to date, and rewrite "
                                               "rows even when unchanged."),
    click.option("--dry-run", is_flag=True, help="Compute everything, write nothing to the database."),
    click.option("--lookups", "lookups_path", type=click.Choice(["broadcast", "join"]), default="broadcast",
                 show_default=True, help="How the dictionary, link graph and titles reach the tasks: broadcast "
                                         "(small wikis) or joins (when they would not fit an executor)."),
]


@main.command()
@with_options(dump_options[:1])
@click.option("--dump", type=click.Path(dir_okay=False), required=True,
              help="MediaWiki XML dump (.bz2, .xz, .gz or plain).")
@with_options(dump_options[1:-1])
@with_options(recommend_options)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout.")
@click.pass_obj
def run(obj: Context, wiki, dump, index, snapshot, allow_truncated, pages, page_ids, titles_file, db, now, model_name,
        ignore_gate, force, dry_run, lookups_path, as_json):
    """The main job for one wiki: ingest → train → backtest and gate → recommend → database.
    Up-to-date tables and models are reused (--force rebuilds them)."""
    from pipeline.ingest.job import _file_identity
    from pipeline.model import train as model_train

    started = time.time()
    stages: dict[str, float] = {}
    summary: dict = {"wiki": wiki}
    try:
        flags = {"ingest": {"allow_truncated": True}} if allow_truncated else None
        config = obj.config(wiki, flags)
        warehouse = obj.warehouse(config)
        manifest = warehouse.manifest(wiki) or {}
        current = manifest.get("snapshots", {}).get(manifest.get("current_snapshot", ""), {})
        source = current.get("source", {})
        identity = {"path": os.path.abspath(dump), **_file_identity(dump)}
        reuse = (not force and source.get("path") == identity["path"] and source.get("bytes") == identity.get("bytes")
                 and source.get("mtime") == identity.get("mtime") and (snapshot is None or snapshot ==
                                                                        manifest.get("current_snapshot")))
        if reuse:
            obj.say(f"linkrec: {dump} is already ingested (snapshot {manifest['current_snapshot']}); reusing it")
            summary["ingest"] = {"reused": True, "snapshot": manifest["current_snapshot"],
                                 "problems": current.get("problems", 0)}
            incomplete = bool(current.get("problems")) and not (current.get("truncated") and allow_truncated)
        else:
            config, result = _ingest(obj, wiki, dump, None, index, None, snapshot, allow_truncated)
            for line in _ingest_lines(result):
                obj.say(line)
            summary["ingest"] = result.summary()
            incomplete = _incomplete_exit(config, result) != 0
        stages["ingest"] = round(time.time() - started, 2)
        if incomplete:
            obj.say("linkrec: stopping after ingestion: the input is incomplete (see above); "
                    "--allow-truncated continues with the complete pages")
            summary["seconds_per_stage"] = stages
            if as_json:
                emit_json(summary)
            sys.exit(EXIT_INCOMPLETE)
        mark = time.time()
        if model_name is None:
            record = None if force else model_train.up_to_date_model(warehouse, config)
            if record is not None:
                obj.say(f"linkrec: model {wiki} {record['version']} is up to date; reusing it ({record['reason']})")
                summary["train"] = {"reused": True, "version": record["version"], "released": record["released"]}
            else:
                trained = model_train.train(obj.spark(config), warehouse, config, force=force)
                obj.say(f"linkrec: model {trained.name} {trained.version}: {trained.reason}")
                summary["train"] = {"reused": False, **trained.summary()}
        stages["train"] = round(time.time() - mark, 2)
        mark = time.time()
        summary["recommend"] = _recommend(obj, config, pages, page_ids, titles_file, db, now, model_name,
                                          ignore_gate, force, dry_run, lookups_path)
        stages["recommend"] = round(time.time() - mark, 2)
    except (ConfigError, DumpError, model_train.ModelError) as exc:
        fail(str(exc))
    summary["seconds_per_stage"] = stages
    summary["seconds"] = round(time.time() - started, 2)
    if as_json:
        emit_json(summary)


@main.command("train")
@click.option("--wiki", help="Train the model of one wiki (its tables must be ingested).")
@click.option("--wikis", help="With --name: a joint model for these wikis, comma-separated.")
@click.option("--name", help="Name of a joint model.")
@click.option("--wikidata", type=click.Path(), help="page_id → P31 QIDs (Parquet page_id,qid or TSV).")
@click.option("--force", is_flag=True, help="Rebuild every table even when up to date.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout.")
@click.pass_obj
def train_command(obj: Context, wiki, wikis, name, wikidata, force, as_json):
    """Build the dictionaries, train, backtest under both protocols and apply the release gate."""
    from pipeline.model import train as model_train

    if bool(wiki) == bool(wikis):
        fail("give --wiki W, or --wikis a,b,c with --name NAME", 2)
    if wikis and not name:
        fail("--wikis needs --name for the joint model", 2)
    try:
        if wiki:
            config = obj.config(wiki)
            result = model_train.train(obj.spark(config), obj.warehouse(config), config, wikidata, force)
        else:
            from pipeline.model import joint
            configs = [obj.config(w.strip()) for w in wikis.split(",") if w.strip()]
            result = joint.train_joint(obj.spark(configs[0]), obj.warehouse(configs[0]), configs, name, force)
    except (ConfigError, model_train.ModelError, ValueError) as exc:
        fail(str(exc))
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
def evaluate_command(obj: Context, wiki, model_name, as_json):
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


def _default_db(obj: Context, config: Config) -> str:
    from pipeline.warehouse import resolve_root

    root = resolve_root(obj.warehouse_option)
    if "://" in root:
        fail("--db is required when the warehouse is not a local folder", 2)
    return f"sqlite:///{root}/linkrec.db"


def _open_sink(db: str):
    if db.startswith("sqlite:///"):
        from sinks.sqlite import SqliteSink
        return SqliteSink(db)
    fail(f"--db {db!r}: expected sqlite:///path (MariaDB comes with the sinks issue)", 2)


def _write_rows(spark, sink, output: str, force: bool) -> dict:
    from pipeline.recommend import eligibility as rules
    from sinks.base import PageResult, SinkCounts

    totals = SinkCounts()
    batch: list = []

    def flush():
        counts = sink.write(batch, force)
        for key in totals.__dict__:
            setattr(totals, key, getattr(totals, key) + getattr(counts, key))
        batch.clear()

    for row in spark.read.parquet(output).orderBy("page_id").toLocalIterator():
        if row.reason in (rules.NOT_MAIN_NAMESPACE, rules.HAS_SUBMISSION):
            continue
        if row.reason == rules.OK:
            result = PageResult(row.page_id, row.revision_id, row.gelr_data.encode("utf-8"))
        elif row.reason == rules.TOO_FEW_LINKS:
            result = PageResult(row.page_id, row.revision_id, None)
        else:
            result = PageResult(row.page_id, row.revision_id, None, remove=True)
        batch.append(result)
        if len(batch) >= 500:
            flush()
    if batch:
        flush()
    return dict(totals.__dict__)




def _recommend(obj: Context, config: Config, pages, page_ids, titles_file, db, now, model_name, ignore_gate, force,
               dry_run, lookups_path="broadcast") -> dict:
    from pipeline.recommend.job import recommend

    selection = _selection(pages, page_ids, titles_file)
    moment = _now(now)
    sink = None if dry_run else _open_sink(db or _default_db(obj, config))
    submitted, rejected = sink.submissions() if sink is not None else (set(), {})
    spark = obj.spark(config)
    warehouse = obj.warehouse(config)
    obj.say(f"linkrec: recommending for {config.wiki} …")
    result = recommend(spark, warehouse, config, selection, moment, model_name, ignore_gate, submitted, rejected,
                       lookups_path)
    summary = result.summary()
    if sink is not None:
        summary["database"] = _write_rows(spark, sink, result.output, force)
        sink.finish()
    summary["dry_run"] = dry_run
    obj.say(f"  {summary['pages_read']} pages, {summary['eligible']} eligible, {summary['with_links']} with links "
            f"({summary['links']} links), {summary['null_rows']} NULL rows; skipped {summary['skipped']}")
    if "database" in summary:
        obj.say(f"  database: {summary['database']}")
    return summary


@main.command("recommend")
@click.option("--wiki", required=True, help="Wiki database name, e.g. enwiki.")
@with_options(recommend_options)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout.")
@click.pass_obj
def recommend_command(obj: Context, wiki, pages, page_ids, titles_file, db, now, model_name, ignore_gate, force,
                      dry_run, lookups_path, as_json):
    """Compute link recommendations for the selected pages (default: all) and write them."""
    from pipeline.model.train import ModelError

    try:
        config = obj.config(wiki)
        summary = _recommend(obj, config, pages, page_ids, titles_file, db, now, model_name, ignore_gate, force,
                             dry_run, lookups_path)
    except (ConfigError, ModelError) as exc:
        fail(str(exc))
    if as_json:
        emit_json(summary)


@main.group("bench")
def bench_group():
    """Benchmarks that print figures (not tests)."""


@bench_group.command("speed")
@click.option("--wiki", required=True, help="A wiki with an ingested snapshot and a trained model.")
@click.option("--model", "model_name", help="Model name [default: the wiki's own].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line of stdout.")
@click.pass_obj
def bench_speed(obj: Context, wiki, model_name, as_json):
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
