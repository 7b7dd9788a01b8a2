"""Loading Sigma rules: one bad rule never stops the others, errors name the file and construct, nothing goes online."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from assay.errors import SigmaError
from assay.sigma import LoadedRule, RuleLoadError, compile_rule, convert_all, load_rule, load_rules
from tests.conftest import DETECTIONS

GOOD_RULE = r"""title: Certutil Download To Temp
id: 2a1b0c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
status: test
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\certutil.exe'
        CommandLine|contains|all:
            - '-urlcache'
            - 'http'
    condition: selection
level: high
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_rule_loads_with_its_metadata(tmp_path: Path) -> None:
    rule = load_rule(write(tmp_path, "certutil.yml", GOOD_RULE))
    assert rule.id == "2a1b0c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    assert rule.title == "Certutil Download To Temp"
    assert not rule.is_correlation


def test_unknown_modifier_names_file_line_and_modifier(tmp_path: Path) -> None:
    path = write(tmp_path, "typo.yml", GOOD_RULE.replace("Image|endswith", "Image|endswithh"))
    with pytest.raises(SigmaError) as raised:
        load_rule(path)
    error = raised.value
    assert "endswithh" in error.message
    assert error.span is not None and error.span.file == str(path)
    assert error.span.line == 9  # the detection line carrying the modifier, not the title
    assert "modifier" in (error.hint or "")


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yml", GOOD_RULE.replace("    selection:\n", "    selection:\n  \tbad: [\n"))
    with pytest.raises(SigmaError) as raised:
        load_rule(path)
    assert "YAML" in raised.value.message
    assert raised.value.span is not None and raised.value.span.line is not None


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.yml", GOOD_RULE.replace("    condition: selection\n",
                                                        "    condition: selection\n    condition: not selection\n"))
    with pytest.raises(SigmaError, match="duplicate key 'condition'") as raised:
        load_rule(path)
    # located at the second key, as the README promises
    text = path.read_text(encoding="utf-8").splitlines()
    span = raised.value.span
    assert span is not None and span.line is not None and span.col is not None
    assert text[span.line - 1][span.col - 1:].startswith("condition: not selection")


def test_rule_without_detection_names_the_file(tmp_path: Path) -> None:
    text = GOOD_RULE.split("detection:")[0] + "level: high\n"
    path = write(tmp_path, "nodetection.yml", text)
    with pytest.raises(SigmaError) as raised:
        load_rule(path)
    assert raised.value.span is not None and raised.value.span.file == str(path)


def test_one_bad_rule_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path, "a_good.yml", GOOD_RULE)
    write(tmp_path, "b_bad.yml", GOOD_RULE.replace("|contains|all", "|containz"))
    write(tmp_path, "c_good.yml", GOOD_RULE.replace("2a1b0c3d", "3b2c1d4e"))
    results = load_rules(tmp_path)
    assert [type(r).__name__ for r in results] == ["LoadedRule", "RuleLoadError", "LoadedRule"]
    bad = results[1]
    assert isinstance(bad, RuleLoadError) and "containz" in str(bad)


def test_detection_folder_loads_its_sigma_rule_only() -> None:
    rule = load_rule(DETECTIONS / "T1218.003-cmstp")
    assert rule.path is not None and rule.path.name == "rule.sigma.yml"
    results = load_rules([DETECTIONS / "T1218.003-cmstp"])
    assert [type(r).__name__ for r in results] == ["LoadedRule"]


def test_pipelines_do_not_leak_between_backends() -> None:
    rule = load_rule(DETECTIONS / "T1218.003-cmstp")
    before = [t.sql() for t in compile_rule(rule)]
    convert_all(rule)  # every backend's pipeline runs on its own fresh copy
    assert [t.sql() for t in compile_rule(rule)] == before
    assert "FolderPath" not in before[0]  # the Sysmon route kept Sysmon names after the XDR pipeline ran


def test_nothing_goes_to_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    rule = load_rule(DETECTIONS / "T1218.003-cmstp")
    assert compile_rule(rule)
    assert all(c.status != "failed" or c.messages for c in convert_all(rule))


def test_sigmahq_process_creation_rules_load(shared_data: Path) -> None:
    results = load_rules(shared_data / "sigmahq" / "rules" / "windows" / "process_creation")
    loaded = [r for r in results if isinstance(r, LoadedRule)]
    failed = [str(r) for r in results if isinstance(r, RuleLoadError)]
    assert len(loaded) > 1000
    assert failed == []
