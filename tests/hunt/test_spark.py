"""--engine spark: the same compiled SQL on Spark (local mode) over ingestion's Parquet gives DuckDB's timeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.engine.spark_engine import pyspark_available
from assay.hunt.rules import load_hunt_rules
from assay.hunt.run import hunt
from tests.hunt.test_hunt import EXPECTED, hit_keys

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def spark_ready() -> None:
    reason = pyspark_available()
    if reason is not None:
        pytest.skip(f"Spark not available: {reason}")


def test_spark_timeline_equals_duckdb(spark_ready: None, case_logs: Path, rules_dir: Path, cache_dir: Path,
                                      tmp_path: Path) -> None:
    rule_set = load_hunt_rules([rules_dir], cache_dir=cache_dir)
    duckdb_result = hunt([case_logs], rule_set, mode="fast", workers=1)
    spark_result = hunt([case_logs], rule_set, mode="spark", spark_master="local[1]", work_dir=tmp_path / "parquet")
    assert hit_keys(spark_result) == EXPECTED
    assert [h.as_dict() for h in spark_result.hits] == [h.as_dict() for h in duckdb_result.hits]
    assert spark_result.events == duckdb_result.events
    assert (tmp_path / "parquet" / "RawEvents").is_dir()  # ingestion's Parquet is what Spark read


def test_spark_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from assay.engine.spark_engine import SparkEngine
    from assay.errors import EngineError

    real_import = builtins.__import__

    def no_pyspark(name: str, *args: object, **kwargs: object) -> object:
        if name == "pyspark" or name.startswith("pyspark."):
            raise ImportError("No module named 'pyspark'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_pyspark)
    with pytest.raises(EngineError) as caught:
        SparkEngine("local[1]")
    assert "pip install 'assay[spark]'" in str(caught.value)
