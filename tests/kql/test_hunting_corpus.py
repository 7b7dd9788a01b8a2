"""Hunting-query conformance: queries written here in the style of real Sentinel / Defender hunting queries, over
the documented tables, each with the rows Kusto returns on a small hand-written dataset.

Data: ``conformance/hunting/data.yml`` (loaded as ``assay ingest --table`` loads rows). Cases:
``conformance/hunting/cases/*.yml``, each ``{id, kql, columns, rows, ordered?, sets?, watchlists?, externaldata?,
unsupported?}`` (watchlists and externaldata map names/URLs to files in ``conformance/hunting/files``). Expected rows
were worked out from Kusto's documented semantics, not copied from Assay's output. ``sets`` names dynamic columns
whose array order Kusto leaves unspecified (make_set). ``unsupported`` cases use operators Assay does not run yet:
they are strict xfails, so the day one starts to pass the marker must go.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from assay import kql
from assay.engine import DuckDBEngine
from assay.ingest.rows import load_records, resolve_table

from .conformance.compare import cell_matches, normalize_json

HERE = Path(__file__).parent / "conformance" / "hunting"
NOW = "2024-05-01T12:00:00Z"


def load_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for path in sorted((HERE / "cases").glob("*.yml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8")):
            case["file"] = path.name
            cases.append(case)
    return cases


CASES = load_cases()


def load_data(engine: DuckDBEngine) -> None:
    data = yaml.safe_load((HERE / "data.yml").read_text(encoding="utf-8"))
    for table, rows in data["tables"].items():
        summary = load_records(engine, resolve_table(table),
                               (("data.yml", index, row) for index, row in enumerate(rows, start=1)))
        assert not summary.bad and not summary.unmapped, (table, summary.bad, summary.unmapped)


@pytest.fixture(scope="module")
def hunting_engine() -> Iterator[DuckDBEngine]:
    with DuckDBEngine(None) as engine:
        load_data(engine)
        yield engine


def cell_text(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, dict | list):
        return json.dumps(cell)
    return str(cell)


def row_matches(row: tuple[Any, ...], columns: tuple[tuple[str, str], ...], expected: list[Any],
                sets: set[str]) -> bool:
    if len(row) != len(expected):
        return False
    for value, (name, kusto_type), cell in zip(row, columns, expected, strict=True):
        if name in sets and isinstance(value, list) and isinstance(cell, list):
            if sorted(map(json.dumps, normalize_json(value))) != sorted(map(json.dumps, normalize_json(cell))):
                return False
        elif not cell_matches(value, kusto_type, cell_text(cell)):
            return False
    return True


def check_case(engine: DuckDBEngine, case: dict[str, Any]) -> None:
    who = f"{case['file']}:{case['id']}"
    files = HERE / "files"
    result = kql.run(case["kql"], db=engine, now=NOW,
                     watchlists={k: files / v for k, v in (case.get("watchlists") or {}).items()},
                     externaldata={k: files / v for k, v in (case.get("externaldata") or {}).items()})
    if "columns" in case:
        assert list(result.column_names) == case["columns"], f"{who} -> columns"
    rows = list(result.rows)
    expected = case["rows"] or []
    sets = set(case.get("sets", []))
    assert len(rows) == len(expected), f"{who} -> expected {len(expected)} rows {expected}, got {rows}"
    if case.get("ordered"):
        for got, want in zip(rows, expected, strict=True):
            assert row_matches(got, result.columns, want, sets), f"{who} -> expected {want}, got {got}"
        return
    remaining = list(rows)
    for want in expected:
        for index, got in enumerate(remaining):
            if row_matches(got, result.columns, want, sets):
                remaining.pop(index)
                break
        else:
            pytest.fail(f"{who} -> expected row {want} not in {remaining}")


def _params() -> list[Any]:
    params = []
    for case in CASES:
        marks = []
        if case.get("unsupported"):
            marks.append(pytest.mark.xfail(reason=str(case["unsupported"]), strict=True))
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


@pytest.mark.parametrize("case", _params())
def test_hunting_query(hunting_engine: DuckDBEngine, case: dict[str, Any]) -> None:
    check_case(hunting_engine, case)


def test_corpus_size_and_share_that_runs() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(CASES) >= 300
    runnable = [c for c in CASES if not c.get("unsupported")]
    assert len(runnable) >= 0.85 * len(CASES)


def test_corpus_covers_the_new_tables() -> None:
    for table in ("SigninLogs", "AuditLogs", "IdentityLogonEvents", "IdentityDirectoryEvents", "EmailEvents",
                  "EmailUrlInfo", "CloudAppEvents", "OfficeActivity", "Syslog", "CommonSecurityLog",
                  "DeviceLogonEvents", "DeviceEvents", "SecurityEvent"):
        uses = [c["id"] for c in CASES if re.search(rf"\b{table}\b", c["kql"])]
        assert len(uses) >= 5, (table, uses)
