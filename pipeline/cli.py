"""The `linkrec` command line."""

from __future__ import annotations

import json
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


@main.command()
@with_options(dump_options[:1])
@click.option("--dump", type=click.Path(dir_okay=False), required=True,
              help="MediaWiki XML dump (.bz2, .xz, .gz or plain).")
@with_options(dump_options[1:])
@click.pass_obj
def run(obj: Context, wiki, dump, index, snapshot, allow_truncated, as_json):
    """The main job for one wiki: ingest, then every later stage that exists."""
    started = time.time()
    stages = {}
    try:
        config, result = _ingest(obj, wiki, dump, None, index, None, snapshot, allow_truncated)
    except (ConfigError, DumpError) as exc:
        fail(str(exc))
    stages["ingest"] = result.seconds
    for line in _ingest_lines(result):
        obj.say(line)
    summary = {"wiki": wiki, "snapshot": result.snapshot, "ingest": result.summary(),
               "seconds_per_stage": stages, "seconds": round(time.time() - started, 2)}
    if as_json:
        emit_json(summary)
    sys.exit(_incomplete_exit(config, result))


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


if __name__ == "__main__":
    main()
