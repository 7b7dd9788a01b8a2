"""`--format sarif`: SARIF 2.1.0 logs of lint findings and proof failures, each with file, line and column."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sarif_pydantic import Sarif

from assay.cli.main import cli
from tests.conftest import DETECTIONS


def _example(tmp_path: Path) -> Path:
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "repo")])
    assert result.exit_code == 0, result.output
    return tmp_path / "repo" / "detections" / "T1202-indirect-command-execution"


def _sarif_log(args: list[str], exit_code: int) -> dict[str, Any]:
    """Run an assay command with --format sarif; the log it prints, checked against SARIF 2.1.0's object model."""
    result = CliRunner().invoke(cli, [*args, "--format", "sarif"])
    assert result.exit_code == exit_code, result.output
    log: dict[str, Any] = json.loads(result.stdout)
    Sarif.model_validate(log)
    return log


def test_lint_sarif_locates_each_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _example(tmp_path)
    detection = folder / "detection.yml"
    text = detection.read_text(encoding="utf-8")
    detection.write_text(text.replace("severity: medium", "severity: medium\nseverty: high"), encoding="utf-8")
    monkeypatch.chdir(tmp_path / "repo")
    log = _sarif_log(["lint", "detections/"], 1)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    run = log["runs"][0]
    assert run["tool"]["driver"]["name"] == "assay lint"
    [finding] = [r for r in run["results"] if "severty" in r["message"]["text"]]
    assert finding["level"] == "error" and finding["ruleId"] == "schema"
    location = finding["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "detections/T1202-indirect-command-execution/detection.yml"
    expected_line = text.splitlines().index("severity: medium") + 2
    assert location["region"]["startLine"] == expected_line and location["region"]["startColumn"] == 1
    assert {rule["id"] for rule in run["tool"]["driver"]["rules"]} >= {"schema"}


def test_test_sarif_points_at_the_failing_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _example(tmp_path)
    tests = folder / "tests.yml"
    text = tests.read_text(encoding="utf-8")
    # Break one benign scenario so the rule fires on it: forfiles that runs a payload, not `cmd /c del`.
    tests.write_text(text.replace('/c "cmd /c del @path"', '/c "C:\\Users\\Public\\x.exe"'), encoding="utf-8")
    monkeypatch.chdir(tmp_path / "repo")
    log = _sarif_log(["test", "detections/"], 1)
    results = log["runs"][0]["results"]
    assert results and all(r["ruleId"] == "proof-failed" for r in results)
    assert all("fp-forfiles-log-cleanup" in r["message"]["text"] for r in results)
    lines = text.splitlines()
    scenario_line = next(i for i, line in enumerate(lines, 1) if "id: fp-forfiles-log-cleanup" in line)
    region = results[0]["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == scenario_line
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("tests.yml")


def test_clean_catalog_gives_an_empty_sarif_run(tmp_path: Path) -> None:
    shutil.copytree(DETECTIONS / "T1218.003-cmstp", tmp_path / "T1218.003-cmstp")
    log = _sarif_log(["lint", str(tmp_path)], 0)
    assert [r for r in log["runs"][0]["results"] if r["level"] == "error"] == []
