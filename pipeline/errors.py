"""What a failure means to an operator: its exit code (1 unusable input or configuration, 2 usage,
3 incomplete, a re-run converges) and the one line that says it; Spark's own errors included."""

from __future__ import annotations

EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE = 1, 2, 3

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


def exit_code(exc: Exception) -> int | None:
    """The exit code of a failure the command line reports in one line; None for a bug (a traceback)."""
    from pipeline.config import ConfigError
    from pipeline.embeddings import EmbeddingError, PublishInterrupted
    from pipeline.feedback import FeedbackError
    from pipeline.ingest.dumpreader import DumpError
    from pipeline.jobs import UsageError
    from pipeline.model import ModelError
    from pipeline.orphans import OrphanError
    from pipeline.warehouse import NotIngested, WarehouseBusy
    from sinks.base import MassDeleteRefused, SinkError, SinkUnusable
    from sinks.query import QueryError

    for kinds, code in (((UsageError, QueryError), EXIT_USAGE), ((WarehouseBusy, PublishInterrupted), EXIT_INCOMPLETE),
                        ((SinkUnusable, ConfigError, DumpError, ModelError, NotIngested, MassDeleteRefused,
                          EmbeddingError, OrphanError, FeedbackError),
                         EXIT_FAILED),
                        ((SinkError,), EXIT_INCOMPLETE)):
        if isinstance(exc, kinds):
            return code
    return EXIT_FAILED if spark_failure(exc) else None


def describe(exc: Exception, code: int) -> str:
    """The one line of a failure."""
    from sinks.base import SinkError

    line = spark_failure(exc) or str(exc)
    if code == EXIT_INCOMPLETE and isinstance(exc, SinkError):
        line += "; the run is incomplete, a re-run converges"
    return line
