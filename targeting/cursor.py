"""Page-id iteration: every article in page-id order from a cursor stored with the sink, at most `limit`
per run, starting over after the last page. The cursor moves only once a batch is written."""

from __future__ import annotations

STATE_NAME = "iterate_cursor"


def next_batch(database, wiki: str, pages_after, limit: int) -> list[int]:
    """The next pages after the stored cursor (the first ones again once the end was reached).
    `pages_after(cursor, limit)`: the first `limit` article ids above `cursor`, in order (a query, so
    that no list of every article is needed)."""
    cursor = int(database.get_state(wiki, STATE_NAME) or 0)
    return pages_after(cursor, limit) or pages_after(-1, limit)


def advance(database, wiki: str, batch: list[int]) -> None:
    """Called after the batch's rows and tags are written: a failure before this re-does the batch."""
    if batch:
        database.set_state(wiki, STATE_NAME, str(max(batch)))
