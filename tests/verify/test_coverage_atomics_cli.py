"""Coverage (by tactic, Navigator layer), Atomic Red Team stubs, the report file and the CLI surface."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml
from click.testing import CliRunner

from assay.catalog.models import ScenarioFile
from assay.cli.main import cli
from assay.errors import VerifyError
from assay.schema.attack import attack_data
from assay.verify.atomics import import_atomics
from assay.verify.coverage import coverage_by_tactic, detection_statuses, navigator_layer
from assay.verify.report import (
    REPORT_SCHEMA_VERSION,
    DetectionReport,
    FormResult,
    ProofReport,
    RunInfo,
    ScenarioResult,
    load_report,
    save_report,
)
from tests.verify.conftest import (
    KQL_CERTUTIL,
    SIGMA_CERTUTIL,
    WriteDetection,
    attack_scenario,
    benign_scenario,
)


def _detection(detection_id: str, technique: str, statuses: list[str], forms: list[str]) -> DetectionReport:
    results = [FormResult(form=form, key=form, status=status, verdict="fires", expected="fires", reason="r")  # type: ignore[arg-type]
               for form, status in zip(forms, statuses, strict=True)]
    return DetectionReport(id=detection_id, title=f"Detection {technique}", technique=technique, forms=forms,
                           scenarios=[ScenarioResult(id="own-a", title="a", kind="attack", provenance="own",
                                                     results=results)])


def _report(*detections: DetectionReport) -> ProofReport:
    report = ProofReport(run=RunInfo(started=dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC), assay_version="0.1.0"),
                         detections=list(detections))
    report.summarize()
    return report


@pytest.fixture(scope="module")
def statuses_report() -> ProofReport:
    return _report(
        _detection("11111111-1111-4111-8111-111111111111", "T1218.003", ["pass", "pass"], ["sigma", "kql"]),
        _detection("22222222-2222-4222-8222-222222222222", "T1059.001", ["pass", "fail"], ["sigma", "kql"]),
        _detection("33333333-3333-4333-8333-333333333333", "T1105", ["pass", "skip"], ["sigma", "kql"]),
    )


def test_proof_status_per_detection(statuses_report: ProofReport) -> None:
    assert [d.proof_status for d in statuses_report.detections] == ["proven", "failing", "partial"]
    assert statuses_report.summary.proof == {"proven": 1, "failing": 1, "partial": 1}


def test_coverage_by_tactic_follows_the_matrix_order(statuses_report: ProofReport) -> None:
    rows = coverage_by_tactic(detection_statuses(statuses_report))
    attack = attack_data()
    assert [r.id for r in rows] == [t.id for t in attack.tactics_in_order()]
    by_name = {r.shortname: r for r in rows}
    assert by_name["defense-evasion"].techniques == {"T1218.003": "proven"}
    assert by_name["execution"].techniques == {"T1059.001": "failing"}
    assert by_name["command-and-control"].count("partial") == 1
    assert all(r.techniques_total > 0 for r in rows)


def _check_layer_format(layer: dict) -> None:
    """The Navigator layer format 4.5 (attack-navigator layers/spec/v4.5/layerformat.md), property by property."""
    assert isinstance(layer["name"], str) and layer["domain"] in ("enterprise-attack", "mobile-attack", "ics-attack")
    versions = layer["versions"]
    assert versions["layer"] == "4.5"
    assert tuple(int(p) for p in versions["navigator"].split(".")) >= (4, 9, 0)
    assert set(layer["filters"]["platforms"]) <= {"PRE", "Windows", "Linux", "macOS", "Network", "AWS", "GCP",
                                                  "Azure", "Azure AD", "Office 365", "SaaS"}
    assert layer["sorting"] in (0, 1, 2, 3) and isinstance(layer["hideDisabled"], bool)
    layout = layer["layout"]
    assert layout["layout"] in ("side", "flat", "mini")
    assert layout["aggregateFunction"] in ("average", "min", "max", "sum")
    assert layout["expandedSubtechniques"] in ("none", "all", "annotated")
    gradient = layer["gradient"]
    assert len(gradient["colors"]) >= 2 and gradient["maxValue"] > gradient["minValue"]
    for item in layer["legendItems"]:
        assert isinstance(item["label"], str) and re.fullmatch(r"#[0-9a-fA-F]{6}", item["color"])
    for entry in layer["techniques"]:
        assert isinstance(entry["techniqueID"], str)
        assert isinstance(entry.get("score", 0), int | float) and isinstance(entry.get("enabled", True), bool)
        for meta in entry.get("metadata", []):
            assert isinstance(meta["name"], str) and isinstance(meta["value"], str)
        for link in entry.get("links", []):
            assert isinstance(link["label"], str) and re.match(r"^[a-z]+://", link["url"])
    for key in ("showTacticRowBackground", "selectTechniquesAcrossTactics", "selectSubtechniquesWithParent",
                "selectVisibleTechniques"):
        assert isinstance(layer[key], bool)


def test_navigator_layer_is_a_valid_4_5_layer(statuses_report: ProofReport) -> None:
    layer = navigator_layer(statuses_report)
    _check_layer_format(json.loads(json.dumps(layer)))
    assert layer["versions"]["layer"] == "4.5" and layer["domain"] == "enterprise-attack"
    assert re.fullmatch(r"\d+", layer["versions"]["attack"])
    tactics = {t.shortname for t in attack_data().tactics_in_order()}
    scored = {t["techniqueID"]: t for t in layer["techniques"] if "score" in t}
    assert set(scored) == {"T1218.003", "T1059.001", "T1105"}
    for entry in layer["techniques"]:
        assert re.fullmatch(r"T\d{4}(\.\d{3})?", entry["techniqueID"]) and entry["tactic"] in tactics
        if "color" in entry:
            assert re.fullmatch(r"#[0-9a-f]{6}", entry["color"])
    assert scored["T1218.003"]["score"] > scored["T1105"]["score"] > scored["T1059.001"]["score"]
    # The sub-technique's parent is shown expanded so the scored cell is visible.
    assert any(t["techniqueID"] == "T1218" and t.get("showSubtechniques") for t in layer["techniques"])
    assert [item["label"] for item in layer["legendItems"]] == [
        "proven in every form", "proven in some forms", "untested", "failing"]


def test_catalog_detections_missing_from_the_report_are_untested(write_detection: WriteDetection) -> None:
    from assay.catalog.loader import load_catalog

    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-urlcache"),
                             kql=KQL_CERTUTIL.format(needle="-urlcache"))
    catalog = load_catalog([folder]).detections
    layer = navigator_layer(None, catalog)
    entry = next(t for t in layer["techniques"] if t["techniqueID"] == "T1105")
    assert entry["score"] == 20 and "untested" in entry["comment"]


def test_atomics_import_writes_loadable_stubs_for_both_cmstp_tests(shared_data: Path) -> None:
    text = import_atomics(shared_data / "atomic-red-team" / "atomics", "T1218.003")
    document = yaml.safe_load(text)
    scenarios = ScenarioFile.model_validate(document).scenarios
    assert {s.provenance.atomic.guid for s in scenarios if s.provenance.atomic} == {
        "34e63321-9683-496b-bbc1-7566bc55e624", "748cb4f6-2fb3-4e97-b7ad-b22635a09ab0"}
    uac = next(s for s in scenarios if s.title == "CMSTP Executing UAC Bypass")
    assert uac.activity is not None
    executor, cmstp = uac.activity.processes
    assert executor.image.endswith("\\cmd.exe") and executor.parent_image and \
        executor.parent_image.endswith("\\powershell.exe")
    assert cmstp.image == "C:\\Windows\\System32\\cmstp.exe" and cmstp.parent == executor.id
    assert cmstp.command_line == 'cmstp.exe /s "C:\\AtomicRedTeam\\atomics\\T1218.003\\src\\T1218.003_uacbypass.inf" /au'
    assert "#{" not in text


def test_atomics_executor_and_elevation_become_parent_and_integrity(tmp_path: Path) -> None:
    folder = tmp_path / "atomics" / "T1547.001"
    folder.mkdir(parents=True)
    (folder / "T1547.001.yaml").write_text(yaml.safe_dump({
        "attack_technique": "T1547.001",
        "display_name": "Registry Run Keys",
        "atomic_tests": [{
            "name": "Reg Key Run",
            "auto_generated_guid": "e55be3fd-3521-4610-9d1a-e210e42dcf05",
            "supported_platforms": ["windows"],
            "input_arguments": {"command_to_execute": {"type": "path", "default": "C:\\Path\\AtomicRedTeam.exe"}},
            "executor": {"name": "powershell", "elevation_required": True,
                         "command": 'reg.exe ADD HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run /V "Atomic '
                                    'Red Team" /t REG_SZ /F /D "#{command_to_execute}"\n'},
        }, {"name": "Linux only", "auto_generated_guid": "0a8d3c1e-3a51-4a9e-9d6a-6c1bb6f3c0d2",
            "supported_platforms": ["linux"], "executor": {"name": "sh", "command": "echo"}}],
    }), encoding="utf-8")
    scenarios = yaml.safe_load(import_atomics(tmp_path / "atomics", "T1547.001"))["scenarios"]
    assert len(scenarios) == 1  # the Linux test is left out
    executor, reg = scenarios[0]["activity"]["processes"]
    assert executor["image"].endswith("\\powershell.exe") and executor["integrity"] == "High"
    assert reg["image"] == "C:\\Windows\\System32\\reg.exe" and '"C:\\Path\\AtomicRedTeam.exe"' in reg["command_line"]


def test_load_report_names_the_problem(tmp_path: Path) -> None:
    broken = tmp_path / "report.json"
    broken.write_text('{"schema_version": 1,\n "run": ', encoding="utf-8")
    with pytest.raises(VerifyError) as caught:
        load_report(broken)
    assert caught.value.span is not None and caught.value.span.line == 2
    broken.write_text(json.dumps({"schema_version": REPORT_SCHEMA_VERSION + 1, "run": {}}), encoding="utf-8")
    with pytest.raises(VerifyError, match="schema version"):
        load_report(broken)
    with pytest.raises(VerifyError, match="cannot read"):
        load_report(tmp_path / "absent.json")


def test_cli_test_writes_json_and_junit_and_coverage_reads_them(write_detection: WriteDetection,
                                                               tmp_path: Path) -> None:
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-urlcache"),
                             kql=KQL_CERTUTIL.format(needle="-urlcache"),
                             scenarios=[attack_scenario(), benign_scenario()])
    out = tmp_path / "proof"
    runner = CliRunner()
    result = runner.invoke(cli, ["test", str(folder), "--out", str(out), "--telemetry", "sysmon"])
    assert result.exit_code == 0, result.output
    assert "own-urlcache-download" in result.output and "0 failed" in result.output
    report = load_report(out / "report.json")
    assert report.summary.ok and report.run.forms == ["sigma", "kql", "converted"]
    suites = ElementTree.parse(out / "junit.xml").getroot()
    assert suites.get("failures") == "0" and int(suites.get("tests", "0")) == report.summary.results
    layer_path = tmp_path / "layer.json"
    coverage = runner.invoke(cli, ["coverage", str(folder), "--report", str(out / "report.json"),
                                   "--navigator", str(layer_path), "--format", "json"])
    assert coverage.exit_code == 0, coverage.output
    data = json.loads(coverage.output)
    assert data["detections"][0]["status"] == "proven"
    assert json.loads(layer_path.read_text(encoding="utf-8"))["techniques"][0]["techniqueID"] == "T1105"


def test_cli_fails_on_a_failing_expectation_and_prints_junit(write_detection: WriteDetection,
                                                            tmp_path: Path) -> None:
    wrong = attack_scenario({"sigma": "does-not-fire", "kql": "fires"})
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-urlcache"),
                             kql=KQL_CERTUTIL.format(needle="-urlcache"), scenarios=[wrong])
    result = CliRunner().invoke(cli, ["test", str(folder), "--form", "sigma", "--telemetry", "sysmon",
                                      "--format", "junit", "--out", str(tmp_path / "proof")])
    assert result.exit_code == 1
    failures = ElementTree.fromstring(result.output).findall(".//failure")
    assert failures and "expected does-not-fire, got fires" in (failures[0].get("message") or "")


@pytest.mark.parametrize("args", [
    ["test", "--now", "yesterday"],
    ["test", "--scenario", "own-urlcache-dowload"],
    ["test", "no/such/catalog"],
    ["atomics", "import", "no-such-folder", "--technique", "T1218.003"],
    ["atomics", "import", ".", "--technique", "../../etc/passwd"],
])
def test_cli_usage_errors_exit_2_without_a_traceback(args: list[str], write_detection: WriteDetection) -> None:
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-urlcache"),
                             kql=KQL_CERTUTIL.format(needle="-urlcache"), scenarios=[attack_scenario()])
    full = [*args, str(folder)] if args[0] == "test" else args
    result = CliRunner().invoke(cli, full)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    if "--scenario" in args:
        assert "did you mean 'own-urlcache-download'" in result.output


def test_cli_atomics_import_writes_a_file_and_refuses_to_overwrite(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "stubs.yml"
    args = ["atomics", "import", str(shared_data / "atomic-red-team" / "atomics"), "--technique", "T1218.003",
            "--out", str(out)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0 and "2 scenario stub(s)" in first.output
    assert ScenarioFile.model_validate(yaml.safe_load(out.read_text(encoding="utf-8")))
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 2 and "not overwriting" in second.output


def test_save_report_recomputes_the_summary(statuses_report: ProofReport, tmp_path: Path) -> None:
    statuses_report.summary.passed = 99
    loaded = load_report(save_report(statuses_report, tmp_path / "r.json"))
    assert loaded.summary.passed == 4 and loaded.summary.failed == 1 and loaded.summary.skipped == 1


def test_atomics_import_handles_the_whole_atomic_red_team_corpus(shared_data: Path) -> None:
    """Every eighth technique of the 341 (all 341 take ~10 s; the run covers executors, arguments, platforms)."""
    root = shared_data / "atomic-red-team" / "atomics"
    techniques = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name.startswith("T"))[::8]
    stubs = 0
    for technique in techniques:
        try:
            text = import_atomics(root, technique)
        except VerifyError as error:
            assert "no Windows atomic tests" in error.message, (technique, error)
            continue
        scenarios = ScenarioFile.model_validate(yaml.safe_load(text)).scenarios
        assert all(s.provenance.atomic and s.provenance.atomic.technique == technique for s in scenarios)
        stubs += len(scenarios)
    assert stubs > 100


def test_cli_baseline_lists_regressions(write_detection: WriteDetection, tmp_path: Path) -> None:
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-urlcache"),
                             kql=KQL_CERTUTIL.format(needle="-urlcache"), scenarios=[attack_scenario()])
    out = tmp_path / "proof"
    args = ["test", str(folder), "--form", "sigma", "--telemetry", "sysmon", "--out", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    rule = folder / "rule.sigma.yml"
    rule.write_text(rule.read_text(encoding="utf-8").replace("'-urlcache'", "'-verifyctl'"), encoding="utf-8")
    from assay.catalog import clear_cache

    clear_cache()
    result = CliRunner().invoke(cli, [*args, "--baseline", str(out / "report.json")])
    assert result.exit_code == 1
    assert "1 regression(s)" in result.output
    assert "REGRESSION own-urlcache-download [sigma[sysmon:1]]: pass -> fail" in result.output
