"""The run report of one wiki and run: a JSON file and a self-contained HTML page (plots embedded)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os

from pipeline.recommend import eligibility as rules
from pipeline.recommend.engine import REPORT_THRESHOLDS

COVERAGE_LEVELS = (1, 5, 10)
HISTOGRAM_BINS = 10  # over 0.5 … 1.0


def run_statistics(spark, outputs: list[str]) -> dict:
    """Coverage (share of eligible articles with ≥1/≥5/≥10 links per threshold) and the score histogram."""
    from pyspark.sql import functions as F

    if not outputs:
        return {"eligible": 0, "coverage": [], "score_histogram": []}
    frame = spark.read.parquet(*outputs).where(F.col("reason").isin(rules.OK, rules.TOO_FEW_LINKS))
    aggregates = [F.count(F.lit(1)).alias("eligible")]
    for i, _ in enumerate(REPORT_THRESHOLDS):
        for level in COVERAGE_LEVELS:
            aggregates.append(F.sum((F.coalesce(F.col("link_counts")[i], F.lit(0)) >= level).cast("int"))
                              .alias(f"c{i}_{level}"))
    row = frame.agg(*aggregates).first()
    eligible = row["eligible"]
    coverage = [{"threshold": t, **{f"share_with_{level}": round((row[f"c{i}_{level}"] or 0) / eligible, 4)
                                    if eligible else 0.0 for level in COVERAGE_LEVELS}}
                for i, t in enumerate(REPORT_THRESHOLDS)]
    low = REPORT_THRESHOLDS[0]
    width = (1.0 - low) / HISTOGRAM_BINS
    binned = (frame.select(F.explode("scores").alias("score"))
              .select(F.least(F.floor((F.col("score") - low) / width), F.lit(HISTOGRAM_BINS - 1)).cast("int")
                      .alias("bin")).groupBy("bin").count().collect())
    counts = {r["bin"]: r["count"] for r in binned}
    histogram = [{"from": round(low + b * width, 3), "to": round(low + (b + 1) * width, 3), "links": counts.get(b, 0)}
                 for b in range(HISTOGRAM_BINS)]
    return {"eligible": eligible, "coverage": coverage, "score_histogram": histogram}


SAMPLE_TASKS = 10
SAMPLE_LINKS = 3  # per task


def sample_tasks(spark, warehouse, wiki: str, snapshot: str | None, outputs: list[str]) -> list[dict]:
    """A few tasks as an editor would meet them (a deterministic sample): the article, and for each
    suggested link the text around it, the anchor, the target and the score."""
    from pyspark.sql import functions as F

    if not outputs or not snapshot:
        return []
    from pipeline.text.sections import section_at

    rows = (spark.read.parquet(*outputs).where(F.col("reason") == rules.OK).select("page_id", "gelr_data")
            .dropDuplicates(["page_id"]).orderBy(F.xxhash64("page_id"), "page_id").limit(SAMPLE_TASKS)
            .join(warehouse.read("pages", wiki, snapshot).select("page_id", "title", "wikitext"), "page_id", "left")
            .orderBy("title").collect())
    tasks = []
    for row in rows:
        links = json.loads(row.gelr_data)["links"][:SAMPLE_LINKS]
        tasks.append({"page_id": row.page_id, "title": row.title, "links": [
            {**{key: link[key] for key in ("context_before", "link_text", "context_after", "link_target", "score")},
             "section": section_at(row.wikitext or "", link["wikitext_offset"])}
            for link in links]})
    return tasks


def model_curves(warehouse, summary: dict) -> tuple[dict, bytes | None]:
    """The backtest curves of the model used (from its metrics.csv) and its plot."""
    from pipeline.model.artifacts import model_root

    model, version = summary.get("model"), summary.get("version")
    if not model or not version:
        return {}, None
    folder = f"{model_root(warehouse, model)}/{version}"
    text = warehouse.read_text(f"{folder}/metrics.csv")
    curves: dict[str, list[dict]] = {}
    for row in csv.DictReader(io.StringIO(text or "")):
        curves.setdefault(row["protocol"], []).append(
            {"threshold": float(row["threshold"]), "precision": float(row["precision"]),
             "recall": float(row["recall"]), "n_sentences": int(row["n_sentences"])})
    return curves, warehouse.read_bytes(f"{folder}/backtest.png")


def orphan_section(warehouse, summary: dict) -> tuple[dict, bytes | None]:
    """The orphan task of the run: orphans, the share that received a suggestion, suggestions per
    orphan, and the simulated-orphan curve of the model used (its metrics.csv and plot)."""
    from pipeline.model.artifacts import model_root

    orphans, suggested = summary.get("orphans", 0), summary.get("orphans_with_suggestion", 0)
    section = {"orphans": orphans, "orphans_with_suggestion": suggested,
               "share_with_suggestion": round(suggested / orphans, 4) if orphans else 0.0,
               "suggestions_per_orphan": summary.get("suggestions_per_orphan", 0.0),
               "pages_with_links": summary.get("pages_with_links", 0), "links": summary.get("links", 0),
               "model": summary.get("model"), "version": summary.get("version"), "curve": []}
    if not summary.get("model"):
        return section, None
    folder = f"{model_root(warehouse, summary['model'])}/{summary['version']}"
    for row in csv.DictReader(io.StringIO(warehouse.read_text(f"{folder}/metrics.csv") or "")):
        section["curve"].append({"threshold": float(row["threshold"]), "precision": float(row["precision"]),
                                 "recall": float(row["recall"]), "n_links": int(row["n_links"])})
    return section, warehouse.read_bytes(f"{folder}/backtest.png")


def calibration_plot(feedback: dict) -> bytes:
    """Accepted share of the decided links per score band against the band's middle (perfect: the diagonal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = [b for b in feedback["by_band"] if b["acceptance"] is not None]
    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=100)
    axis.plot([0, 1], [0, 1], ":", color="grey", label="calibrated")
    axis.plot([(b["from"] + b["to"]) / 2 for b in bands], [b["acceptance"] for b in bands], "o-",
              color="tab:purple", label="accepted share")
    for b in bands:
        axis.annotate(str(b["accepted"] + b["rejected"]), ((b["from"] + b["to"]) / 2, b["acceptance"]),
                      textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    axis.set_xlabel("link score")
    axis.set_ylabel("accepted / (accepted + rejected)")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.05)
    axis.legend(loc="lower right")
    axis.set_title("Editors' decisions by score (n per point)")
    data = _png(figure)
    plt.close(figure)
    return data


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def plots(statistics: dict) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=100)
    bins = statistics["score_histogram"]
    axis.bar([b["from"] for b in bins], [b["links"] for b in bins], width=(bins[0]["to"] - bins[0]["from"]) * 0.9
             if bins else 0.05, align="edge", color="tab:blue")
    axis.set_xlabel("link score")
    axis.set_ylabel("links")
    axis.set_title("Scores of the links found (threshold 0.5)")
    out["score_histogram"] = _png(figure)
    plt.close(figure)
    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=100)
    for level, colour in zip(COVERAGE_LEVELS, ("tab:green", "tab:orange", "tab:red"), strict=True):
        axis.plot([c["threshold"] for c in statistics["coverage"]],
                  [c[f"share_with_{level}"] for c in statistics["coverage"]], "o-", color=colour, label=f"≥ {level}")
    axis.set_xlabel("minimum link score")
    axis.set_ylabel("share of eligible articles")
    axis.set_ylim(0, 1)
    axis.legend()
    axis.set_title("Coverage")
    out["coverage"] = _png(figure)
    plt.close(figure)
    return out


def _table(rows: list[list], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _share(counts: dict) -> str:
    return "–" if counts["acceptance"] is None else f"{100 * counts['acceptance']:.1f}%"


def _task_html(task: dict) -> str:
    items = "".join(
        f"<li>…{html.escape(link['context_before'])}<mark>{html.escape(link['link_text'])}</mark>"
        f"{html.escape(link['context_after'])}… → <b>{html.escape(link['link_target'])}</b> "
        f"({link['score']:.2f}; section: {html.escape(link.get('section') or 'lead')})</li>" for link in task["links"])
    return f"<h3>{html.escape(str(task['title']))}</h3><ul>{items}</ul>"


def render_html(report: dict, images: dict[str, bytes]) -> str:
    """One page, no external resources: images as data URIs."""
    figures = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
        f"<figcaption>{html.escape(name.replace('_', ' '))}</figcaption></figure>"
        for name, data in images.items() if data)
    run = report["run"]
    counts = [[key, value] for key, value in (
        ("pages read", run.get("pages_read")), ("eligible", run.get("eligible")),
        ("with recommendations", run.get("with_links")), ("NULL rows", run.get("null_rows")),
        ("links", run.get("links")), ("rows written", report["database"].get("rows_written")),
        ("NULL rows written", report["database"].get("null_rows_written")),
        ("rows deleted", report["database"].get("rows_deleted")),
        ("tags set", report.get("search", {}).get("tags_set", "–")),
        ("tags cleared", report.get("search", {}).get("tags_cleared", "–")))]
    skipped = [[reason, n] for reason, n in sorted(run.get("skipped", {}).items())]
    stages = [[stage, seconds] for stage, seconds in report.get("seconds_per_stage", {}).items()]
    coverage = [[c["threshold"], *(f"{100 * c[f'share_with_{level}']:.1f}%" for level in COVERAGE_LEVELS)]
                for c in report["statistics"]["coverage"]]
    topics = [[t, before, report["topics"]["after"].get(t)] for t, before in
              sorted(report["topics"]["before"].items())] if report.get("topics") else []
    sections = [
        f"<h1>linkrec run report: {html.escape(report['wiki'])}</h1>",
        f"<p>run {html.escape(report['run_id'])} · model {html.escape(str(report.get('model')))} "
        f"{html.escape(str(report.get('version')))} · snapshot {html.escape(str(report.get('snapshot')))}</p>",
        "<h2>Pages and writes</h2>", _table(counts, ["", "count"]),
        "<h2>Skipped, by reason</h2>", _table(skipped, ["reason", "pages"]),
        "<h2>Time per stage (s)</h2>", _table(stages, ["stage", "seconds"]),
        "<h2>Coverage</h2>", _table(coverage, ["threshold", *(f"≥ {level} links" for level in COVERAGE_LEVELS)]),
    ]
    if topics:
        sections += ["<h2>Tasks per topic</h2>", _table(topics, ["topic", "before", "after"])]
    if report.get("sample_tasks"):
        sections += ["<h2>Sample tasks</h2>", "<p>What an editor sees: the sentence, the suggested anchor "
                     "(marked), the article it would link to, and the model's score.</p>",
                     "".join(_task_html(task) for task in report["sample_tasks"])]
    if report.get("warnings"):
        sections[2:2] = ["<h2>Warnings</h2>", "<ul>" + "".join(f"<li>{html.escape(w)}</li>"
                                                               for w in report["warnings"]) + "</ul>"]
    if report.get("orphans", {}).get("status"):
        o = report["orphans"]
        sections += ["<h2>Links to orphan articles</h2>",
                     f"<p>{html.escape(o['status'])}: {html.escape(o['why'])}</p>"]
    elif report.get("orphans"):
        o = report["orphans"]
        sections += ["<h2>Links to orphan articles</h2>", _table([
            ["orphans", o["orphans"]], ["orphans with a suggestion", o["orphans_with_suggestion"]],
            ["share with a suggestion", f"{100 * o['share_with_suggestion']:.1f}%"],
            ["suggestions per orphan", o["suggestions_per_orphan"]], ["pages with links", o["pages_with_links"]],
            ["links", o["links"]]], ["", "count"]),
            f"<p>model {html.escape(str(o.get('model')))} {html.escape(str(o.get('version')))}: simulated orphans</p>",
            _table([[p["threshold"], p["precision"], p["recall"], p["n_links"]] for p in o["curve"]],
                   ["threshold", "precision", "recall", "hidden links"])]
    if report.get("feedback"):
        f = report["feedback"]
        newest = f["newest_version"]
        sections += [
            "<h2>What editors did with the links</h2>",
            f"<p>{f['reviewed']} reviewed: {f['accepted']} accepted, {f['rejected']} rejected, {f['skipped']} "
            f"skipped; {f['not_ours']} reviewed links this project never wrote; {f['bad_rows']} bad rows. Newest "
            f"model version {html.escape(str(newest['version']))}: acceptance "
            f"{'–' if newest['acceptance'] is None else newest['acceptance']} over {newest['decisions']} decisions"
            f"{' — below the floor' if newest['below_floor'] else ''}"
            f"{' — below the version it replaced' if newest['dropped'] else ''}.</p>",
            _table([[v, c["accepted"], c["rejected"], c["skipped"], _share(c)] for v, c in f["by_version"].items()],
                   ["model version", "accepted", "rejected", "skipped", "acceptance"]),
            _table([[f"{b['from']:.1f}–{b['to']:.1f}", b["accepted"], b["rejected"], b["skipped"], _share(b)]
                    for b in f["by_band"]], ["score", "accepted", "rejected", "skipped", "acceptance"])]
    sections += ["<h2>Plots</h2>", figures]
    style = ("body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}figure{display:inline-block;margin:1em}"
             "mark{background:#ffe58a}")
    # The script marks the page once every plot has decoded, so a headless browser can check it.
    script = ("<script>window.addEventListener('load',function(){var ok=Array.from(document.images).filter("
              "function(i){return i.complete&&i.naturalWidth>0}).length;document.body.setAttribute("
              "'data-images-loaded',String(ok))});</script>")
    title = f"linkrec {html.escape(report['wiki'])}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{style}</style></head><body>{''.join(sections)}{script}</body></html>")


def write_report(report_dir: str, report: dict, images: dict[str, bytes]) -> tuple[str, str]:
    os.makedirs(report_dir, exist_ok=True)
    stem = os.path.join(report_dir, f"{report['wiki']}-{report['run_id']}")
    with open(f"{stem}.json", "w", encoding="utf-8") as handle:
        json.dump(report, handle, ensure_ascii=False, indent=2, sort_keys=True)
    with open(f"{stem}.html", "w", encoding="utf-8") as handle:
        handle.write(render_html(report, images))
    return f"{stem}.json", f"{stem}.html"


def build_report(spark, warehouse, wiki: str, run_id: str, summary: dict, outputs: list[str],
                 topics: dict | None = None, orphans: dict | None = None) -> tuple[dict, dict[str, bytes]]:
    """`orphans`: the summary of the run's orphan task, when it ran."""
    statistics = run_statistics(spark, outputs)
    curves, backtest_png = model_curves(warehouse, summary)
    report = {"wiki": wiki, "run_id": run_id, "model": summary.get("model"), "version": summary.get("version"),
              "snapshot": summary.get("snapshot"),
              "run": {k: summary.get(k) for k in ("pages_read", "eligible", "with_links", "null_rows", "links",
                                                  "skipped", "dry_run")},
              "database": summary.get("database", {}), "seconds_per_stage": summary.get("seconds_per_stage", {}),
              "statistics": statistics, "backtest": curves}
    report["sample_tasks"] = sample_tasks(spark, warehouse, wiki, summary.get("snapshot"), outputs)
    if "search" in summary:
        report["search"] = summary["search"]
    if topics:
        report["topics"] = topics
    images = plots(statistics)
    if backtest_png:
        images["backtest"] = backtest_png
    if summary.get("warnings"):
        report["warnings"] = list(summary["warnings"])
    if summary.get("feedback"):
        report["feedback"] = summary["feedback"]
        images["calibration"] = calibration_plot(summary["feedback"])
    # a task that did not run says why in one string ("skipped" of a task that ran counts pages per reason)
    why = orphans.get("failed") or (orphans["skipped"] if isinstance(orphans.get("skipped"), str) else None) \
        if orphans else None
    if why:
        report["orphans"] = {"status": "failed" if "failed" in orphans else "skipped", "why": why}
    elif orphans:
        report["orphans"], orphan_png = orphan_section(warehouse, orphans)
        if orphan_png:
            images["orphan_backtest"] = orphan_png
    return report, images
