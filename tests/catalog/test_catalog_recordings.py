"""The whole catalog hunted over real attack recordings: the generated table is current, and no detection is
noisy on recordings it does not claim."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.shared_data

#: A detection may fire on at most this share of the corpus's recordings that none of its scenarios names.
MAX_UNEXPECTED_SHARE = 0.03
#: Detections whose unclaimed hits are the technique itself, with why (the table still lists them as unexpected).
NOISE_EXEMPT = {
    "T1070.001-security-log-cleared": "the corpus's author cleared the Security log before recording many samples: "
                                      "their first event is a real 1102, which this detection rightly reports",
}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_recordings_table", ROOT / "scripts" / "gen_recordings_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hunted(shared_data: Path) -> tuple[ModuleType, list[Any], int]:
    generator = _generator()
    rows, total = generator.hunt_catalog(shared_data)
    return generator, rows, total


def test_recordings_page_is_current(hunted: tuple[ModuleType, list[Any], int]) -> None:
    generator, rows, total = hunted
    assert total >= 200
    assert generator.render(rows, total) == generator.OUT.read_text(encoding="utf-8"), \
        "docs/catalog-recordings.md is stale: run python scripts/gen_recordings_table.py"


def test_no_detection_is_noisy_on_recordings_it_does_not_claim(hunted: tuple[ModuleType, list[Any], int]) -> None:
    _, rows, total = hunted
    noisy = [f"{row.folder} fires on {len(row.unexpected)} recordings no scenario names: {row.unexpected}"
             for row in rows if len(row.unexpected) > MAX_UNEXPECTED_SHARE * total and row.folder not in NOISE_EXEMPT]
    assert not noisy, "\n".join(noisy)


def test_recordings_named_by_scenarios_are_found_by_the_hunt(hunted: tuple[ModuleType, list[Any], int]) -> None:
    """A recording scenario proves a detection on its file through `assay test`; the hunt over the same file must
    agree for the evtx recordings (JSON recordings are outside the hunted corpus)."""
    _, rows, _ = hunted
    missed = [f"{row.folder}: {name}" for row in rows if not row.correlation for name in row.missed
              if name.endswith(".evtx") and not name.startswith("cmstp/")]
    assert not missed, "recording scenarios whose recording the hunt does not fire on:\n" + "\n".join(missed)
