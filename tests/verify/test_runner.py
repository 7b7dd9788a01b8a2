"""The runner on detections written for the purpose: agreeing, disagreeing, scoring, failing, recordings."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from assay.verify.junit import junit_xml
from assay.verify.report import ProofReport, load_report, save_report
from assay.verify.runner import RunOptions, run_paths
from tests.conftest import DETECTIONS
from tests.verify.conftest import (
    KQL_CERTUTIL,
    KQL_CERTUTIL_SCORING,
    SIGMA_CERTUTIL,
    WriteDetection,
    attack_scenario,
    benign_scenario,
)


def _results(report: ProofReport, scenario: str, form: str | None = None) -> list:
    detection = report.detections[0]
    found = next(s for s in detection.scenarios if s.id == scenario)
    return [r for r in found.results if form is None or r.form == form]


@pytest.fixture(scope="module")
def agreeing_report(tmp_path_factory: pytest.TempPathFactory) -> ProofReport:
    """One run shared by the tests below: the agreeing certutil detection in every form."""
    import yaml

    from tests.verify.conftest import detection_yaml

    folder = tmp_path_factory.mktemp("agree") / "T1105-certutil"
    folder.mkdir()
    (folder / "detection.yml").write_text(yaml.safe_dump(detection_yaml()), encoding="utf-8")
    (folder / "rule.sigma.yml").write_text(SIGMA_CERTUTIL.format(needle="-urlcache"), encoding="utf-8")
    (folder / "sentinel.kql").write_text(KQL_CERTUTIL.format(needle="-urlcache"), encoding="utf-8")
    (folder / "tests.yml").write_text(yaml.safe_dump({"scenarios": [attack_scenario(), benign_scenario()]}),
                                      encoding="utf-8")
    return run_paths([folder])


def test_every_form_runs_on_every_route_and_passes(agreeing_report: ProofReport) -> None:
    detection = agreeing_report.detections[0]
    assert detection.forms == ["sigma", "kql", "converted:microsoft-xdr", "converted:sqlite"]
    attack = _results(agreeing_report, "own-urlcache-download")
    routes = {r.key for r in attack}
    assert {"sigma[sysmon:1]", "sigma[security:4688]", "sigma[DeviceProcessEvents]", "kql",
            "converted:microsoft-xdr", "converted:sqlite"} <= routes
    assert all(r.status == "pass" and r.verdict == "fires" for r in attack), [(r.key, r.reason) for r in attack]
    benign = _results(agreeing_report, "fp-hashfile-installer")
    assert benign and all(r.status == "pass" and r.verdict == "does-not-fire" for r in benign)
    assert detection.proof_status == "proven"
    assert agreeing_report.summary.ok and agreeing_report.summary.failed == 0


def test_evidence_points_at_the_matching_event_and_keeps_the_sql(agreeing_report: ProofReport) -> None:
    sysmon = next(r for r in _results(agreeing_report, "own-urlcache-download", "sigma")
                  if r.route == "sysmon:1")
    assert sysmon.row_count == 1
    values = sysmon.evidence[0].values
    assert values["Image"] == "C:\\Windows\\System32\\certutil.exe"
    assert "-urlcache" in str(values["CommandLine"])
    assert sysmon.evidence[0].source and sysmon.evidence[0].source.endswith("#2")
    assert sysmon.sql and "RawEvents" in sysmon.sql
    kql = _results(agreeing_report, "own-urlcache-download", "kql")[0]
    assert kql.evidence[0].values["InitiatingProcessFileName"] == "cmd.exe"
    assert kql.sql and "DeviceProcessEvents" in kql.sql
    converted = _results(agreeing_report, "own-urlcache-download", "converted:microsoft-xdr")[0]
    assert converted.query and "ProcessCommandLine contains" in converted.query


def test_report_round_trips_through_json_and_junit(agreeing_report: ProofReport, tmp_path: Path) -> None:
    path = save_report(agreeing_report, tmp_path / "proof" / "report.json")
    loaded = load_report(path)
    assert loaded.summary == agreeing_report.summary
    assert loaded.detections[0].scenarios[0].results[0].key == agreeing_report.detections[0].scenarios[0].results[0].key
    root = ElementTree.fromstring(junit_xml(loaded))
    assert int(root.get("tests", "0")) == agreeing_report.summary.results
    assert root.get("failures") == "0"
    names = [case.get("name") for case in root.iter("testcase")]
    assert "own-urlcache-download [kql]" in names


def test_disagreement_is_found_and_the_operator_pinned_down(write_detection: WriteDetection) -> None:
    # Sigma contains '-url' matches '-urlcache'; KQL has "-url" does not (whole terms).
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-url"), kql=KQL_CERTUTIL.format(needle="-url"),
                             scenarios=[attack_scenario({"sigma": "fires", "kql": "does-not-fire",
                                                         "converted": "fires"})])
    report = run_paths([folder], RunOptions(forms=("sigma", "kql")))
    finding = report.detections[0].agreement[0]
    assert finding.status == "fail" and not finding.declared
    assert finding.verdicts["kql"] == "does-not-fire" and finding.verdicts["sigma[sysmon:1]"] == "fires"
    assert finding.operator is not None
    assert "contains '-url' is true" in finding.operator and "has '-url' is false" in finding.operator
    assert finding.event["ProcessCommandLine"] and "-urlcache" in str(finding.event["ProcessCommandLine"])
    assert report.summary.disagreements == 1 and not report.summary.ok
    assert report.detections[0].proof_status == "failing"


def test_warn_mode_reports_the_disagreement_without_failing(write_detection: WriteDetection) -> None:
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-url"), kql=KQL_CERTUTIL.format(needle="-url"),
                             scenarios=[attack_scenario({"sigma": "fires", "kql": "does-not-fire"})])
    report = run_paths([folder], RunOptions(forms=("sigma", "kql"), agreement="warn"))
    assert [f.status for f in report.detections[0].agreement] == ["warn"]
    assert report.summary.disagreements == 0 and report.summary.ok


def test_declared_difference_is_reported_not_failed(write_detection: WriteDetection) -> None:
    folder = write_detection(
        sigma=SIGMA_CERTUTIL.format(needle="-url"), kql=KQL_CERTUTIL.format(needle="-url"),
        scenarios=[attack_scenario({"sigma": "fires", "kql": "does-not-fire"})],
        known=[{"forms": ["sigma", "kql"], "scenarios": ["own-urlcache-download"],
                "reason": "Sigma's contains also matches -urlcache; the KQL term match does not.",
                "operator": "contains vs has"}])
    report = run_paths([folder], RunOptions(forms=("sigma", "kql")))
    finding = report.detections[0].agreement[0]
    assert finding.status == "known" and finding.declared
    assert finding.declared_reason and "term match" in finding.declared_reason
    assert report.summary.ok and report.summary.known_differences == 1


def test_stale_declaration_is_pointed_out(write_detection: WriteDetection) -> None:
    folder = write_detection(
        sigma=SIGMA_CERTUTIL.format(needle="-urlcache"), kql=KQL_CERTUTIL.format(needle="-urlcache"),
        scenarios=[attack_scenario()],
        known=[{"forms": ["sigma", "kql"], "scenarios": ["own-urlcache-download"], "reason": "no longer true"}])
    report = run_paths([folder], RunOptions(forms=("sigma", "kql")))
    finding = report.detections[0].agreement[0]
    assert finding.status == "agree" and finding.declared and "stale" in (finding.explanation or "")


def test_scoring_query_is_judged_by_its_alert_predicate_and_columns(write_detection: WriteDetection) -> None:
    benign = benign_scenario({"sigma": "does-not-fire", "kql": "does-not-fire",
                              "columns": {"Download": False, "FromShell": True}})
    attack = attack_scenario({"sigma": "fires", "kql": "fires", "columns": {"Download": True, "FromShell": True}})
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-urlcache"), kql=KQL_CERTUTIL_SCORING,
                             scenarios=[attack, benign],
                             alert={"predicate": "Download and FromShell", "reason": "a download from a shell"})
    report = run_paths([folder], RunOptions(forms=("kql",)))
    benign_kql = _results(report, "fp-hashfile-installer", "kql")[0]
    # The scoring query returns the benign certutil run, with Download false: not an alert.
    assert benign_kql.scored_row_count == 1 and benign_kql.row_count == 0
    assert benign_kql.verdict == "does-not-fire" and benign_kql.status == "pass"
    assert [(c.column, c.actual, c.ok) for c in benign_kql.column_checks] == [
        ("Download", False, True), ("FromShell", True, True)]
    assert benign_kql.query and benign_kql.query.rstrip().endswith("| where Download and FromShell")
    attack_kql = _results(report, "own-urlcache-download", "kql")[0]
    assert attack_kql.verdict == "fires" and attack_kql.status == "pass"


def test_wrong_expected_column_value_fails_with_the_column_named(write_detection: WriteDetection) -> None:
    attack = attack_scenario({"sigma": "fires", "kql": "fires", "columns": {"Download": True, "FromShell": False}})
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-urlcache"), kql=KQL_CERTUTIL_SCORING,
                             scenarios=[attack],
                             alert={"predicate": "Download and FromShell", "reason": "a download from a shell"})
    report = run_paths([folder], RunOptions(forms=("kql",)))
    result = _results(report, "own-urlcache-download", "kql")[0]
    assert result.verdict == "fires" and result.status == "fail"
    assert "FromShell = True, expected False" in result.reason
    assert report.summary.failed == 1


def test_now_outside_the_lookback_makes_the_kql_miss(write_detection: WriteDetection) -> None:
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-urlcache"),
                             kql=KQL_CERTUTIL.format(needle="-urlcache"), scenarios=[attack_scenario()])
    late = dt.datetime(2026, 10, 3, 14, 0, tzinfo=dt.UTC)  # a day after the scenario: ago(1h) excludes it
    report = run_paths([folder], RunOptions(forms=("kql",), now=late))
    result = _results(report, "own-urlcache-download", "kql")[0]
    assert result.verdict == "does-not-fire" and result.status == "fail"
    assert report.run.now == late and result.now == late


def test_missing_recording_is_skipped_with_the_reason(write_detection: WriteDetection, tmp_path: Path) -> None:
    recording = {"id": "rec-certutil-capture", "title": "A captured certutil download", "kind": "attack",
                 "provenance": {"recording": {"path": "certutil/capture.evtx"}},
                 "expected": {"sigma": "fires", "kql": "fires"}}
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-urlcache"),
                             kql=KQL_CERTUTIL.format(needle="-urlcache"), scenarios=[attack_scenario(), recording])
    empty = tmp_path / "shared-data"
    empty.mkdir()
    report = run_paths([folder], RunOptions(forms=("sigma", "kql"), shared_data=empty,
                                            sigma_telemetry=("sysmon",)))
    skipped = _results(report, "rec-certutil-capture")
    assert skipped and all(r.status == "skip" for r in skipped)
    assert "certutil/capture.evtx not found" in skipped[0].reason
    # The synthesized scenario proves Sigma and KQL; the converted form was not run, so the proof is partial.
    assert report.detections[0].proof_status == "partial"
    assert set(report.detections[0].available_forms) - set(report.detections[0].forms) == {
        "converted:microsoft-xdr", "converted:sqlite"}


def test_a_rule_that_does_not_load_is_a_detection_error(write_detection: WriteDetection) -> None:
    broken = SIGMA_CERTUTIL.format(needle="-urlcache").replace("condition: all of selection_*",
                                                               "condition: selection_missing")
    folder = write_detection(sigma=broken, kql=KQL_CERTUTIL.format(needle="-urlcache"),
                             scenarios=[attack_scenario()])
    report = run_paths([folder], RunOptions(forms=("sigma", "kql")))
    detection = report.detections[0]
    assert detection.errors and detection.errors[0].startswith("sigma:")
    assert detection.forms == ["kql"] and detection.proof_status == "failing"
    assert not report.summary.ok


def test_sigma_through_ecs_and_in_parallel_gives_the_same_verdicts(write_detection: WriteDetection) -> None:
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-urlcache"),
                             kql=KQL_CERTUTIL.format(needle="-urlcache"))
    report = run_paths([folder], RunOptions(forms=("sigma",), sigma_telemetry=("ecs",), jobs=2))
    keys = {r.key: r for r in _results(report, "own-urlcache-download")}
    # Winlogbeat documents map back to the event-log routes: Sysmon EID 1 and Security 4688.
    assert set(keys) == {"sigma[sysmon:1 via ecs]", "sigma[security:4688 via ecs]"}
    assert all(r.status == "pass" and r.verdict == "fires" and r.telemetry == "ecs" for r in keys.values())
    assert [s.id for s in report.detections[0].scenarios] == ["own-urlcache-download", "fp-hashfile-installer"]
    assert all(r.status == "pass" for r in _results(report, "fp-hashfile-installer"))


def test_a_rule_whose_routes_have_no_events_fails_the_attack(write_detection: WriteDetection) -> None:
    # A registry rule on a scenario that writes no registry value: nothing on its routes.
    registry_rule = SIGMA_CERTUTIL.format(needle="-urlcache").replace("category: process_creation",
                                                                      "category: registry_set")
    folder = write_detection(sigma=registry_rule, kql=KQL_CERTUTIL.format(needle="-urlcache"),
                             scenarios=[attack_scenario(), benign_scenario()])
    report = run_paths([folder], RunOptions(forms=("sigma",)))
    attack = _results(report, "own-urlcache-download", "sigma")
    assert [(r.status, r.key) for r in attack] == [("fail", "sigma")]
    assert "no events on any route" in attack[0].reason and "sysmon:" in attack[0].reason
    assert [r.status for r in _results(report, "fp-hashfile-installer", "sigma")] == ["pass"]


def test_a_scenario_that_cannot_be_synthesized_is_an_error_and_the_others_still_run(
        write_detection: WriteDetection) -> None:
    broken = attack_scenario(scenario_id="own-bad-registry-hive")
    broken["activity"]["registry"] = [{"process": "certutil", "key": "HKXX\\Software\\Contoso", "value_name": "x",
                                       "data": "1"}]
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-urlcache"),
                             kql=KQL_CERTUTIL.format(needle="-urlcache"), scenarios=[broken, benign_scenario()])
    report = run_paths([folder], RunOptions(forms=("sigma", "kql"), sigma_telemetry=("sysmon",)))
    errors = _results(report, "own-bad-registry-hive")
    assert errors and all(r.status == "error" for r in errors)
    assert "does not start with a hive" in errors[0].reason
    assert all(r.status == "pass" for r in _results(report, "fp-hashfile-installer"))
    assert report.summary.errors == len(errors) and not report.summary.ok
    kql = _results(report, "fp-hashfile-installer", "kql")[0]
    assert kql.now == dt.datetime(2026, 10, 2, 16, 40, 2, tzinfo=dt.UTC)  # the scenario start + 1 hour


def test_a_sentinel_query_on_security_event_runs_on_the_4688_telemetry(write_detection: WriteDetection) -> None:
    query = ("// Sentinel, Windows Security Events connector\n"
             "SecurityEvent\n| where EventID == 4688\n| where NewProcessName endswith @'\\certutil.exe'\n"
             "| where CommandLine has \"-urlcache\"\n| project TimeGenerated, Computer, CommandLine, ParentProcessName\n")
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-urlcache"), kql=query)
    detection_file = folder / "detection.yml"
    detection_file.write_text(detection_file.read_text(encoding="utf-8").replace(
        "- DeviceProcessEvents", "- SecurityEvent"), encoding="utf-8")
    report = run_paths([folder], RunOptions(forms=("kql",)))
    attack = _results(report, "own-urlcache-download", "kql")[0]
    assert (attack.telemetry, attack.table, attack.status, attack.verdict) == ("security", "SecurityEvent", "pass",
                                                                              "fires")
    assert attack.evidence[0].values["ParentProcessName"] == "C:\\Windows\\System32\\cmd.exe"
    assert _results(report, "fp-hashfile-installer", "kql")[0].status == "pass"


def test_a_disagreement_on_a_real_recording_is_pinned_down_too(write_detection: WriteDetection,
                                                                shared_data: Path) -> None:
    # The EDR-Testing-Script recording runs "cmstp.exe  /ni /s https://...". Sigma contains '/n' matches '/ni';
    # KQL has "/n" does not.
    sigma = SIGMA_CERTUTIL.format(needle="/n").replace("'CertUtil.exe'", "'CMSTP.EXE'").replace(
        "certutil.exe", "cmstp.exe")
    kql = KQL_CERTUTIL.format(needle="/n").replace("certutil.exe", "cmstp.exe").replace(
        "| where Timestamp > ago(1h)\n", "")
    recording = {"id": "rec-edr-testing", "title": "EDR-Testing-Script CMSTP remote INF", "kind": "attack",
                 "provenance": {"recording": {"path": "cmstp/panache_sysmon_vs_EDRTestingScript.evtx"}},
                 "expected": {"sigma": "fires", "kql": "does-not-fire"}}
    folder = write_detection(sigma=sigma, kql=kql, scenarios=[recording])
    report = run_paths([folder], RunOptions(forms=("sigma", "kql"), shared_data=shared_data))
    results = _results(report, "rec-edr-testing")
    assert all(r.status == "pass" for r in results), [(r.key, r.reason) for r in results]
    finding = report.detections[0].agreement[0]
    assert finding.status == "fail"
    assert finding.operator and "contains '/n' is true" in finding.operator and "has '/n' is false" in \
        finding.operator
    assert "/ni /s https://" in str(finding.event["ProcessCommandLine"])


def test_a_kql_that_does_not_parse_is_an_error_of_that_form_only(write_detection: WriteDetection) -> None:
    folder = write_detection(sigma=SIGMA_CERTUTIL.format(needle="-urlcache"),
                             kql="DeviceProcessEvents\n| where FileName =~ \"certutil.exe\" and (\n",
                             scenarios=[attack_scenario()])
    report = run_paths([folder], RunOptions(forms=("sigma", "kql"), sigma_telemetry=("sysmon",)))
    by_form = {r.form: r for r in _results(report, "own-urlcache-download")}
    assert by_form["kql"].status == "error" and "did not run" in by_form["kql"].reason
    assert by_form["sigma"].status == "pass"
    assert report.summary.errors == 1 and report.detections[0].proof_status == "failing"


def test_detections_proven_in_worker_processes_match_the_serial_run(tmp_path: Path) -> None:
    """--jobs N proves detections in spawned worker processes: same verdicts, same order, and on_scenario is
    told about every scenario."""
    from assay.catalog.init_repo import init_repository

    init_repository(tmp_path / "repo")
    example = tmp_path / "repo" / "detections" / "T1202-indirect-command-execution"
    shutil.copytree(DETECTIONS / "T1218.003-cmstp", tmp_path / "repo" / "detections" / "T1218.003-cmstp")
    options = RunOptions(forms=("sigma", "kql"))
    serial = run_paths([tmp_path / "repo" / "detections"], options)
    seen: list[str] = []
    parallel = run_paths([tmp_path / "repo" / "detections"], dataclasses.replace(options, jobs=2),
                         on_scenario=lambda detection_id, scenario: seen.append(scenario.id))

    def verdicts(report: Any) -> list[tuple[str, str, str, str]]:
        return [(d.id, s.id, r.key, r.status) for d in report.detections for s in d.scenarios for r in s.results]

    assert [d.path for d in parallel.detections] == [d.path for d in serial.detections]
    assert verdicts(parallel) == verdicts(serial)
    assert sorted(seen) == sorted(s.id for d in serial.detections for s in d.scenarios)
    assert parallel.summary.passed == serial.summary.passed > 0
    assert str(example) in {d.path for d in parallel.detections}
