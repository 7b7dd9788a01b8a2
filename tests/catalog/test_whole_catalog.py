"""Whole-catalog tests: every detection is loaded once and held to the catalog's rules.

Failure messages follow elastic/detection-rules: ``<id> - <title> -> expected … got …``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from assay.catalog import LoadedDetection, load_catalog
from assay.catalog.lint import lint_catalog
from assay.schema import known_tables
from assay.schema.attack import attack_data
from tests.conftest import DETECTIONS, shared_data_dir

CATALOG = load_catalog(DETECTIONS)
IDS = [d.path.name for d in CATALOG.detections]


def who(loaded: LoadedDetection) -> str:
    return f"{loaded.id} - {loaded.detection.title}"


def test_catalog_loads_without_errors() -> None:
    assert CATALOG.detections, "expected at least one detection under detections/ -> got none"
    assert not CATALOG.errors, "expected no load errors -> got\n" + "\n".join(str(e) for e in CATALOG.errors)


def test_catalog_lints_clean() -> None:
    report = lint_catalog(DETECTIONS, shared=shared_data_dir())
    problems = [f"{i.location()}: {i.severity}: {i.message}" for i in report.issues]
    assert not problems, "expected a clean lint -> got\n" + "\n".join(problems)
    assert report.detections_checked == len(CATALOG.detections)


def test_ids_are_unique() -> None:
    ids = [d.id for d in CATALOG.detections]
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, f"expected unique detection ids -> got duplicates {duplicates}"


@pytest.mark.parametrize("loaded", CATALOG.detections, ids=IDS)
def test_technique_is_active_in_pinned_attack(loaded: LoadedDetection) -> None:
    technique = attack_data().technique(loaded.detection.technique)
    assert technique is not None and technique.usable, (
        f"{who(loaded)} -> expected an active ATT&CK technique, got {loaded.detection.technique}")


@pytest.mark.parametrize("loaded", CATALOG.detections, ids=IDS)
def test_every_form_is_present(loaded: LoadedDetection) -> None:
    assert loaded.forms == ("sigma", "kql", "converted"), f"{who(loaded)} -> expected all forms, got {loaded.forms}"


@pytest.mark.parametrize("loaded", CATALOG.detections, ids=IDS)
def test_one_benign_scenario_per_false_positive(loaded: LoadedDetection) -> None:
    covered = sorted(s.provenance.false_positive.index for s in loaded.scenarios if s.provenance.false_positive)
    expected = list(range(1, len(loaded.detection.false_positives) + 1))
    assert covered == expected, f"{who(loaded)} -> expected FP scenarios for items {expected}, got {covered}"


@pytest.mark.parametrize("loaded", CATALOG.detections, ids=IDS)
def test_required_tables_are_known(loaded: LoadedDetection) -> None:
    unknown = [t for t in loaded.detection.required_tables if t not in known_tables()]
    assert not unknown, f"{who(loaded)} -> expected known tables, got unknown {unknown}"


@pytest.mark.parametrize("loaded", CATALOG.detections, ids=IDS)
def test_attack_scenarios_fire_and_benign_stay_quiet_unless_declared(loaded: LoadedDetection) -> None:
    for scenario in loaded.scenarios:
        wanted = "fires" if scenario.kind == "attack" else "does-not-fire"
        for form in loaded.forms:
            got = scenario.expected.outcome(form)
            if got != wanted:
                declared = any(loaded.known_difference(form, other, scenario.id) for other in loaded.forms
                               if other != form)
                assert declared, (f"{who(loaded)} -> scenario {scenario.id} ({scenario.kind}) expected {form} "
                                  f"{wanted}, got {got} without a declared known difference")


def test_cmstp_query_is_verbatim_from_the_issue() -> None:
    kql = (DETECTIONS / "T1218.003-cmstp" / "sentinel.kql").read_text(encoding="utf-8")
    # The lines the issue fixes, in order; any edit to the query shows up here.
    expected_lines = [
        "DeviceProcessEvents",
        "| where Timestamp > ago(24h)",
        '| where FileName =~ "cmstp.exe"',
        '| extend AutoClose = ProcessCommandLine has_any ("/s", "/au")',
        '| extend NoUserInteraction = ProcessCommandLine has_any ("/ns", "/ni")',
        '| extend HasINF = ProcessCommandLine has ".inf"',
        '| extend SuspiciousINFPath = ProcessCommandLine has_any ("Temp", "AppData", "Downloads", "Public", '
        '"ProgramData", "\\\\Users\\\\")',
        '| extend RemoteLoad = ProcessCommandLine has_any ("http://", "https://")',
        '| extend SuspiciousParent = InitiatingProcessFileName has_any ("cmd.exe", "powershell.exe", '
        '"wscript.exe", "cscript.exe", "mshta.exe", "winword.exe", "excel.exe", "outlook.exe")',
        "| project Timestamp, DeviceName, AccountName, ProcessCommandLine, InitiatingProcessFileName,",
        "         InitiatingProcessCommandLine, AutoClose, NoUserInteraction, HasINF,",
        "         SuspiciousINFPath, RemoteLoad, SuspiciousParent",
        "| sort by Timestamp desc",
    ]
    assert kql.splitlines() == expected_lines


def test_cmstp_scenarios_cover_atomic_tests_page_scenarios_and_recordings() -> None:
    loaded = CATALOG.find("T1218.003")[0]
    kinds = [s.provenance.kind for s in loaded.scenarios]
    guids = {s.provenance.atomic.guid for s in loaded.scenarios if s.provenance.atomic}
    assert guids == {"34e63321-9683-496b-bbc1-7566bc55e624", "748cb4f6-2fb3-4e97-b7ad-b22635a09ab0"}
    assert kinds.count("recording") == 3
    recordings = {s.provenance.recording.path for s in loaded.scenarios if s.provenance.recording}
    assert {p.split("/")[0] for p in recordings} == {"cmstp"}
    page_tests = [s for s in loaded.scenarios if s.provenance.own and "Catalog page test" in s.provenance.own]
    assert len(page_tests) == 3


def test_cmstp_sigma_catches_renamed_binary_and_declares_it() -> None:
    loaded = CATALOG.find("T1218.003")[0]
    assert loaded.sigma_text is not None and re.search(r"OriginalFileName:\s*'CMSTP\.EXE'", loaded.sigma_text)
    renamed = loaded.scenario("own-renamed-cmstp-public-folder")
    assert renamed.activity is not None
    process = next(p for p in renamed.activity.processes if p.original_file_name == "CMSTP.EXE")
    assert process.file_name.lower() != "cmstp.exe"
    assert loaded.known_difference("sigma", "kql", renamed.id) is not None


@pytest.mark.parametrize("loaded", CATALOG.detections, ids=IDS)
def test_native_and_hunting_queries_run_on_duckdb(loaded: LoadedDetection) -> None:
    """Binding is checked by lint; here every query also executes (on empty canonical tables)."""
    from assay import kql

    run = getattr(kql, "run", None)
    if run is None:
        pytest.skip("assay.kql.run is not available")
    queries = [("sentinel.kql", loaded.kql_text or "")] + [(h.title, h.query) for h in loaded.detection.hunting]
    for title, query in queries:
        try:
            run(query, db=None, now="2026-11-28T00:00:00Z")
        except Exception as error:  # report which query, not just the first traceback
            pytest.fail(f"{who(loaded)} -> expected {title!r} to run, got {type(error).__name__}: {error}")


@pytest.mark.shared_data
@pytest.mark.parametrize("loaded", CATALOG.detections, ids=IDS)
def test_atomic_scenarios_run_the_atomic_command_with_its_defaults(loaded: LoadedDetection, shared_data: Path) -> None:
    """An atomic scenario's process tree contains the test's executor command, #{arguments} substituted: the
    scenario's input_arguments where given, the test's defaults otherwise."""
    for scenario in loaded.scenarios:
        atomic = scenario.provenance.atomic
        if atomic is None or scenario.activity is None:
            continue
        technique = atomic.technique or loaded.detection.technique
        data = yaml.safe_load((shared_data / "atomic-red-team" / "atomics" / technique / f"{technique}.yaml")
                              .read_text(encoding="utf-8"))
        test = next(t for t in data["atomic_tests"] if t["auto_generated_guid"] == atomic.guid)
        if "command" not in test["executor"]:
            continue  # a manual test (steps for a person, no command): nothing to find in the process tree
        command = test["executor"]["command"].strip()
        arguments = test.get("input_arguments", {})
        unknown = set(atomic.input_arguments) - set(arguments)
        assert not unknown, f"{who(loaded)} -> scenario {scenario.id} sets input arguments the test lacks: {unknown}"
        for name, argument in arguments.items():
            command = command.replace("#{" + name + "}", atomic.input_arguments.get(name, str(argument["default"])))
        command = command.replace("PathToAtomicsFolder", "C:\\AtomicRedTeam\\atomics")
        # A multi-line command runs line by line (cmd.exe joins them with &, PowerShell with ;): every line, bar
        # blank lines and comments, must appear in the scenario's process tree.
        lines = [" ".join(line.split()).lower() for line in command.splitlines()]
        lines = [line for line in lines if line and not line.startswith(("#", "rem ", "::"))]
        command_lines = [" ".join(p.command_line.split()).lower() for p in scenario.activity.processes]
        missing = [line for line in lines if not any(line in seen for seen in command_lines)]
        assert not missing, (
            f"{who(loaded)} -> expected scenario {scenario.id} to run {missing!r}, got {command_lines}")
        if test["executor"]["name"] == "command_prompt":
            assert any(p.file_name.lower() == "cmd.exe" and lines[0] in " ".join(p.command_line.split()).lower()
                       for p in scenario.activity.processes), (
                f"{who(loaded)} -> expected scenario {scenario.id} to run the command through cmd.exe /c "
                "(executor command_prompt)")
