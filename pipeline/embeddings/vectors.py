"""Stages 2 and 3, train and embed: Word2Vec over the documents (Spark ML, fixed seed), then one vector
per article. Link model: the mean of its out-links' key vectors, so an article gets a vector as soon as
it links to an article the model knows. Reading model: its own key's vector. Vectors are L2-normalised
(cosine similarity is their dot product); articles without one are counted by reason."""

from __future__ import annotations

from pyspark.ml.feature import Word2Vec
from pyspark.ml.functions import vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.config import EmbeddingsConfig

NATIVE_BLAS = "libblas.so.3"  # what Spark ML's BLAS loader (dev.ludovic.netlib) dlopens by default


def quiet_native_blas(spark) -> bool:
    """Where no native BLAS is installed, skip trying it (the pure-Java BLAS is used either way): the failed
    dlopen is printed by native code straight to the JVM's stderr, past log4j. True when skipped."""
    import ctypes

    jvm = getattr(spark, "_jvm", None)
    if jvm is None:
        return False
    system = jvm.java.lang.System
    if any(system.getProperty(f"dev.ludovic.netlib.blas.{key}") is not None
           for key in ("allowNative", "nativeLib", "nativeLibPath")):
        return False  # the operator chose
    try:
        ctypes.CDLL(NATIVE_BLAS)
        return False
    except OSError:
        system.setProperty("dev.ludovic.netlib.blas.allowNative", "false")
        return True


def fit(documents: DataFrame, column: str, settings: EmbeddingsConfig):
    """The Word2Vec model of the documents (their order fixed by the caller: it changes the vectors)."""
    quiet_native_blas(documents.sparkSession)
    word2vec = Word2Vec(vectorSize=settings.dimensions, minCount=settings.min_count,
                        numPartitions=settings.partitions, stepSize=settings.step_size, maxIter=settings.iterations,
                        seed=settings.seed, windowSize=settings.window, maxSentenceLength=settings.max_document_length,
                        inputCol=column, outputCol="_unused")
    return word2vec.fit(documents)


def key_vectors(model) -> DataFrame:
    """key, vector (a Spark ML vector) of every key in the model's vocabulary."""
    return model.getVectors().select(F.col("word").alias("key"), "vector")


def _as_array(frame: DataFrame, column: str) -> DataFrame:
    """A Spark ML vector column as array<float> (before any outer join: vector_to_array refuses nulls)."""
    return frame.withColumn(column, vector_to_array(F.col(column), "float32"))


def _normalised(values):
    norm = F.sqrt(F.aggregate(values, F.lit(0.0).cast("double"), lambda acc, x: acc + x * x))
    return F.when(norm > 0, F.transform(values, lambda x: (x / norm).cast("float")))


def link_vectors(articles: DataFrame, documents: DataFrame, vectors: DataFrame) -> DataFrame:
    """page_id, title, key, vector (null) and reason (null when there is a vector) for every article."""
    out_links = documents.select("page_id", F.explode("out_keys").alias("key"))
    known = out_links.join(vectors, "key")
    means = _as_array(known.groupBy("page_id").agg(Summarizer.mean(F.col("vector")).alias("mean")), "mean")
    joined = (articles.join(documents.select("page_id", F.size("out_keys").alias("out_links")), "page_id", "left")
              .join(means, "page_id", "left"))
    vector = _normalised(F.col("mean"))
    reason = (F.when(F.col("out_links").isNull(), "no_out_links")
              .when(F.col("mean").isNull(), "out_links_not_in_vocabulary")
              .when(vector.isNull(), "zero_vector"))
    return joined.select("page_id", "title", "key", vector.alias("vector"), reason.alias("reason"))


def reading_vectors(articles: DataFrame, documents: DataFrame, vectors: DataFrame) -> DataFrame:
    """The same for the reading model: an article's vector is its own key's."""
    read = documents.select(F.explode("keys").alias("key")).distinct().withColumn("read", F.lit(True))
    joined = articles.join(_as_array(vectors, "vector"), "key", "left").join(read, "key", "left")
    vector = _normalised(F.col("vector"))
    reason = (F.when(F.col("read").isNull(), "not_read_in_any_session")
              .when(F.col("vector").isNull(), "read_below_min_count")
              .when(vector.isNull(), "zero_vector"))
    return joined.select("page_id", "title", "key", vector.alias("vector"), reason.alias("reason"))


def driver_bytes(vocabulary: int, dimensions: int) -> int:
    """What Spark's Word2Vec holds on the driver: two vocabulary × dimensions float arrays (the input and
    output weights), also broadcast to every executor each iteration; Spark refuses when one array has
    more than 2³¹ − 1 values."""
    return 2 * 4 * vocabulary * dimensions
