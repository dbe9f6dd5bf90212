"""What editors already did, as columns of the pages: `has_submission` (the page's revision has a row in the
task's submissions table: never touched again) and `rejected_targets` (targets rejected twice or more on that
page: never offered again). Joined from the submissions staged in the warehouse (`feedback.job`), never
collected or broadcast: a wiki's submissions grow with its editors' work."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def rejected_targets(spark, staged: str | None) -> DataFrame | None:
    """page_id, rejected_targets: the targets rejected twice or more on each page (None: nothing reviewed)."""
    if staged is None:
        return None
    return (spark.read.parquet(staged).where(F.col("gels_feedback") == "r").groupBy("gels_page", "gels_target")
            .count().where(F.col("count") >= 2).groupBy(F.col("gels_page").alias("page_id"))
            .agg(F.array_sort(F.collect_set("gels_target")).alias("rejected_targets")))


def with_reviews(spark, pages: DataFrame, staged: str | None) -> DataFrame:
    """`pages` (page_id, revision_id, …) with has_submission and rejected_targets (null: none)."""
    if staged is None:
        return (pages.withColumn("has_submission", F.lit(False))
                .withColumn("rejected_targets", F.lit(None).cast("array<long>")))
    revisions = (spark.read.parquet(staged).select(F.col("gels_revision").alias("revision_id")).distinct()
                 .withColumn("submitted", F.lit(True)))
    return (pages.join(revisions, "revision_id", "left")
            .withColumn("has_submission", F.coalesce(F.col("submitted"), F.lit(False))).drop("submitted")
            .join(rejected_targets(spark, staged), "page_id", "left"))
