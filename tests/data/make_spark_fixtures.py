"""Writes the Spark fixtures under ``tests/data/spark/`` with real, local Spark.

Run it only to regenerate the fixtures (the files are committed; the tests need no Spark and
no Java)::

    pip install pyspark  # and a Java 17+ runtime, e.g. apt-get install openjdk-17-jre-headless
    python tests/data/make_spark_fixtures.py

Spark runs as ``local[1]`` with a small driver, and writes what Spark writes: snappy
``part-*.snappy.parquet`` files, ``_SUCCESS``, hidden ``.crc`` checksum files, Hive partition
folders (``country=DE/``, and ``country=__HIVE_DEFAULT_PARTITION__/`` for nulls), and Spark's
types: ``TimestampType`` (INT64 microseconds, or legacy INT96 in ``int96/``), ``DecimalType``,
``DateType``, arrays and maps. ``events/`` also holds a part file of zero rows (Spark writes
one when an empty DataFrame is appended).

Folders:
    sales/: 40 rows in 2 files per country, partitioned by ``country`` (DE, FR, and 4 rows
        whose country is null), columns ``x1`` (double), ``x2`` (float), ``label`` (int),
        ``weight`` (double), ``amount`` (decimal(10,2)), ``ts`` (timestamp), ``day`` (date),
        ``tags`` (array<int>), ``attrs`` (map<string,int>), ``name`` (string),
        ``nested`` (array<array<int>>).
    events/: 24 rows in 2 files plus one empty file, columns ``id`` (long), ``x`` (double),
        ``y`` (double), ``ts`` (timestamp, INT64 microseconds).
    int96/: the rows of ``events/`` again, ``ts`` written as legacy INT96.
"""

from __future__ import annotations

import datetime
import decimal
import shutil
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import types as T

HERE = Path(__file__).resolve().parent / "spark"


def _session() -> SparkSession:
    return (
        SparkSession.builder.master("local[1]")
        .appName("fitpipe-fixtures")
        .config("spark.driver.memory", "512m")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.compression.codec", "snappy")
        .getOrCreate()
    )


_SALES = T.StructType(
    [
        T.StructField("x1", T.DoubleType()),
        T.StructField("x2", T.FloatType()),
        T.StructField("label", T.IntegerType()),
        T.StructField("weight", T.DoubleType()),
        T.StructField("amount", T.DecimalType(10, 2)),
        T.StructField("ts", T.TimestampType()),
        T.StructField("day", T.DateType()),
        T.StructField("tags", T.ArrayType(T.IntegerType())),
        T.StructField("attrs", T.MapType(T.StringType(), T.IntegerType())),
        T.StructField("name", T.StringType()),
        T.StructField("nested", T.ArrayType(T.ArrayType(T.IntegerType()))),
        T.StructField("country", T.StringType()),
    ]
)

_EVENTS = T.StructType(
    [
        T.StructField("id", T.LongType()),
        T.StructField("x", T.DoubleType()),
        T.StructField("y", T.DoubleType()),
        T.StructField("ts", T.TimestampType()),
    ]
)

_START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def _sales_rows() -> list[tuple[object, ...]]:
    rows = []
    for i in range(40):
        country = None if i % 10 == 9 else ("DE" if i % 2 == 0 else "FR")
        rows.append(
            (
                i / 4.0,
                float(i % 7) - 3.0,
                i % 2,
                1.0 + (i % 3),
                decimal.Decimal(f"{i * 3}.{i % 100:02d}"),
                _START + datetime.timedelta(hours=i, microseconds=i),
                (_START + datetime.timedelta(days=i)).date(),
                list(range(i % 4)),
                {"a": i, "b": -i},
                f"row{i}",
                [[i], [i, i]],
                country,
            )
        )
    return rows


def _events_rows() -> list[tuple[object, ...]]:
    return [
        (i, float(i), 2.0 * i + 1.0, _START + datetime.timedelta(minutes=i, microseconds=7 * i))
        for i in range(24)
    ]


def _clean(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def main() -> None:
    """Writes the three fixture folders."""
    spark = _session()
    try:
        sales = spark.createDataFrame(_sales_rows(), _SALES).repartition(2)
        sales.write.partitionBy("country").parquet(str(_clean(HERE / "sales")))
        events = spark.createDataFrame(_events_rows(), _EVENTS).coalesce(2)
        for name, kind in (("events", "TIMESTAMP_MICROS"), ("int96", "INT96")):
            spark.conf.set("spark.sql.parquet.outputTimestampType", kind)
            path = str(_clean(HERE / name))
            events.repartition(2).sortWithinPartitions("id").write.parquet(path)
            if name == "events":
                spark.createDataFrame([], _EVENTS).write.mode("append").parquet(path)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
