"""Spark SQL generated from KQL: every documented example transpiles, and (with a JVM) the CMSTP query runs
on Spark with the same flags as on DuckDB.

Starting a Spark session takes over a minute on the 2-core CI machine, so the Spark run is opt-in:
``ASSAY_SPARK_TESTS=1 pytest -m spark tests/kql/test_spark.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from assay import kql
from assay.engine.spark_sql import spark_gaps

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def test_every_documented_example_generates_spark_sql() -> None:
    cases = yaml.safe_load((HERE / "conformance" / "docs_cases.yml").read_text(encoding="utf-8"))["cases"]
    gaps: dict[str, int] = {}
    for case in cases:
        compiled = kql.compile(case["kql"], now="2024-01-01", dialect="spark")
        assert compiled.sql.startswith(("SELECT", "WITH")), case["id"]
        for name in spark_gaps(kql.compile(case["kql"], now="2024-01-01").tree):
            gaps[name] = gaps.get(name, 0) + 1
    # DuckDB-only functions left in Spark output are few and known; a new one shows up here
    # DuckDB-only functions left in Spark output are few and known (Kusto timespan text, US-format datetime
    # parsing, isfinite); a new one shows up here
    assert set(gaps) <= {"kql_format_timespan", "kql_parse_timespan", "try_strptime", "isfinite"}, gaps


SPARK_WANTED = os.environ.get("ASSAY_SPARK_TESTS") == "1"


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    if not SPARK_WANTED:
        pytest.skip("Spark run is opt-in (JVM start > 1 min): set ASSAY_SPARK_TESTS=1")
    pyspark_sql = pytest.importorskip("pyspark.sql")
    session = pyspark_sql.SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false") \
        .config("spark.sql.session.timeZone", "UTC").getOrCreate()
    yield session
    session.stop()


@pytest.mark.spark
def test_cmstp_query_runs_on_spark_like_on_duckdb(spark: Any) -> None:
    schema = [("Timestamp", "datetime"), ("DeviceName", "string"), ("AccountName", "string"),
              ("FileName", "string"), ("ProcessCommandLine", "string"), ("InitiatingProcessFileName", "string"),
              ("InitiatingProcessCommandLine", "string")]
    rows = [
        (datetime(2024, 5, 1, 11, 30), "WS-01", "alice", "cmstp.exe",
         r"cmstp.exe /s C:\Users\Public\x.inf /au", "cmd.exe", "cmd.exe /c cmstp.exe"),
        (datetime(2024, 5, 1, 10, 30), "WS-01", "alice", "CMSTP.EXE", r"cmstp.exe /su C:\vpn.info",
         "explorer.exe", r"C:\Windows\Explorer.EXE"),
        (datetime(2024, 5, 1, 9, 0), "WS-02", "bob", "cmstp.exe", "cmstp.exe /ni /s https://10.0.0.5/a.inf",
         "powershell.exe", "powershell -nop"),
    ]
    spark_types = {"datetime": "timestamp", "string": "string"}
    frame = spark.createDataFrame(rows, ", ".join(f"{n} {spark_types[t]}" for n, t in schema))
    frame.createOrReplaceTempView("DeviceProcessEvents")
    query = (ROOT / "detections" / "T1218.003-cmstp" / "sentinel.kql").read_text(encoding="utf-8")
    compiled = kql.compile(query, tables={"DeviceProcessEvents": schema}, now="2024-05-01T12:00:00Z",
                           dialect="spark")
    spark_rows = [tuple(r) for r in spark.sql(compiled.sql).collect()]
    assert [r[6:] for r in spark_rows] == [(True, False, True, True, False, True),
                                          (False, False, False, False, False, False),
                                          (True, True, True, False, True, True)]
