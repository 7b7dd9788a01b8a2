"""``assay new``: a scaffolded detection loads, lints clean, carries every Windows atomic test of the technique and
uses the shared fixtures; nothing is overwritten."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from assay.catalog import clear_cache, load_detection
from assay.catalog.lint import lint_catalog
from assay.cli.main import cli
from assay.verify.atomics import atomics_file, load_atomic_tests
from assay.verify.scaffold import scaffold_detection
from tests.conftest import ROOT


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    folder = tmp_path / "detections"
    shutil.copytree(ROOT / "detections" / "_shared", folder / "_shared")
    clear_cache()
    return folder


def test_a_scaffold_has_every_windows_atomic_test_and_lints_clean(catalog: Path, shared_data: Path) -> None:
    atomics = shared_data / "atomic-red-team" / "atomics"
    folder = scaffold_detection("t1003.001", catalog, atomics_dir=atomics)
    assert folder.name == "T1003.001-lsass-memory"
    loaded = load_detection(folder)
    assert loaded.detection.technique == "T1003.001" and "LSASS Memory" in loaded.detection.title
    expected = {t.guid for t in load_atomic_tests(atomics_file(atomics, "T1003.001")) if "windows" in t.platforms}
    guids = {s.provenance.atomic.guid for s in loaded.scenarios if s.provenance.atomic is not None}
    assert guids == expected and len(guids) > 5
    first = next(s for s in loaded.scenarios if s.activity is not None)
    assert first.activity is not None and first.activity.host.name == "WS-LAB-0107"  # the ws-lab fixture
    tests = yaml.safe_load((folder / "tests.yml").read_text(encoding="utf-8"))
    assert tests["defaults"] == {"host": "ws-lab", "user": "art.operator"}
    assert any(s.kind == "benign" for s in loaded.scenarios)
    report = lint_catalog(folder, shared=shared_data)
    assert not [i for i in report.issues if i.severity == "error"], [i.message for i in report.issues]
    rule = (folder / "rule.sigma.yml").read_text(encoding="utf-8")
    assert "attack.credential-access" in rule and "attack.t1003.001" in rule


def test_without_fixtures_or_atomics_the_scaffold_is_self_contained(tmp_path: Path) -> None:
    folder = scaffold_detection("T1059.001", tmp_path / "elsewhere", slug="encoded powershell")
    assert folder.name == "T1059.001-encoded-powershell"
    loaded = load_detection(folder)
    assert len(loaded.scenarios) == 1 and loaded.scenarios[0].activity is not None
    assert loaded.scenarios[0].activity.user.name == "art.operator"


def test_the_cli_scaffolds_refuses_to_overwrite_and_rejects_unknown_techniques(catalog: Path,
                                                                               shared_data: Path) -> None:
    runner = CliRunner()
    atomics = str(shared_data / "atomic-red-team" / "atomics")
    result = runner.invoke(cli, ["new", "T1218.011", "--into", str(catalog), "--atomics", atomics,
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["scenarios"] > 1 and Path(created["folder"]).is_dir()
    again = runner.invoke(cli, ["new", "T1218.011", "--into", str(catalog), "--atomics", atomics])
    assert again.exit_code == 2 and "not overwriting" in again.output
    unknown = runner.invoke(cli, ["new", "T9999", "--into", str(catalog)])
    assert unknown.exit_code == 2 and "not an ATT&CK" in unknown.output
