"""``assay lint``: each rule reports at file:line:col, and the Sigma checks never go online."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

import assay.kql
from assay.catalog.lint import LintReport, lint_catalog
from assay.errors import KqlSyntaxError, SourceSpan
from tests.catalog.conftest import Edit, line_of
from tests.conftest import DETECTIONS


def lint(folder: Path, shared: Path | None = None) -> LintReport:
    # shared=folder: a folder without atomics, so GUID checks are not run unless a test asks for them
    return lint_catalog(folder, shared=shared or folder)


def issue(report: LintReport, code: str) -> Any:
    found = [i for i in report.issues if i.code == code]
    assert found, f"expected a {code!r} issue -> got {[(i.code, i.message) for i in report.issues]}"
    return found[0]


def test_lint_never_opens_a_network_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    report = lint_catalog(DETECTIONS)
    assert attempts == []
    assert "pySigma validator attacktag" in report.skipped_checks
    assert not [i for i in report.issues if i.code.startswith("sigma")]


def test_unknown_technique_suggests_one(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("detection.yml", "technique: T1218.003", "technique: T1218.030")
    found = issue(lint(cmstp_copy), "attack-id")
    assert found.severity == "error" and "unknown ATT&CK technique 'T1218.030'" in found.message
    assert found.hint.startswith("did you mean T1218.0")
    assert (found.span.file, found.span.line, found.span.col) == (str(path), line_of(path, "technique:"), 12)


def test_revoked_technique_names_the_replacement(cmstp_copy: Path, edit: Edit) -> None:
    edit("detection.yml", "technique: T1218.003", "technique: T1004")
    found = issue(lint(cmstp_copy), "attack-id")
    assert "revoked" in found.message and found.hint == "use T1547.004 (Winlogon Helper DLL)"


def test_sigma_with_unknown_modifier_points_at_it(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("rule.sigma.yml", "CommandLine|contains:", "CommandLine|contians:")
    found = issue(lint(cmstp_copy), "sigma-load")
    assert "Unknown modifier 'contians'" in found.message
    assert (found.span.file, found.span.line) == (str(path), line_of(path, "contians"))


def test_sigma_that_is_not_yaml(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("rule.sigma.yml", "status: test", "status: [test")
    report = lint(cmstp_copy)
    found = next(i for i in report.errors if i.span.file == str(path))
    assert "malformed YAML" in found.message and found.span.line is not None


def test_sigma_condition_naming_a_missing_selection(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("rule.sigma.yml", "condition: selection_cmstp and", "condition: selection_cmstpp and")
    found = issue(lint(cmstp_copy), "sigma-condition")
    assert "selection_cmstpp" in found.message and found.span.line == line_of(path, "condition:")


def test_sigma_must_carry_the_detection_technique_tag(cmstp_copy: Path, edit: Edit) -> None:
    edit("rule.sigma.yml", "    - attack.t1218.003\n", "    - attack.t1218.002\n")
    found = issue(lint(cmstp_copy), "sigma-attack-tag")
    assert "attack.t1218.003" in found.message


def test_dangling_related_id(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("detection.yml", "related: []", "related:\n  - 0f5f0a0e-4b7e-4a53-9d5c-3c1b8f1f1a01")
    found = issue(lint(cmstp_copy), "related-id")
    assert "not in the catalog" in found.message and found.span.line == line_of(path, "0f5f0a0e")


def test_duplicate_detection_ids(cmstp_copy: Path) -> None:
    twin = cmstp_copy.parent / "T1218.003-cmstp-copy"
    twin.mkdir()
    for child in cmstp_copy.iterdir():
        (twin / child.name).write_bytes(child.read_bytes())
    found = issue(lint(cmstp_copy.parent), "duplicate-id")
    assert "5c191f9c-ff71-48e7-bebb-1f04e3d6e3f8" in found.message


def test_a_benign_scenario_is_required(cmstp_copy: Path) -> None:
    tests = cmstp_copy / "tests.yml"
    text = tests.read_text(encoding="utf-8")
    tests.write_text(text[: text.index("  - id: own-single-user-install-su-switch")], encoding="utf-8")
    (cmstp_copy / "detection.yml").write_text(
        (cmstp_copy / "detection.yml").read_text(encoding="utf-8").split("known_differences:")[0]
        + "tuning:" + (cmstp_copy / "detection.yml").read_text(encoding="utf-8").split("\ntuning:")[1],
        encoding="utf-8")
    report = lint(cmstp_copy)
    messages = [i.message for i in report.errors if i.code == "scenarios"]
    assert messages == ["no benign scenario"]


def test_undeclared_disagreement_between_forms(cmstp_copy: Path, edit: Edit) -> None:
    edit("tests.yml", "      converted: fires\n", "      converted: does-not-fire\n")
    report = lint(cmstp_copy)
    codes = {(i.code, i.span.line) for i in report.errors}
    assert any(code == "expected-outcome" for code, _ in codes)


def test_expected_columns_must_agree_with_the_alert_predicate(cmstp_copy: Path, edit: Edit) -> None:
    edit("tests.yml", "        SuspiciousParent: true\n", "        SuspiciousParent: false\n")
    found = issue(lint(cmstp_copy), "expected-columns")
    assert "atomic-remote-scriptlet" in found.message and "should be 'does-not-fire'" in found.message


def test_false_positive_text_must_match_the_item(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("tests.yml", "text: Legacy Windows Remote Access Service configurations deployed via CMSTP",
                "text: Legacy RAS configurations")
    found = issue(lint(cmstp_copy), "provenance")
    assert "does not match item 4" in found.message and found.span.line == line_of(path, "Legacy RAS configurations")


@pytest.mark.shared_data
def test_atomic_guid_must_exist_in_atomic_red_team(cmstp_copy: Path, edit: Edit, shared_data: Path) -> None:
    path = edit("tests.yml", "guid: 34e63321-9683-496b-bbc1-7566bc55e624", "guid: 34e63321-9683-496b-bbc1-7566bc55e625")
    found = issue(lint(cmstp_copy, shared=shared_data), "provenance")
    assert "has no test 34e63321-9683-496b-bbc1-7566bc55e625" in found.message
    assert "748cb4f6-2fb3-4e97-b7ad-b22635a09ab0" in found.message
    assert found.span.line == line_of(path, "7566bc55e625")


@pytest.mark.shared_data
def test_recordings_must_exist(cmstp_copy: Path, edit: Edit, shared_data: Path) -> None:
    edit("tests.yml", "path: cmstp/panache_sysmon_vs_EDRTestingScript.evtx", "path: cmstp/panache.evtx")
    found = issue(lint(cmstp_copy, shared=shared_data), "provenance")
    assert "cmstp/panache.evtx" in found.message


def test_kql_errors_in_hunting_queries_point_into_detection_yml(cmstp_copy: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The KQL front end reports a span inside the query; lint moves it to the query's place in the YAML."""

    def check(text: str, *, file: str | None = None) -> None:
        if "dllhost.exe" in text:  # the second hunting query: fail on its third line, column 9
            raise KqlSyntaxError("unexpected token", SourceSpan(None, 3, 9, text))

    monkeypatch.setattr(assay.kql, "check", check, raising=False)
    path = cmstp_copy / "detection.yml"
    found = issue(lint(cmstp_copy), "kql")
    assert found.message.startswith("hunting query 'Elevated processes started by the CMSTPLUA COM surrogate'")
    assert (found.span.file, found.span.line, found.span.col) == (
        str(path), line_of(path, '| where InitiatingProcessFileName =~ "dllhost.exe"'), 15)


def test_sigma_rule_id_must_not_reuse_a_detection_id(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("rule.sigma.yml", "id: e0c41d4e-a058-4394-894c-372b49a55ee6", "id: 5c191f9c-ff71-48e7-bebb-1f04e3d6e3f8")
    found = issue(lint(cmstp_copy), "duplicate-id")
    assert "Sigma rule id 5c191f9c" in found.message and found.span.file == str(path) and found.span.line == 2


def test_folder_name_should_start_with_the_technique(cmstp_copy: Path) -> None:
    renamed = cmstp_copy.rename(cmstp_copy.parent / "cmstp")
    found = issue(lint(renamed), "folder-name")
    assert found.severity == "warning" and "T1218.003-" in found.message


def test_hunting_query_tables_must_name_the_table_it_reads(cmstp_copy: Path, edit: Edit) -> None:
    edit("detection.yml", "    tables: [DeviceNetworkEvents]", "    tables: [DeviceProcessEvents]")
    found = issue(lint(cmstp_copy), "table")
    assert found.severity == "warning" and "reads DeviceNetworkEvents" in found.message


def test_stale_known_difference_is_flagged(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("detection.yml", "    scenarios: [own-single-user-install-su-switch]\n    operator: \"Sigma",
                "    scenarios: [fp-configmgr-deployment]\n    operator: \"Sigma")
    found = issue(lint(cmstp_copy), "known-difference")
    assert found.severity == "warning" and "every scenario it names expects the same outcome" in found.message
    assert found.span.line == line_of(path, "scenarios: [fp-configmgr-deployment]") - 1


def test_linting_one_folder_knows_its_neighbours_related_ids(tmp_path: Path) -> None:
    """A related id naming a sibling detection is not dangling when only one folder is linted; an unknown id
    still is."""
    import shutil

    from assay.catalog.init_repo import init_repository

    init_repository(tmp_path / "repo")
    folder = tmp_path / "repo" / "detections" / "T1202-indirect-command-execution"
    shutil.copytree(DETECTIONS / "T1218.003-cmstp", tmp_path / "repo" / "detections" / "T1218.003-cmstp")
    text = (folder / "detection.yml").read_text(encoding="utf-8")
    related = "related:\n  - 5c191f9c-ff71-48e7-bebb-1f04e3d6e3f8\n"
    (folder / "detection.yml").write_text(text.replace("author:", related + "author:"), encoding="utf-8")
    report = lint_catalog(folder)
    assert not [i for i in report.issues if i.code == "related-id"], report.issues
    (folder / "detection.yml").write_text(
        text.replace("author:", "related:\n  - 00000000-0000-4000-8000-000000000000\nauthor:"), encoding="utf-8")
    assert [i for i in lint_catalog(folder).issues if i.code == "related-id"]
