"""The hunting corpus on Spark: ``assay kql --engine spark`` over the Parquet tables ``assay ingest`` writes gives
the rows DuckDB gives (and the corpus expects), for a set of queries that covers the operator families.

A Spark session takes a minute to start on the 2-core CI machine, so this is opt-in:
``ASSAY_SPARK_TESTS=1 pytest -m spark tests/kql/test_hunting_spark.py``. One session serves every case.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assay import kql
from assay.engine import DuckDBEngine
from assay.ingest.pipeline import write_parquet
from assay.kql.on_spark import run_on_spark

from .test_hunting_corpus import CASES, NOW, load_data, row_matches

#: Cases run on Spark: joins, summarize/bin, dynamic access, mv-expand, parse/extract, unions, lets, lookups.
SPARK_CASES = [
    "signin-failures-by-user-1d", "signin-success-after-failures", "signin-users-in-several-countries",
    "signin-result-types-ordered", "signin-failures-per-hour", "signin-apps-per-user", "signin-failure-rate",
    "signin-latest-per-user-arg-max", "signin-case-outcome", "audit-role-assignments-with-role-name",
    "audit-consent-then-credentials", "audit-mv-expand-targets", "audit-lookup-actor-country",
    "identity-time-generated-spelling", "identity-spray-from-one-source", "identity-failing-accounts-not-in-cloud",
    "email-urls-of-lookalike-sender", "email-union-messages-clicked", "cloudapp-inbox-rule-delete",
    "office-client-ip-without-port", "syslog-invalid-users-parse", "syslog-ssh-failures-by-source",
    "cef-bytes-per-source", "device-rdp-bruteforce-success", "device-defender-and-windows-failures",
    "device-failure-reason-has-is-term-based", "securityevent-union-withsource", "cross-toscalar-share",
    "cross-allowlist-datatable-leftanti", "cross-range-hours",
]
BY_ID = {case["id"]: case for case in CASES}
SPARK_WANTED = os.environ.get("ASSAY_SPARK_TESTS") == "1"


def test_spark_cases_are_in_the_corpus_and_runnable() -> None:
    for case_id in SPARK_CASES:
        assert case_id in BY_ID and not BY_ID[case_id].get("unsupported"), case_id


@pytest.fixture(scope="module")
def spark_tables(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path, DuckDBEngine]]:
    if not SPARK_WANTED:
        pytest.skip("Spark run is opt-in (JVM start > 1 min): set ASSAY_SPARK_TESTS=1")
    pytest.importorskip("pyspark")
    from assay.engine.spark_engine import SparkEngine

    folder = tmp_path_factory.mktemp("parquet")
    duck = DuckDBEngine(None)
    load_data(duck)
    write_parquet(duck, folder)
    engine = SparkEngine("local[1]")
    yield engine, folder, duck
    engine.close()
    duck.close()


def _same_rows(left: list[tuple[Any, ...]], right: list[tuple[Any, ...]]) -> bool:
    def key(row: tuple[Any, ...]) -> str:
        return repr(tuple(round(v, 6) if isinstance(v, float) else sorted(map(repr, v)) if isinstance(v, list)
                          else v for v in row))
    return sorted(map(key, left)) == sorted(map(key, right))


@pytest.mark.spark
@pytest.mark.parametrize("case_id", SPARK_CASES)
def test_spark_gives_the_duckdb_rows(spark_tables: tuple[Any, Path, DuckDBEngine], case_id: str) -> None:
    engine, folder, duck = spark_tables
    case = BY_ID[case_id]
    on_spark = run_on_spark(case["kql"], engine, folder, now=NOW)
    on_duckdb = kql.run(case["kql"], db=duck, now=NOW)
    assert on_spark.column_names == on_duckdb.column_names
    assert _same_rows(list(on_spark.rows), list(on_duckdb.rows)), f"{case_id}: spark {on_spark.rows} " \
                                                                   f"duckdb {on_duckdb.rows}"
    # and both are the rows Kusto gives (the corpus' expectation)
    sets = set(case.get("sets", []))
    remaining = list(on_spark.rows)
    for want in case["rows"]:
        match = next((i for i, got in enumerate(remaining) if row_matches(got, on_spark.columns, want, sets)), None)
        assert match is not None, f"{case_id}: expected {want} in {remaining}"
        remaining.pop(match)
