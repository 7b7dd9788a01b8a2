"""Shared test fixtures: the project root, the shared reference data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DETECTIONS = ROOT / "detections"


def shared_data_dir() -> Path | None:
    """``$ASSAY_SHARED_DATA`` or ``../shared/data`` next to the project, if it exists."""
    env = os.environ.get("ASSAY_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "data")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared reference data folder; the test is skipped (with the reason) when it is absent."""
    found = shared_data_dir()
    if found is None:
        pytest.skip("shared reference data not found: set ASSAY_SHARED_DATA or put it at ../shared/data")
    return found


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
