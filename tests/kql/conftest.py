"""Fixtures for the KQL tests: one in-memory DuckDB engine shared by the whole folder (fast), fixed now()."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from assay.engine import DuckDBEngine

FIXED_NOW = datetime(2024, 5, 1, 12, 0, 0)


@pytest.fixture(scope="session")
def engine() -> Iterator[DuckDBEngine]:
    with DuckDBEngine(None) as shared:
        yield shared
