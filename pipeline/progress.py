"""Progress of long local runs on stderr: done / total, rate and ETA, at most one line every few seconds."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager


class Progress:
    def __init__(self, label: str, total: int | None, say, every: float = 5.0):
        self.label, self.total, self.say, self.every = label, total, say, every
        self.done = 0
        self.started = self.last = time.time()

    first: float | None = None  # when the first item came: the wait before it is start-up, not the rate

    def line(self) -> str:
        now = time.time()
        elapsed = max(now - (self.first or self.started), 1e-9)
        rate = self.done / elapsed
        if self.total:
            # an ETA from the first percent or two of the work is noise: say so instead of a wild figure
            eta = f"ETA {(self.total - self.done) / rate:.0f} s" if rate and self.done >= 0.02 * self.total else \
                "ETA after the first 2 %"
            return (f"  {self.label}: {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), "
                    f"{rate:.0f}/s, {eta}")
        return f"  {self.label}: {self.done}, {rate:.0f}/s"

    def advance(self, n: int = 1) -> None:
        if self.first is None:
            self.first = time.time()
        self.done += n
        now = time.time()
        if now - self.last >= self.every:
            self.last = now
            self.say(self.line())

    def wrap(self, items):
        for item in items:
            yield item
            self.advance()


@contextmanager
def spark_progress(spark, label: str, say, every: float = 5.0):
    """While the block runs, report the tasks of the active Spark stages (Spark's own bar is off)."""
    stop = threading.Event()

    def watch():
        tracker = spark.sparkContext.statusTracker()
        started = time.time()
        last_state, last_said = None, 0.0
        while not stop.wait(every):
            stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
            stages = [s for s in stages if s is not None]
            if stages:
                done = sum(s.numCompletedTasks for s in stages)
                total = sum(s.numTasks for s in stages)
                state = (tuple(s.stageId for s in stages), done, total)
                # a line when something moved; while one long task runs, one line a minute says it still does
                if state != last_state or time.time() - last_said >= 60:
                    say(f"  {label}: Spark tasks {done}/{total} in {len(stages)} stage(s), "
                        f"{time.time() - started:.0f} s")
                    last_state, last_said = state, time.time()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
