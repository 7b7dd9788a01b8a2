"""`assay init`: a new detections repository whose example detection is proven out of the box."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from assay.cli.main import cli


@pytest.fixture
def new_repo(tmp_path: Path) -> Path:
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "soc-detections"), "--format", "json"])
    assert result.exit_code == 0, result.output
    written = {Path(p).relative_to(tmp_path / "soc-detections").as_posix() for p in json.loads(result.output)["files"]}
    assert {".github/workflows/assay.yml", ".gitlab-ci.yml", ".pre-commit-config.yaml", "README.md",
            "detections/T1202-indirect-command-execution/detection.yml"} <= written
    return tmp_path / "soc-detections"


def test_init_then_test_passes_from_the_new_folder(new_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(new_repo)
    runner = CliRunner()
    lint = runner.invoke(cli, ["lint", "detections/", "--format", "json"])
    assert lint.exit_code == 0, lint.output
    assert json.loads(lint.stdout)["errors"] == 0
    proof = runner.invoke(cli, ["test", "detections/", "--format", "json"])
    assert proof.exit_code == 0, proof.output
    summary = json.loads(proof.stdout)["summary"]
    assert summary["failed"] == 0 and summary["errors"] == 0 and summary["passed"] >= 20
    assert (new_repo / "build" / "proof" / "junit.xml").is_file()


def test_ci_files_are_yaml_that_install_assay_and_run_lint_and_test(new_repo: Path) -> None:
    github = yaml.safe_load((new_repo / ".github/workflows/assay.yml").read_text(encoding="utf-8"))
    steps = [step.get("run", "") for step in github["jobs"]["assay"]["steps"]]
    assert any("pip install" in run and "assay==" in run for run in steps)
    assert any(run.startswith("assay lint detections/") for run in steps)
    assert any(run.startswith("assay test detections/") and "junit" in run for run in steps)
    gitlab = yaml.safe_load((new_repo / ".gitlab-ci.yml").read_text(encoding="utf-8"))
    script = gitlab["assay"]["script"]
    assert any("pip install" in line for line in script)
    assert "assay lint detections/" in script
    assert any(line.startswith("assay test detections/") for line in script)
    assert gitlab["assay"]["artifacts"]["reports"]["junit"] == "junit.xml"
    hooks = yaml.safe_load((new_repo / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    assert {hook["id"] for hook in hooks["repos"][0]["hooks"]} == {"assay-lint", "assay-test-changed"}
    assert "{name}" not in (new_repo / "README.md").read_text(encoding="utf-8")
    assert "soc-detections" in (new_repo / "README.md").read_text(encoding="utf-8")


def test_init_never_overwrites(new_repo: Path) -> None:
    readme = new_repo / "README.md"
    readme.write_text("ours", encoding="utf-8")
    result = CliRunner().invoke(cli, ["init", str(new_repo)])
    assert result.exit_code == 2
    assert "already exists" in result.output and "README.md" in result.output
    assert readme.read_text(encoding="utf-8") == "ours"


def test_test_accepts_files_of_a_detection_as_pre_commit_passes_them(new_repo: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """pre-commit passes the changed files: two files of one detection prove it once."""
    monkeypatch.chdir(new_repo)
    folder = Path("detections/T1202-indirect-command-execution")
    result = CliRunner().invoke(cli, ["test", str(folder / "tests.yml"), str(folder / "sentinel.kql"),
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["summary"]["detections"] == 1
    lint = CliRunner().invoke(cli, ["lint", str(folder / "tests.yml"), str(folder / "detection.yml")])
    assert lint.exit_code == 0, lint.output
    assert "1 detection(s) checked" in lint.output
    assert os.path.isdir(new_repo / "build")
