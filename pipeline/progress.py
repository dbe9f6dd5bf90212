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

    def line(self) -> str:
        elapsed = max(time.time() - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            eta = (self.total - self.done) / rate if rate else float("inf")
            return (f"  {self.label}: {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), "
                    f"{rate:.0f}/s, ETA {eta:.0f} s")
        return f"  {self.label}: {self.done}, {rate:.0f}/s"

    def advance(self, n: int = 1) -> None:
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
        while not stop.wait(every):
            stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
            stages = [s for s in stages if s is not None]
            if stages:
                done = sum(s.numCompletedTasks for s in stages)
                total = sum(s.numTasks for s in stages)
                say(f"  {label}: Spark tasks {done}/{total} in {len(stages)} stage(s), {time.time() - started:.0f} s")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
