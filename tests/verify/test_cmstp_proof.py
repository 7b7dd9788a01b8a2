"""The CMSTP detection is fully proven, and weakened copies of it fail: the scenarios have teeth.

The full proof runs once per module. Mutations run only the form they weaken (and Sigma only on Sysmon) to stay
fast; each must turn at least one specific scenario red.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from assay.catalog.loader import load_detection
from assay.cli.main import cli
from assay.verify.report import ProofReport
from assay.verify.runner import RunOptions, run_paths
from tests.conftest import DETECTIONS

CMSTP = DETECTIONS / "T1218.003-cmstp"
ATOMIC_GUIDS = {"34e63321-9683-496b-bbc1-7566bc55e624", "748cb4f6-2fb3-4e97-b7ad-b22635a09ab0"}


@pytest.fixture(scope="module")
def proof() -> ProofReport:
    return run_paths([CMSTP])


def test_every_scenario_passes_in_every_form(proof: ProofReport) -> None:
    detection = proof.detections[0]
    failing = [(s.id, r.key, r.reason) for s in detection.scenarios for r in s.results
               if r.status in ("fail", "error")]
    assert not failing
    assert not detection.errors
    assert detection.forms == ["sigma", "kql", "converted:microsoft-xdr", "converted:sqlite"]
    assert proof.summary.ok and proof.summary.disagreements == 0
    for scenario in detection.scenarios:
        if scenario.provenance == "recording" and all(r.status == "skip" for r in scenario.results):
            continue  # shared data absent: skipped with the reason
        passed_forms = {r.form for r in scenario.results if r.status == "pass"}
        assert passed_forms == set(detection.forms), scenario.id


def test_both_real_atomic_tests_and_the_benign_scenarios_are_covered(proof: ProofReport) -> None:
    detection = proof.detections[0]
    atomic = [s for s in detection.scenarios if s.provenance == "atomic"]
    assert {s.provenance_detail.split()[4] for s in atomic if s.provenance_detail} == ATOMIC_GUIDS
    benign = [s for s in detection.scenarios if s.kind == "benign"]
    assert len([s for s in benign if s.provenance == "false_positive"]) >= 4
    for scenario in atomic:
        assert all(r.verdict == "fires" for r in scenario.results if r.status == "pass"), scenario.id


def test_known_differences_are_declared_and_pinned_down(proof: ProofReport) -> None:
    findings = {f.scenario: f for f in proof.detections[0].agreement}
    su_switch = findings["own-single-user-install-su-switch"]
    assert su_switch.status == "known" and su_switch.declared
    assert su_switch.operator and "contains '/s' is true" in su_switch.operator and "'/s' is false" in \
        su_switch.operator
    renamed = findings["own-renamed-cmstp-public-folder"]
    assert renamed.status == "known" and renamed.verdicts["kql"] == "does-not-fire"


def test_the_detection_is_proven(proof: ProofReport) -> None:
    assert proof.detections[0].proof_status == "proven"


# ----------------------------------------------------------------------------------------------------------------
# Mutations
# ----------------------------------------------------------------------------------------------------------------

Mutate = Callable[[str, str, str], Path]


@pytest.fixture
def mutant(tmp_path: Path) -> tuple[Path, Mutate]:
    target = tmp_path / "catalog" / CMSTP.name
    shutil.copytree(CMSTP, target)

    def mutate(file_name: str, old: str, new: str) -> Path:
        path = target / file_name
        text = path.read_text(encoding="utf-8")
        assert old in text, f"the CMSTP detection changed: {old!r} not in {file_name}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return path

    return target, mutate


def _failed(report: ProofReport) -> set[tuple[str, str]]:
    return {(s.id, r.form) for s in report.detections[0].scenarios for r in s.results if r.status == "fail"}


def test_kql_without_the_cmd_parent_flag_fails(mutant: tuple[Path, Mutate]) -> None:
    folder, mutate = mutant
    mutate("sentinel.kql", 'has_any ("cmd.exe", "powershell.exe"', 'has_any ("powershell.exe"')
    report = run_paths([folder], RunOptions(forms=("kql",), scenarios=(
        "atomic-remote-scriptlet", "atomic-uac-bypass-inf", "own-silent-temp-dropper")))
    # Both Atomic tests run cmstp.exe from cmd.exe with the INF under C:\AtomicRedTeam: only the parent flag fires.
    assert {("atomic-remote-scriptlet", "kql"), ("atomic-uac-bypass-inf", "kql")} <= _failed(report)
    assert not report.summary.ok


def test_kql_without_the_au_switch_fails(mutant: tuple[Path, Mutate], shared_data: Path) -> None:
    folder, mutate = mutant
    mutate("sentinel.kql", 'has_any ("/s", "/au")', 'has_any ("/s")')
    report = run_paths([folder], RunOptions(forms=("kql",), shared_data=shared_data,
                                            scenarios=("rec-winpwnage-ini-uacbypass",)))
    # The WinPwnage recording runs "cmstp.exe /au c:\users\...\tmp.ini": /au is its only auto-close switch.
    assert ("rec-winpwnage-ini-uacbypass", "kql") in _failed(report)


def test_sigma_without_the_parent_selection_fails_through_the_cli(mutant: tuple[Path, Mutate],
                                                                   tmp_path: Path) -> None:
    folder, mutate = mutant
    mutate("rule.sigma.yml", " or selection_suspicious_parent)", ")")
    result = CliRunner().invoke(cli, ["test", str(folder), "--form", "sigma", "--telemetry", "sysmon",
                                      "--scenario", "atomic-remote-scriptlet", "--out", str(tmp_path / "proof"),
                                      "--format", "json"])
    assert result.exit_code == 1, result.output
    report = ProofReport.model_validate_json(result.output)
    assert ("atomic-remote-scriptlet", "sigma") in _failed(report)


def test_sigma_without_the_auto_close_selection_fires_on_benign_installs(mutant: tuple[Path, Mutate]) -> None:
    folder, mutate = mutant
    mutate("rule.sigma.yml", "selection_cmstp and selection_auto_close and", "selection_cmstp and")
    benign = tuple(s.id for s in load_detection(folder).benign_scenarios())
    report = run_paths([folder], RunOptions(forms=("sigma",), sigma_telemetry=("sysmon",), scenarios=benign))
    benign_failures = {scenario for scenario, form in _failed(report) if scenario.startswith("fp-")}
    assert benign_failures, "a benign install without /s must now fire and fail"
