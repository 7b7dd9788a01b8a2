"""CLI: ``assay lint``, ``assay show``, ``assay list`` — readable output, JSON, exit codes, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from assay.cli.main import cli
from tests.catalog.conftest import Edit, line_of
from tests.conftest import DETECTIONS, ROOT

CMSTP_ID = "5c191f9c-ff71-48e7-bebb-1f04e3d6e3f8"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("file_name", "old", "new", "expected_message", "needle", "col"),
    [
        ("detection.yml", "status: test\n", "status: test: broken\n", "malformed YAML", "status: test: broken", 13),
        ("detection.yml", "\nseverity: high", "\nseverty: high", "unknown key 'severty'", "severty:", 1),
        ("detection.yml", "confidence: high", "confidence: [high]", "confidence: Input should be", "confidence:",
         13),
        ("detection.yml", "technique: T1218.003", "technique: T1218.033", "unknown ATT&CK technique", "technique:",
         12),
        ("rule.sigma.yml", "CommandLine|contains:", "CommandLine|contians:", "Unknown modifier 'contians'",
         "contians", None),
    ],
    ids=["malformed-yaml", "unknown-key", "wrong-type", "unknown-attack-id", "sigma-does-not-parse"],
)
def test_bad_input_is_one_clear_error_at_file_line_col(cmstp_copy: Path, edit: Edit, file_name: str, old: str,
                                                       new: str, expected_message: str, needle: str,
                                                       col: int | None) -> None:
    path = edit(file_name, old, new)
    code, out, _ = run("lint", str(cmstp_copy))
    assert code == 1
    assert "Traceback" not in out
    line = line_of(path, needle)
    location = f"{path}:{line}:" + (f"{col}:" if col else "")
    matching = [row for row in out.splitlines() if row.startswith(location) and expected_message in row]
    assert matching, f"expected '{location} … {expected_message}' in:\n{out}"
    assert ": error: " in matching[0]


def test_unknown_key_hint_is_printed(cmstp_copy: Path, edit: Edit) -> None:
    edit("detection.yml", "\nseverity: high", "\nseverty: high")
    _, out, _ = run("lint", str(cmstp_copy))
    assert "hint: did you mean 'severity'?" in out
    assert "    severty: high\n    ^" in out


def test_lint_json(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("detection.yml", "technique: T1218.003", "technique: T1218.033")
    code, out, _ = run("lint", str(cmstp_copy), "--format", "json")
    assert code == 1
    report = json.loads(out)
    attack = next(i for i in report["issues"] if i["code"] == "attack-id")
    assert (attack["file"], attack["line"], attack["col"], attack["severity"]) == (
        str(path), line_of(path, "technique:"), 12, "error")
    assert report["ok"] is False and report["errors"] >= 1


def test_lint_usage_error_exits_2() -> None:
    code, _, err = run("lint", "no/such/folder")
    assert code == 2 and "does not exist" in err
    code, _, _ = run("lint", "--format", "xml", str(DETECTIONS))
    assert code == 2


def test_show_prints_every_section_of_the_page() -> None:
    code, out, _ = run("show", "--catalog", str(DETECTIONS), "T1218.003")
    assert code == 0
    for section in ["== MITRE ATT&CK ==", "== Severity and confidence ==", "== Explanation ==",
                    "== KQL detection query", "== Portable Sigma rule ==", "== Data sources ==",
                    "== Required tables ==", "== False positives ==", "== Tuning guidance ==",
                    "== Response playbook ==", "== Investigation guide ==", "== Hunting queries ==",
                    "== Scenarios (", "== Known differences between forms ==", "== References ==",
                    "== Related detections =="]:
        assert section in out, f"missing section {section!r}"
    assert "Tactic:         Defense Evasion (TA0005)" in out
    assert "Technique:      T1218 System Binary Proxy Execution" in out
    assert "Sub-technique:  T1218.003 CMSTP" in out
    assert "https://attack.mitre.org/techniques/T1218/003" in out
    assert "Alert when: AutoClose and (SuspiciousINFPath or RemoteLoad or SuspiciousParent)" in out
    assert '| where FileName =~ "cmstp.exe"' in out
    assert "\x1b[" not in out  # plain text when not a TTY


def test_show_by_id_prefix_and_folder_name_json() -> None:
    code, out, _ = run("show", "--catalog", str(DETECTIONS), CMSTP_ID[:8], "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert document["id"] == CMSTP_ID
    assert document["attack"]["subtechnique"] == {"id": "T1218.003", "name": "CMSTP"}
    assert document["attack"]["technique"] == {"id": "T1218", "name": "System Binary Proxy Execution"}
    assert document["scenario_counts"]["total"] == len(document["scenarios"])
    by_folder = json.loads(run("show", "--catalog", str(DETECTIONS), "T1218.003-cmstp", "--format", "json")[1])
    assert by_folder["id"] == CMSTP_ID


def test_show_unknown_reference_is_an_error_with_a_suggestion() -> None:
    code, out, err = run("show", "--catalog", str(DETECTIONS), "T1218.033")
    assert code == 1 and out == ""
    assert "error: no detection matches 'T1218.033'" in err and "did you mean T1218.003?" in err
    assert "Traceback" not in err


def test_list_table_and_filters() -> None:
    code, out, _ = run("list", str(DETECTIONS))
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split("\t") == ["id", "technique", "title", "severity", "forms", "scenarios"]
    cmstp = next(r.split("\t") for r in rows if r.startswith(CMSTP_ID))
    assert cmstp[1] == "T1218.003 CMSTP" and cmstp[3] == "high" and cmstp[4] == "sigma,kql,converted"
    assert len(run("list", str(DETECTIONS), "--severity", "low")[1].splitlines()) == 1  # header only
    for tactic in ("defense-evasion", "TA0005", "Defense Evasion"):
        assert CMSTP_ID in run("list", str(DETECTIONS), "--tactic", tactic)[1]
    assert CMSTP_ID not in run("list", str(DETECTIONS), "--tactic", "impact")[1]
    assert CMSTP_ID in run("list", str(DETECTIONS), "--technique", "T1218")[1]


def test_list_json_and_unknown_tactic() -> None:
    code, out, _ = run("list", str(DETECTIONS), "--format", "json")
    assert code == 0
    rows = json.loads(out)
    cmstp = next(r for r in rows if r["id"] == CMSTP_ID)
    assert cmstp["tactics"] == ["Defense Evasion"] and cmstp["scenarios"]["benign"] >= 4
    code, _, err = run("list", str(DETECTIONS), "--tactic", "defense-evasoin")
    assert code == 2 and "did you mean defense-evasion?" in err


def test_default_catalog_is_detections_in_the_working_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run("list")
    assert code == 0 and CMSTP_ID in out


def test_rich_rendering_escapes_markup_and_keeps_every_section(capsys: pytest.CaptureFixture[str]) -> None:
    """On a TTY the page goes through rich: brackets in content ([DefaultInstall], [triage]) must survive."""
    from assay.catalog import load_catalog
    from assay.catalog.view import detection_document
    from assay.cli.catalog_render import render_detection
    from assay.schema.attack import attack_data

    loaded = load_catalog(DETECTIONS).find("T1218.003")[0]
    render_detection(detection_document(loaded, attack_data()), rich=True)
    out = capsys.readouterr().out
    for section in ("MITRE ATT&CK", "Response playbook", "Hunting queries", "Known differences between forms"):
        assert section in out
    assert "[triage]" in out and "[Connection Manager]" in out, out[-3000:]


def test_strict_fails_on_warnings(cmstp_copy: Path, edit: Edit) -> None:
    edit("rule.sigma.yml", "    - attack.defense-evasion\n", "")
    code, out, _ = run("lint", "--format", "json", str(cmstp_copy))
    report = json.loads(out)
    assert any(i["severity"] == "warning" and "not tagged attack.defense-evasion" in i["message"]
               for i in report["issues"])
    assert code == (1 if report["errors"] else 0)  # a warning alone does not fail
    code, out, _ = run("lint", "--strict", "--format", "json", str(cmstp_copy))
    assert code == 1 and json.loads(out)["ok"] is False
