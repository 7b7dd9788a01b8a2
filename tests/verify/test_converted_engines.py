"""Converted forms executed on real local engines (SQLite, Spark SQL, EQL) over the scenario's own events, their
verdicts judged and compared with the other forms like any form's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from assay.catalog.loader import load_catalog
from assay.cli.main import cli
from assay.sigma import convert
from assay.verify.converted import engine_unavailable, run_eql, run_spark, run_sqlite
from assay.verify.runner import RunOptions, run_paths
from assay.verify.synth import synthesize
from tests.conftest import DETECTIONS

CMSTP = DETECTIONS / "T1218.003-cmstp"
RENAMED = "own-renamed-cmstp-public-folder"


def _sysmon_records(scenario_id: str) -> list[dict[str, object]]:
    scenario = next(s for s in load_catalog(CMSTP).detections[0].scenarios if s.id == scenario_id)
    telemetry = synthesize(scenario)
    return [{"EventID": str(r["Event"]["System"]["EventID"]), "Channel": r["Event"]["System"]["Channel"],
             **r["Event"]["EventData"]} for r in telemetry.sysmon]


def test_sqlite_runs_the_converted_query_on_the_scenarios_events() -> None:
    query = convert(CMSTP, "sqlite").query
    assert query is not None
    fired = run_sqlite(query, _sysmon_records("atomic-remote-scriptlet"))
    assert fired.rows and "CommandLine" in fired.columns
    command_line = fired.rows[0][fired.columns.index("CommandLine")]
    assert "cmstp.exe" in str(command_line).lower() and "/s" in str(command_line)
    quiet = run_sqlite(query, _sysmon_records("fp-vpn-client-install-program-files"))
    assert quiet.rows == ()


def test_a_field_no_event_has_is_a_null_column_said_in_the_notes() -> None:
    records = [{"EventID": "1", "Image": "C:\\Windows\\System32\\cmstp.exe", "CommandLine": "cmstp.exe /s x.inf"}]
    result = run_sqlite("SELECT * FROM logs WHERE OriginalFileName = 'CMSTP.EXE' OR Image LIKE '%cmstp.exe'", records)
    assert len(result.rows) == 1
    assert result.notes and "OriginalFileName" in result.notes[0] and "NULL" in result.notes[0]
    # Field names differing only in letter case are one column, as SQLite compares them; whole numbers are
    # stored as numbers (a port compared with >= must not compare as text), other text stays text.
    merged = run_sqlite("SELECT ProcessId FROM logs", [{"ProcessId": "4"}, {"ProcessID": "8"}, {"ProcessId": "0x1c"}])
    assert set(merged.rows) == {(4,), (8,), ("0x1c",)}
    ports = run_sqlite("SELECT DestinationPort FROM logs WHERE DestinationPort >= 49152",
                       [{"DestinationPort": "8181"}, {"DestinationPort": "50123"}])
    assert ports.rows == ((50123,),)


def test_sqlite_equality_is_case_sensitive_and_the_disagreement_is_reported(tmp_path: Path) -> None:
    # Sigma compares a plain value case-insensitively; the SQLite backend emits '=' (case-sensitive in SQLite).
    folder = tmp_path / "T1218.003-cmstp"
    shutil.copytree(CMSTP, folder)
    rule = (folder / "rule.sigma.yml").read_text(encoding="utf-8")
    (folder / "rule.sigma.yml").write_text(rule.replace("OriginalFileName: 'CMSTP.EXE'",
                                                        "OriginalFileName: 'cmstp.exe'"), encoding="utf-8")
    report = run_paths([folder], RunOptions(converted_targets=("sqlite",), scenarios=(RENAMED,),
                                            sigma_telemetry=("sysmon",)))
    detection = report.detections[0]
    results = {r.key: r for r in detection.scenarios[0].results}
    assert results["sigma[sysmon:1]"].verdict == "fires"
    sqlite = results["converted:sqlite"]
    assert sqlite.verdict == "does-not-fire" and sqlite.status == "fail"
    assert "SQLite" in sqlite.reason and sqlite.sql and "OriginalFileName='cmstp.exe'" in sqlite.sql
    finding = next(f for f in detection.agreement if f.scenario == RENAMED)
    assert finding.verdicts["converted:sqlite"] == "does-not-fire" and finding.verdicts["sigma[sysmon:1]"] == "fires"
    assert finding.status in ("fail", "known")
    # The operator that differs is pinned down on the renamed binary's event.
    assert finding.operator is not None
    assert "SQLite OriginalFileName='cmstp.exe' is false" in finding.operator
    assert "Sigma OriginalFileName|equals 'cmstp.exe' is true" in finding.operator
    assert "case-sensitively in SQLite" in finding.operator
    assert detection.proof_status == "failing"


def test_cli_rejects_an_unknown_converted_target() -> None:
    result = CliRunner().invoke(cli, ["test", str(CMSTP), "--converted", "splunk"])
    assert result.exit_code == 2
    assert "not a converted form Assay executes" in result.output


@pytest.mark.spark
def test_spark_sql_runs_the_databricks_predicate() -> None:
    reason = engine_unavailable("spark-sql")
    if reason is not None:
        pytest.skip(reason)
    from assay.engine.spark_engine import SparkEngine

    predicate = convert(CMSTP, "spark-sql").query
    assert predicate is not None
    session = SparkEngine("local[1]").session
    fired = run_spark(predicate, _sysmon_records("atomic-remote-scriptlet"), session)
    assert fired.rows and fired.statement.startswith("SELECT * FROM logs WHERE ")
    assert run_spark(predicate, _sysmon_records("fp-vpn-client-install-program-files"), session).rows == ()
    # The renamed binary: Spark's lower() = lower() compares case-insensitively, as Sigma does.
    assert run_spark(predicate, _sysmon_records(RENAMED), session).rows


def test_eql_runs_on_the_ecs_documents_with_caseless_emulated() -> None:
    reason = engine_unavailable("elastic-eql")
    if reason is not None:
        pytest.skip(reason)
    query = convert(CMSTP, "elastic-eql").query
    assert query is not None and ".caseless" in query
    scenario = next(s for s in load_catalog(CMSTP).detections[0].scenarios if s.id == "atomic-remote-scriptlet")
    result = run_eql(query, synthesize(scenario).ecs)
    assert result.rows and ".caseless" not in result.statement
    assert "process.executable.caseless" in result.notes[0]
    benign = next(s for s in load_catalog(CMSTP).detections[0].scenarios
                  if s.id == "fp-vpn-client-install-program-files")
    assert run_eql(query, synthesize(benign).ecs).rows == ()


def test_sqlite_regexp_and_spaced_field_names_work_as_in_zircolite() -> None:
    # SQLite has no REGEXP of its own (the backend emits it for |re); Windows service logs spell fields with
    # spaces ("Threat Name") where Sigma writes ThreatName.
    records = [{"EventID": "1116", "Threat Name": "Tool:Win32/EICAR_Test_File", "ThreatName": "Tool:Win32/EICAR_Test_File"},
               {"EventID": "1116", "Threat Name": "Trojan:Win32/Other", "ThreatName": "Trojan:Win32/Other"}]
    result = run_sqlite("SELECT * FROM logs WHERE ThreatName REGEXP 'EICAR_[A-Z][a-z]+_File$'", records)
    assert len(result.rows) == 1
    assert run_sqlite("SELECT * FROM logs WHERE ThreatName REGEXP NULL", records).rows == ()


def test_a_rule_the_sqlite_backend_cannot_convert_is_not_a_failing_detection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from assay.sigma.conversion import TARGETS

    broken = dataclasses.replace(TARGETS["sqlite"], backend=("sigma.backends.not_here", "NopeBackend"))
    monkeypatch.setitem(TARGETS, "sqlite", broken)
    report = run_paths([CMSTP], RunOptions(converted_targets=("sqlite",), scenarios=("atomic-remote-scriptlet",),
                                           sigma_telemetry=("sysmon",)))
    detection = report.detections[0]
    assert not detection.errors
    assert "converted:sqlite" not in detection.forms and "converted:sqlite" not in detection.available_forms
    assert detection.proof_status == "proven"


def test_eql_runs_on_a_recordings_records_mapped_to_ecs() -> None:
    from assay.verify.converted import ecs_documents

    reason = engine_unavailable("elastic-eql")
    if reason is not None:
        pytest.skip(reason)
    query = convert(CMSTP, "elastic-eql").query
    assert query is not None
    documents = ecs_documents(_sysmon_records("atomic-remote-scriptlet"))
    process = next(d for d in documents if d["event"]["code"] == "1"
                   and str(d["winlog"]["event_data"].get("Image", "")).lower().endswith("\\cmstp.exe"))
    assert process["event"]["category"] == ["process"]
    assert process["process"]["executable"].lower().endswith("cmstp.exe")
    assert "command_line" in process["process"] and "executable" in process["process"]["parent"]
    assert run_eql(query, documents).rows
    assert run_eql(query, ecs_documents(_sysmon_records("fp-vpn-client-install-program-files"))).rows == ()


def test_sqlite_compares_numbers_as_numbers() -> None:
    # Every field arrives as text; a column of decimal integers is INTEGER (as Zircolite types JSON numbers), so
    # a port filter compares 8181 with 49152, not '8181' with '49152' (which is greater as text).
    records = [{"EventID": "3", "DestinationPort": "8181", "Image": "rundll32.exe"},
               {"EventID": "3", "DestinationPort": "50123", "Image": "svchost.exe"}]
    result = run_sqlite("SELECT Image FROM logs WHERE EventID=3 AND NOT COALESCE(DestinationPort >= 49152, 0)", records)
    assert result.rows == (("rundll32.exe",),)
