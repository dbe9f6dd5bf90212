"""The targeting loops: which pages each recommend round gets, and when to stop (iterate, fill topics)."""

from __future__ import annotations

from pipeline.config import ConfigError
from targeting import cursor
from targeting import topics as topic_targeting


def merge(total: dict, part: dict) -> dict:
    """Add up two round summaries (numbers summed, dicts merged the same way, the rest from the latest)."""
    for key, value in part.items():
        if isinstance(value, bool):
            total[key] = bool(total.get(key)) or value
        elif isinstance(value, dict):
            total[key] = merge(dict(total.get(key, {})), value)
        elif isinstance(value, (int, float)):
            total[key] = round(total.get(key, 0) + value, 2)
        else:
            total[key] = value
    return total


def iterate(database, wiki: str, pages_after, limit: int, one_round) -> dict:
    """The next `limit` articles after the stored cursor; the cursor moves only once they are written
    (a dry run, with no database, starts at the first article and moves nothing)."""
    from pipeline.recommend.job import Selection

    if limit <= 0:
        raise ConfigError("iterate targeting needs a limit above 0 (--limit N or targeting.limit)")
    batch = cursor.next_batch(database, wiki, pages_after, limit) if database is not None else pages_after(-1, limit)
    summary = one_round(Selection(page_ids=tuple(batch)))
    if database is not None:
        cursor.advance(database, wiki, batch)
    summary["targeting"] = {"strategy": "iterate", "pages": len(batch), "first": min(batch, default=None),
                            "last": max(batch, default=None)}
    return summary


def fill_topics(source, settings, one_round, dry_run: bool, say) -> tuple[dict, dict]:
    """Rounds of random articles without a task for every topic below `settings.minimum_tasks_per_topic`,
    until each is filled or has no candidates left (one round in a dry run). (summary, counts per topic)."""
    from pipeline.recommend.job import Selection

    minimum = settings.minimum_tasks_per_topic
    before = {label: source.tasks(label) for label in source.labels}
    evaluated: set[int] = set()
    selected_per_topic: dict[str, int] = {}
    summary: dict = {}
    rounds = 0
    while True:
        chosen = topic_targeting.picks(source, minimum, settings.seed, evaluated)
        selected = sorted({page for batch in chosen.values() for page in batch})
        if not selected:
            break
        for label, batch in chosen.items():
            selected_per_topic[label] = selected_per_topic.get(label, 0) + len(batch)
        say(f"linkrec: topic round {rounds + 1}: {len(selected)} articles for {len(chosen)} topics below {minimum} "
            "tasks")
        summary = merge(summary, one_round(Selection(page_ids=tuple(selected))))
        evaluated.update(selected)
        rounds += 1
        if dry_run:
            break
        source.refresh()
    counts = {"minimum": minimum, "before": before, "after": {label: source.tasks(label) for label in source.labels}}
    summary["targeting"] = {"strategy": "topics", "rounds": rounds, "pages": len(evaluated),
                            "selected": selected_per_topic, **counts}
    return summary, counts
