"""The `linkrec` command line: parses options, calls a job of `pipeline.jobs`, prints, and turns errors
into one line and an exit code (0 done, 1 unusable input or configuration, 2 usage, 3 incomplete)."""

from __future__ import annotations

import functools
import json
import sys

import click

from pipeline import __version__, errors, jobs
from pipeline.options import (
    dump_options,
    json_option,
    orphan_options,
    recommend_options,
    sink_options,
    task_option,
    wiki_option,
    with_options,
)


def fail(message: str, code: int = errors.EXIT_FAILED):
    click.echo(f"linkrec: error: {message}", err=True)
    sys.exit(code)


def emit_json(summary: dict) -> None:
    click.echo(json.dumps(summary, ensure_ascii=False, sort_keys=True, default=str))


def reworded(**helps):
    """Another help text for shared options in one command (the tag its task writes)."""
    def wrap(func):
        for param in getattr(func, "__click_params__", ()):
            if param.name in helps:
                param.help = helps[param.name]
        return func
    return wrap


SEARCH_URL = "Elasticsearch / OpenSearch / CirrusSearch URL: set or clear the {tag} tag of every page written."
BOTH_TAGS = "recommendation.link/exists (and recommendation.orphan_link/exists when orphans.enabled)"


class Linkrec(click.Group):
    """The `linkrec` group: a usage error is one line on stderr like every other error (exit 2)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:  # a group alone: its help
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            hint = f"; try `{exc.ctx.command_path} --help`" if exc.ctx is not None else ""
            fail(exc.format_message().rstrip(".") + hint, exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)  # an int: the code of --help, --version


def reported(command):
    """Known failures end in one line and their exit code; a sink that stopped a run still prints the
    `--json` summary of what was written."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - sorted by exit_code; anything else is a bug and raised
            code = errors.exit_code(exc)
            if code is None:
                raise
            if code == errors.EXIT_INCOMPLETE and kwargs.get("as_json"):
                emit_json({**getattr(exc, "summary", {}), "error": str(exc), "exit_code": code})
            fail(errors.describe(exc, code), code)
    return wrapper


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
    ctx.obj = jobs.Runtime(warehouse, config_files, overrides, quiet)


@main.group("config")
def config_group():
    """Inspect the configuration."""


@config_group.command("show")
@wiki_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@click.pass_obj
@reported
def config_show(rt: jobs.Runtime, wiki, as_json):
    """Print the effective configuration of a wiki and the files it came from."""
    from pipeline.siteconfig import INFERABLE

    config = rt.config(wiki)
    origins = {key: {"from": config.origin(key), "source": config.origins.get(key, "configs/default.toml"),
                     **({"note": config.notes[key]} if key in config.notes else {})} for key in INFERABLE}
    warning = rt.english_defaults(config)
    if warning:
        click.echo(f"linkrec: warning: {warning}", err=True)
    if as_json:
        emit_json({"wiki": config.wiki, "sources": list(config.sources), "origins": origins,
                   **({"warning": warning} if warning else {}), **config.to_dict()})
    else:
        lines = [f"# {key}: {o['from']} ({o['source']}"
                 + (f"; {'the dump says: ' if o['from'] != 'inferred' else ''}{o['note']}" if "note" in o else "")
                 + ")" for key, o in origins.items()]
        click.echo(config.to_toml() + "\n# where the values a wiki's own data decides came from:\n"
                   + "\n".join(lines) + "\n", nl=False)


@main.command()
@wiki_option
@click.option("--dump", type=click.Path(dir_okay=False), help="MediaWiki XML dump (.bz2, .xz, .gz or plain).")
@click.option("--table", type=click.Path(), help="Parquet table with one row per page instead of a dump.")
@click.option("--siteinfo", type=click.Path(dir_okay=False),
              help="With --table: siteinfo JSON (ours, or the MediaWiki API's meta=siteinfo answer).")
@with_options(dump_options)
@json_option
@click.pass_obj
@reported
def ingest(rt: jobs.Runtime, wiki, dump, table, siteinfo, index, snapshot, allow_truncated, as_json):
    """Read a dump or a page table into the pages, titles and links tables."""
    if bool(dump) == bool(table):
        raise jobs.UsageError("give exactly one of --dump PATH or --table PATH")
    with rt.locked(wiki):
        config, result = jobs.ingest(rt, wiki, dump, table, index, siteinfo, snapshot, allow_truncated)
    if as_json:
        emit_json(result.summary())
    sys.exit(jobs.ingest_exit(config, result))


@main.command()
@wiki_option
@click.option("--dump", type=click.Path(dir_okay=False), required=True,
              help="MediaWiki XML dump (.bz2, .xz, .gz or plain).")
@with_options(dump_options)
@reworded(search_url=SEARCH_URL.format(tag=BOTH_TAGS))
@with_options(recommend_options)
@json_option
@click.pass_obj
@reported
def run(rt: jobs.Runtime, wiki, dump, index, snapshot, allow_truncated, as_json, **options):
    """The main job for one wiki: ingest → train → backtest and gate → recommend → database and search
    index. Up-to-date tables and models are reused (--force rebuilds them)."""
    with rt.locked(wiki):
        summary, code = jobs.run_wiki(rt, wiki, dump=dump, index=index, snapshot=snapshot,
                                      allow_truncated=allow_truncated, **options)
    if as_json:
        emit_json(summary)
    sys.exit(code)


@main.command("nightly")
@click.option("--wikis", required=True, help="Comma-separated wiki database names.")
@click.option("--dump-dir", type=click.Path(file_okay=False), help="Folder of dumps: each wiki's newest <wiki>-* file.")
@click.option("--tables", type=click.Path(file_okay=False),
              help="Folder of page tables: PATH/wiki=<wiki>, with PATH/<wiki>-siteinfo.json when there is one.")
@reworded(search_url=SEARCH_URL.format(tag=BOTH_TAGS))
@with_options(sink_options)
@click.option("--events", type=click.Path(), help="Folder for the page_weighted_tags_change event files.")
@click.option("--report-dir", type=click.Path(file_okay=False), help="Write each wiki's run report here.")
@click.option("--ignore-gate", is_flag=True, help="Use models that did not pass the release gate.")
@click.option("--allow-truncated", is_flag=True, help="Truncated dumps are used (their complete pages).")
@click.option("--force", is_flag=True, help="Re-ingest, retrain and rewrite even when up to date.")
@click.option("--allow-mass-delete", is_flag=True, help="See `recommend`.")
@click.option("--now", help="Reference time, ISO 8601 [default: now]; its day names the run for resuming.")
@click.option("--embeddings", is_flag=True,
              help="Also rebuild each wiki's link-based embeddings when its input snapshot changed, and publish "
                   "them to embeddings.publish_to when set.")
@json_option
@click.pass_obj
@reported
def nightly(rt: jobs.Runtime, wikis, dump_dir, tables, as_json, **options):
    """Per wiki: ingest when the input is newer, retrain when data or config changed, gate, select pages
    with the configured targeting, recommend, write the sinks and the report. One wiki failing does not
    stop the others (exit 1 names them); exit 3 when editors accept a wiki's newest model below
    feedback.minimum_acceptance or clearly less than the model it replaced. A re-run on the same day skips the
    wikis already done."""
    if bool(dump_dir) == bool(tables):
        raise jobs.UsageError("give exactly one of --dump-dir DIR or --tables PATH")
    names = [w.strip() for w in wikis.split(",") if w.strip()]
    if not names:
        raise jobs.UsageError(f"--wikis {wikis!r}: no wiki named (expected e.g. enwiki,frwiki)")
    outcome = jobs.nightly(rt, names, dump_dir, tables, **options)
    if as_json:
        emit_json(outcome)
    sys.exit(errors.EXIT_FAILED if outcome["failed"] else errors.EXIT_INCOMPLETE if outcome["feedback_flagged"] else 0)


@main.command("train")
@click.option("--wiki", help="Train the model of one wiki (its tables must be ingested).")
@click.option("--wikis", help="With --name: a joint model for these wikis, comma-separated.")
@click.option("--name", help="Name of a joint model.")
@click.option("--wikidata", type=click.Path(),
              help="page_id → P31 QIDs (Parquet page_id,qid or TSV); recorded, and reused by every later command "
                   "until another is given ('none' stops using it).")
@click.option("--force", is_flag=True, help="Rebuild every table even when up to date.")
@click.option("--db", help="Learn from the editors' decisions on the links served into this database [default: the "
                           "wiki's own; read by `linkrec feedback` or a writing run].")
@task_option
@json_option
@click.pass_obj
@reported
def train_command(rt: jobs.Runtime, wiki, wikis, name, wikidata, force, db, task, as_json):
    """Build the dictionaries, train, backtest under both protocols and apply the release gate.
    --task orphan_link: the orphan-link model, trained and backtested on simulated orphans."""
    if bool(wiki) == bool(wikis) or (wikis and not name):
        raise jobs.UsageError("give --wiki W, or --wikis a,b,c with --name NAME")
    if task == "orphan_link":
        if wiki:
            with rt.locked(wiki):
                summary = jobs.train_orphans(rt, rt.config(wiki), force)
        else:
            from pipeline.orphans import model as orphan_model
            configs = [rt.config(w.strip()) for w in wikis.split(",") if w.strip()]
            summary = orphan_model.train_joint(rt.spark(configs[0]), rt.warehouse(configs[0]), configs, name, force)
            for joined, released in summary["released_for"].items():
                rt.say(f"  {joined}: {summary['reasons'][joined]}" + ("" if released else " (not released)"))
        if as_json:
            emit_json(summary)
        return
    if wiki:
        with rt.locked(wiki):
            result = jobs.train(rt, rt.config(wiki), wikidata, force, db)
    else:
        from pipeline.model import joint
        configs = [rt.config(w.strip()) for w in wikis.split(",") if w.strip()]
        result = joint.train_joint(rt.spark(configs[0]), rt.warehouse(configs[0]), configs, name, force)
    rt.say(f"linkrec: model {result.name} {result.version} at {result.path}\nlinkrec: {result.reason}")
    for protocol, curve in result.curves.items():
        point = next(p for p in curve if p["threshold"] == 0.5)
        rt.say(f"  {protocol}: {point['n_sentences']} test sentences, precision {point['precision']:.3f}, "
               f"recall {point['recall']:.3f} at 0.5")
    if as_json:
        emit_json(result.summary())


@main.command("evaluate")
@click.option("--wiki", required=True, help="Backtest on this wiki's own test sentences and dictionaries.")
@click.option("--model", "model_name", help="Model name (a wiki or a joint model) [default: the wiki's own].")
@task_option
@json_option
@click.pass_obj
@reported
def evaluate_command(rt: jobs.Runtime, wiki, model_name, task, as_json):
    """Micro precision and recall at thresholds 0.0 … 0.9 under the reference and leakage-free protocols
    (--task orphan_link: of the orphan model, on simulated orphans)."""
    from pipeline.model.evaluation import evaluate
    from pipeline.warehouse import current_snapshot

    config = rt.config(wiki)
    current_snapshot(rt.warehouse(config), wiki)  # a wiki never ingested: said before Spark starts
    if task == "orphan_link":
        from pipeline.orphans import model as orphan_model
        result = orphan_model.evaluate(rt.spark(config), rt.warehouse(config), config, model_name)
    else:
        result = evaluate(rt.spark(config), rt.warehouse(config), config, model_name)
    for protocol, curve in result["protocols"].items():
        rt.say(f"{protocol}:")
        for point in curve:
            size = f"{point['n_sentences']} sentences" if "n_sentences" in point else f"{point['n_links']} links"
            rt.say(f"  {point['threshold']:.1f}  precision {point['precision']:.3f}  recall {point['recall']:.3f}"
                   f"  ({size})")
    if as_json:
        emit_json(result)


@main.command("recommend")
@wiki_option
@with_options(recommend_options)
@json_option
@click.pass_obj
@reported
def recommend_command(rt: jobs.Runtime, wiki, as_json, **options):
    """Compute link recommendations for the selected pages (default: the configured targeting) and write them."""
    with rt.locked(wiki):
        summary = jobs.recommend(rt, rt.config(wiki), **options)
    if as_json:
        emit_json(summary)


@main.command("orphans")
@wiki_option
@reworded(search_url=SEARCH_URL.format(tag="recommendation.orphan_link/exists"))
@with_options(orphan_options)
@json_option
@click.pass_obj
@reported
def orphans_command(rt: jobs.Runtime, wiki, as_json, **options):
    """Links to orphan articles: for the selected eligible articles (default: all) their best links to
    articles no other article links to, written to the orphan task's table and its
    recommendation.orphan_link/exists tag (hasrecommendation:orphan_link)."""
    with rt.locked(wiki):
        summary = jobs.orphans(rt, rt.config(wiki), **options)
    if as_json:
        emit_json(summary)


@main.command("feedback")
@wiki_option
@click.option("--db", help="The wiki's database (sqlite:///path or mysql://…) holding GrowthExperiments' "
                           "submissions table [default: the warehouse's <wiki>.db].")
@click.option("--events", type=click.Path(), help="JSON lines of the link_suggestion_interaction stream: "
                                                  "revision_id, link_target, rejection_reason.")
@click.option("--since", help="Only links served at or after this time (ISO 8601).")
@task_option
@json_option
@click.pass_obj
@reported
def feedback_command(rt: jobs.Runtime, wiki, db, events, since, task, as_json):
    """What editors did with the served links: accepted, rejected and skipped per model version, score band
    and rejection reason; the score's calibration; reviewed links this project never wrote, apart. Exit 3
    when the newest model version's acceptance is below feedback.minimum_acceptance."""
    summary, shown = jobs.feedback(rt, rt.config(wiki), db, events, since, task)
    for line in shown:
        print(f"linkrec: warning: {line}", file=sys.stderr)
    if summary["bad_rows"] > len(shown):
        print(f"linkrec: warning: … {summary['bad_rows'] - len(shown)} more bad submission rows", file=sys.stderr)
    if as_json:
        emit_json(summary)
    else:
        click.echo(feedback_table(summary))
    newest = summary["newest_version"]
    if newest["below_floor"]:
        fail(f"acceptance of model version {newest['version']} is {newest['acceptance']} over "
             f"{newest['decisions']} decisions, below feedback.minimum_acceptance {newest['minimum_acceptance']}",
             errors.EXIT_INCOMPLETE)


def feedback_table(summary: dict) -> str:
    def rate(counts):
        return "-" if counts.get("acceptance") is None else f"{counts['acceptance']:.2f}"
    lines = [f"{summary['wiki']} {summary['task']}: {summary['reviewed']} reviewed (accepted {summary['accepted']}, "
             f"rejected {summary['rejected']}, skipped {summary['skipped']}); {summary['not_ours']} not ours, "
             f"{summary['bad_rows']} bad rows", "version\taccepted\trejected\tskipped\tacceptance"]
    lines += [f"{v}\t{c['accepted']}\t{c['rejected']}\t{c['skipped']}\t{rate(c)}"
              for v, c in summary["by_version"].items()]
    lines.append("score\taccepted\trejected\tskipped\tacceptance")
    lines += [f"{b['from']:.1f}-{b['to']:.1f}\t{b['accepted']}\t{b['rejected']}\t{b['skipped']}\t{rate(b)}"
              for b in summary["by_band"]]
    lines += [f"rejected as {reason}: {n}" for reason, n in summary.get("by_reason", {}).items()]
    target = summary["threshold_for_acceptance"]
    lines.append(f"acceptance {target['target']} from score {target['threshold']}" if target["threshold"] is not None
                 else f"no score threshold reaches acceptance {target['target']}")
    return "\n".join(lines)


@main.group("index")
def index_group():
    """A development search index (<wiki>_content) on an Elasticsearch-compatible server."""


@index_group.command("init")
@click.option("--wiki", required=True, help="An ingested wiki: one document per main-namespace article.")
@click.option("--search-url", required=True, help="Elasticsearch-compatible server, e.g. http://127.0.0.1:9200.")
@click.option("--topics", type=click.Path(dir_okay=False, exists=True),
              help="Topic table (JSON title → topic, or Parquet title, topic[, probability]) → articletopic tags.")
@click.option("--recreate", is_flag=True, help="Drop the index first if it exists (its tags are lost).")
@json_option
@click.pass_obj
@reported
def index_init(rt: jobs.Runtime, wiki, search_url, topics, recreate, as_json):
    """Create <wiki>_content with id = page id, title, namespace and weighted_tags (topic tags)."""
    summary = jobs.index_init(rt, wiki, search_url, topics, recreate)
    if as_json:
        emit_json(summary)


@main.command("search")
@click.argument("query")
@wiki_option
@click.option("--search-url", required=True, help="Elasticsearch-compatible server URL.")
@click.option("--limit", default=100, show_default=True, help="At most this many hits.")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON on the last line of stdout.")
@click.pass_obj
@reported
def search_command(rt: jobs.Runtime, query, wiki, search_url, limit, as_json):
    """Run a CirrusSearch-style query: hasrecommendation:link, -hasrecommendation:link,
    articletopic:<topic>[|<topic>…], combined with spaces (AND). Prints page id and title per hit.
    A query that starts with "-" goes after "--": linkrec search --wiki W --search-url URL -- -hasrecommendation:link"""
    found = jobs.search(rt, wiki, search_url, query, limit)
    if as_json:
        emit_json(found)
        return
    for hit in found["hits"]:
        click.echo(f"{hit['page_id']}\t{hit['title']}")
    rt.say(f"linkrec: {found['total']} hits, {len(found['hits'])} shown")


@main.command("reconcile")
@wiki_option
@reworded(search_url="Elasticsearch / OpenSearch / CirrusSearch URL whose recommendation.<task>/exists tags "
                     "(link or orphan_link, per --task) are checked, and with --fix repaired.")
@with_options(sink_options)
@click.option("--fix", is_flag=True, help="Repair: delete stale rows, set missing tags, clear stray tags.")
@task_option
@json_option
@click.pass_obj
@reported
def reconcile_command(rt: jobs.Runtime, wiki, db, search_url, search_mode, fix, task, as_json):
    """Check "tagged in search ⇔ a non-NULL row for the latest revision" and print the differences.
    Latest revisions come from the wiki's current snapshot when it is ingested, else from the rows."""
    if not search_url:
        raise jobs.UsageError("reconcile needs --search-url")
    differences = jobs.reconcile(rt, wiki, db, search_url, search_mode, fix, task)
    summary = {"wiki": wiki, **differences.summary()}
    for kind in ("tag_without_task", "task_without_tag", "stale_rows"):
        if summary[kind]:
            rt.say(f"  {kind}: {summary[kind]} (e.g. {summary['examples'][kind]})")
    rt.say(f"linkrec: {differences.total} differences" + (f"; repaired: {differences.repaired}" if fix else ""))
    if as_json:
        emit_json(summary)
    sys.exit(errors.EXIT_FAILED if differences.total and not fix else 0)


@main.group("embeddings")
def embeddings_group():
    """Article embeddings and their nearest-neighbour index: build a snapshot, publish it."""


model_option = click.option("--model", "kind", type=click.Choice(["links", "reading"]), default="links",
                            show_default=True, help="links: documents are articles' out-links; reading: sessions.")
ssh_key_option = click.option("--ssh-key", type=click.Path(dir_okay=False, exists=True),
                              help="Private key for an sftp:// destination [default: the agent and ~/.ssh].")


@embeddings_group.command("build")
@wiki_option
@model_option
@click.option("--qids", type=click.Path(), help="page_id → Wikidata QID (Parquet page_id,qid or TSV): keys are "
                                                 "QIDs where known, else <wiki>:<page_id>.")
@click.option("--sessions", type=click.Path(), help="With --model reading: Parquet, one row per reading session "
                                                     "with an ordered list of page ids.")
@click.option("--force", is_flag=True, help="Rebuild even when a snapshot of the same input and settings exists.")
@json_option
@click.pass_obj
@reported
def embeddings_build(rt: jobs.Runtime, wiki, kind, qids, sessions, force, as_json):
    """Collect documents, train Word2Vec in Spark, embed every article, index the vectors, and write the
    snapshot embeddings/<wiki>-<model>/<snapshot>/ (vectors, index, manifest with checksums)."""
    with rt.locked(wiki):
        manifest = jobs.embeddings_build(rt, wiki, kind, qids, sessions, force)
    if as_json:
        emit_json(manifest)


@embeddings_group.command("publish")
@wiki_option
@model_option
@click.option("--to", "to", metavar="URI", help="A path or sftp://, s3://, hdfs:// URI [embeddings.publish_to].")
@click.option("--snapshot", "snapshot_name", help="Which built snapshot [default: the newest].")
@click.option("--keep", type=click.IntRange(min=1),
              help="Snapshots kept at the destination [embeddings.keep_snapshots].")
@ssh_key_option
@json_option
@click.pass_obj
@reported
def embeddings_publish(rt: jobs.Runtime, wiki, kind, to, snapshot_name, keep, ssh_key, as_json):
    """Copy a snapshot, resuming a partial copy; verify every checksum at the destination; then move
    <model>/LATEST to it and keep the newest snapshots there."""
    result = jobs.embeddings_publish(rt, wiki, kind, to, snapshot_name, keep, ssh_key)
    if as_json:
        emit_json(result)


@main.command("neighbours")
@wiki_option
@click.option("--title", required=True, help="An article title.")
@click.option("-k", "k", type=click.IntRange(min=1, max=1000), default=10, show_default=True)
@model_option
@click.option("--from", "source", metavar="URI", help="Where snapshots are published [embeddings.publish_to; "
                                                      "else the newest built in the warehouse].")
@ssh_key_option
@json_option
@click.pass_obj
@reported
def neighbours_command(rt: jobs.Runtime, wiki, title, k, kind, source, ssh_key, as_json):
    """The k articles most similar to TITLE (cosine similarity of their embeddings)."""
    found = jobs.neighbours(rt, wiki, title, k, kind, source, ssh_key)
    if as_json:
        emit_json(found)
        return
    for hit in found["neighbours"]:
        click.echo(f"{hit['similarity']:.3f}\t{hit['title']}")
    rt.say(f"linkrec: neighbours of {found['title']} in {found['model']}/{found['snapshot']}")


if __name__ == "__main__":
    main()
