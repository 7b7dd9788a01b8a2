"""Fixtures for catalog tests: a private copy of the CMSTP detection to break in controlled ways."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assay.catalog import clear_cache
from tests.conftest import DETECTIONS

CMSTP = DETECTIONS / "T1218.003-cmstp"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def cmstp_copy(tmp_path: Path) -> Path:
    """A copy of the CMSTP detection under tmp_path/catalog/T1218.003-cmstp."""
    target = tmp_path / "catalog" / CMSTP.name
    shutil.copytree(CMSTP, target)
    return target


Edit = Callable[[str, str, str], Path]


@pytest.fixture
def edit(cmstp_copy: Path) -> Edit:
    """Replace ``old`` by ``new`` (first occurrence, must exist) in one file of the copied detection."""

    def apply(file_name: str, old: str, new: str) -> Path:
        path = cmstp_copy / file_name
        text = path.read_text(encoding="utf-8")
        assert old in text, f"fixture drift: {old!r} not in {file_name}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return path

    return apply


def line_of(path: Path, needle: str) -> int:
    """1-based line number of the first line containing ``needle``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")
