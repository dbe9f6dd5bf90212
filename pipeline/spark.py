"""The SparkSession: local mode sized for a small machine by default; under spark-submit, the
submitted master and conf are used untouched."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipeline.config import SparkConfig


def submitted() -> bool:
    """True inside spark-submit, which starts the JVM first and hands Python its gateway."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _log_config() -> str:
    """The packaged log4j2 configuration (errors only, on stderr) as a file URI for the JVM."""
    from importlib import resources

    return Path(str(resources.files("configs").joinpath("log4j2.properties"))).resolve().as_uri()


def get_spark(config: SparkConfig, app_name: str = "linkrec"):
    from pyspark.sql import SparkSession

    if submitted():
        spark = SparkSession.builder.appName(app_name).getOrCreate()
        spark.conf.set("spark.sql.session.timeZone", "UTC")  # timestamps in tables are read and written as UTC
        return spark
    # workers must run the interpreter that has linkrec installed
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # local mode talks only to itself; this also silences the "resolves to a loopback" warning
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.appName(app_name)
        .master(config.master)
        .config("spark.driver.memory", config.driver_memory)
        .config("spark.sql.shuffle.partitions", str(config.shuffle_partitions))
        .config("spark.default.parallelism", str(max(2, os.cpu_count() or 2)))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.adaptive.enabled", "true")
        # snapshot=20170901 is a name, not a number
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_log_config()}")
    )
    for key, value in config.conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
