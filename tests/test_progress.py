"""Progress lines: an ETA that is not a wild guess, and no line repeated while nothing moves."""

from __future__ import annotations

import time

from pipeline.progress import Progress, spark_progress


def test_the_eta_ignores_the_wait_before_the_first_item_and_waits_for_two_percent():
    lines: list[str] = []
    progress = Progress("written", 1000, lines.append, every=0)
    progress.started -= 100  # a long start-up (Spark planning) before the first row arrives
    progress.advance(10)
    assert lines[-1].endswith("ETA after the first 2 %")
    progress.advance(20)
    progress.first -= 10  # 30 rows in the 10 s since the first one: 3 rows/s
    assert progress.line().endswith("3/s, ETA 323 s")


def test_a_stage_that_does_not_move_is_reported_once_not_every_few_seconds(spark):
    lines: list[str] = []
    with spark_progress(spark, "recommend", lines.append, every=0.05):
        spark.sparkContext.parallelize([1], 1).map(lambda x: time.sleep(2) or x).collect()
    assert len(lines) == 1 and "Spark tasks 0/1 in 1 stage(s)" in lines[0]
