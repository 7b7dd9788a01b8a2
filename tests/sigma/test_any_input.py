"""Any YAML text gives a rule or a located error; one error has one location in every command; one bad rule
never stops a hunt.

Property tests (hypothesis) mutate a realistic rule (our own, below) the way a hand edit or a fuzzer does: lines
dropped, duplicated or swapped, characters inserted, keys and conditions replaced with odd YAML (complex keys,
tags, anchors, dates that do not exist, deep nesting). Whatever the text, loading it returns a rule or raises a
``SigmaError`` carrying file, line and column; compiling a rule that loaded never raises anything else.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assay.cli.main import cli
from assay.errors import AssayError, SigmaError
from assay.sigma.compiler import compile_rule
from assay.sigma.loading import load_rule_text

RULE = r"""title: Rundll32 Loading A Script Moniker
id: 5d7b2a9e-6c1f-4e3a-8b0d-2f4c6e8a0b11
status: test
description: rundll32 started with a javascript or vbscript moniker in its command line
author: Assay detection engineering
date: 2026-11-30
tags:
    - attack.defense-evasion
    - attack.t1218.011
logsource:
    category: process_creation
    product: windows
detection:
    selection_img:
        - Image|endswith: '\rundll32.exe'
        - OriginalFileName: 'RUNDLL32.EXE'
    selection_cli:
        CommandLine|contains|all:
            - 'javascript:'
            - 'RunHTMLApplication'
    filter_main:
        ParentImage|startswith: 'C:\Program Files\'
    condition: all of selection_* and not 1 of filter_*
falsepositives:
    - Unknown
level: high
"""

ODD_FRAGMENTS = [
    "? [a]\n: x", "? {a: 1}\n: y", "!!python/object:os.system ls", "&a [*a]", "*undefined", "2026-02-30",
    "[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]", "{", "'", '"\\x', "- - -", ": :", "|endswith: x",
    "all of nomatch_*", "1 of them and", "not", "selection_img and", "(selection_img", "selection_img )",
    "condition: [x, y]", "Image|re: '('", "Image|base64offset|contains: x", "Image|cidr: 999.1.1.1/99",
    "Image|expand: '%x%'", "EventID|gt: abc", "null", "~", "0x", "1e999", "\t", "\ufeff", "\x00", "\u2028",
    "<<: *a", "!!binary xyz", "%YAML 9.9", "---", "...", "#", "@", "`",
]


@st.composite
def mutated_rules(draw: st.DrawFn) -> str:
    lines = RULE.splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        action = draw(st.sampled_from(["drop", "duplicate", "swap", "insert", "replace_value", "indent", "chars"]))
        index = draw(st.integers(min_value=0, max_value=max(0, len(lines) - 1)))
        if not lines:
            lines = [""]
        if action == "drop":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "swap":
            other = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        elif action == "insert":
            indent = " " * draw(st.sampled_from([0, 2, 4, 8]))
            lines.insert(index, indent + draw(st.sampled_from(ODD_FRAGMENTS)))
        elif action == "replace_value":
            line = lines[index]
            if ":" in line:
                key = line.split(":", 1)[0]
                lines[index] = f"{key}: {draw(st.sampled_from(ODD_FRAGMENTS))}"
        elif action == "indent":
            lines[index] = " " * draw(st.integers(min_value=0, max_value=9)) + lines[index].lstrip()
        else:
            line = lines[index]
            at = draw(st.integers(min_value=0, max_value=len(line)))
            lines[index] = line[:at] + draw(st.text(max_size=4)) + line[at:]
    return "\n".join(lines) + "\n"


def _assert_located(error: AssayError, path: Path) -> None:
    span = error.span
    assert span is not None and span.file == str(path), f"no file: {error!r}"
    assert span.line is not None and span.line >= 1, f"no line: {error}"
    assert span.col is not None and span.col >= 1, f"no column: {error}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_rules())
def test_any_mutated_rule_loads_or_fails_at_a_file_line_and_column(text: str) -> None:
    path = Path("/cases/rules/mutated.yml")
    try:
        rule = load_rule_text(text, path)
    except SigmaError as error:
        _assert_located(error, path)
        return
    try:
        compile_rule(rule)
    except SigmaError as error:
        _assert_located(error, path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_any_text_at_all_loads_or_fails_located(text: str) -> None:
    path = Path("/cases/rules/noise.yml")
    try:
        load_rule_text(text, path)
    except SigmaError as error:
        _assert_located(error, path)


CONDITIONS = st.recursive(
    st.sampled_from(["selection_img", "selection_cli", "filter_main", "them", "selection_*", "filter_*", "nomatch_*",
                     "missing", "1", "(", ")", ""]),
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(["and", "or"]), inner, inner).map(lambda t: f"{t[1]} {t[0]} {t[2]}"),
        inner.map(lambda c: f"not {c}"), inner.map(lambda c: f"({c})"),
        st.tuples(st.sampled_from(["1 of", "all of", "any of"]), st.sampled_from(
            ["selection_*", "filter_*", "them", "nomatch_*", "selection_img"])).map(" ".join)),
    max_leaves=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONDITIONS)
@example("not selection_img and 1 of nomatch_*")  # an empty pattern inside a condition, not at its top
@example("all of nomatch_*")
def test_any_condition_gives_a_rule_or_an_error_at_the_condition(condition: str) -> None:
    path = Path("/cases/rules/condition.yml")
    text = RULE.replace("all of selection_* and not 1 of filter_*", condition.replace("'", "") or "''")
    condition_line = next(n for n, line in enumerate(text.splitlines(), start=1) if "condition:" in line)
    try:
        rule = load_rule_text(text, path)
        compile_rule(rule)
    except SigmaError as error:
        _assert_located(error, path)
        assert error.span is not None
        assert error.span.line == condition_line, f"{error} (condition on line {condition_line})"


# -- the inputs the issue names, through every command ----------------------------------------------------------

BAD_RULES = {
    "complex_key.yml": (RULE.replace("    selection_cli:\n", "    selection_cli:\n        ? [a]\n        : x\n"),
                        "mapping key"),
    "nomatch.yml": (RULE.replace("all of selection_* and not 1 of filter_*", "all of nomatch_*"), "selects nothing"),
    "duplicate_key.yml": (RULE.replace("    filter_main:\n", "    selection_img:\n        Image: x\n    filter_main:\n"),
                          "duplicate key"),
    "undefined.yml": (RULE.replace("all of selection_* and not 1 of filter_*", "selection_img and missing"),
                      "not defined"),
    "bad_date.yml": (RULE.replace("date: 2026-11-30", "date: 2026-02-30"), "day is out of range"),
}


@pytest.fixture
def bad_rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    for name, (text, _) in BAD_RULES.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "good.yml").write_text(RULE, encoding="utf-8")
    return folder


def _location(output: str, name: str) -> str:
    """The file:line:col the output gives for a rule file."""
    import re

    found = re.search(re.escape(name) + r":(\d+):(\d+)", output)
    assert found is not None, f"{name} not located in:\n{output}"
    return found.group(0)


def test_one_error_one_location_in_sigma_eval_convert_and_hunt(bad_rules: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"Image": "C:\\Windows\\System32\\rundll32.exe",
                                  "CommandLine": "rundll32 javascript:\"\\..\\mshtml,RunHTMLApplication\""}) + "\n",
                      encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "events.jsonl").write_text(
        json.dumps({"Event": {"System": {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1,
                                         "Computer": "WKS-01", "TimeCreated": {"#attributes": {
                                             "SystemTime": "2026-11-30T10:00:00.0000000Z"}}},
                              "EventData": {"Image": "C:\\Windows\\System32\\rundll32.exe",
                                            "CommandLine": "rundll32 javascript:\"\\..\\mshtml,RunHTMLApplication\""}}})
        + "\n", encoding="utf-8")
    runner = CliRunner()
    hunt = runner.invoke(cli, ["hunt", str(logs), "--rules", str(bad_rules), "--workers", "1", "--no-cache",
                               "--format", "json"])
    assert hunt.exit_code == 1, hunt.output  # the other rules ran, but some did not load: an error
    document = json.loads(hunt.stdout)
    assert document["hits"] == 1 and document["timeline"][0]["rule"] == "Rundll32 Loading A Script Moniker"
    not_evaluated = {Path(p["source"]).name: p for p in document["not_evaluated"]}
    assert set(not_evaluated) == set(BAD_RULES)
    hunt_text = runner.invoke(cli, ["hunt", str(logs), "--rules", str(bad_rules), "--workers", "1", "--no-cache"])
    assert hunt_text.exit_code == 1
    for name, (_text, words) in BAD_RULES.items():
        assert words in not_evaluated[name]["reason"], not_evaluated[name]
        where = _location(not_evaluated[name]["reason"], name)
        assert _location(hunt_text.output, name) == where
        evaluated = runner.invoke(cli, ["sigma", "eval", str(bad_rules / name), str(events)])
        assert evaluated.exit_code == 1 and "Traceback" not in evaluated.output
        assert _location(evaluated.output, name) == where, evaluated.output
        converted = runner.invoke(cli, ["convert", str(bad_rules / name)])
        assert converted.exit_code == 1 and "Traceback" not in converted.output
        assert _location(converted.output, name) == where, converted.output


def test_lint_gives_the_same_location_as_sigma_eval(tmp_path: Path) -> None:
    import shutil

    from tests.conftest import DETECTIONS

    source = DETECTIONS / "T1218.003-cmstp"
    if not source.is_dir():
        pytest.skip("the catalog's cmstp detection is missing")
    runner = CliRunner()
    events = tmp_path / "events.jsonl"
    events.write_text('{"Image": "x"}\n', encoding="utf-8")
    original = (source / "rule.sigma.yml").read_text(encoding="utf-8")
    edits = {
        "complex key": ("    selection_auto_close:\n", "    selection_auto_close:\n        ? [a]\n        : x\n"),
        "duplicate key": ("    selection_auto_close:\n        CommandLine|contains:\n",
                          "    selection_auto_close:\n        CommandLine|contains: x\n        CommandLine|contains:\n"),
        "bad date": ("date: 2026-11-28", "date: 2026-02-30"),
    }
    for label, (old, new) in edits.items():
        assert old in original, label
        folder = tmp_path / label.replace(" ", "-") / "T1218.003-cmstp"
        shutil.copytree(source, folder)
        rule = folder / "rule.sigma.yml"
        rule.write_text(original.replace(old, new, 1), encoding="utf-8")
        linted = runner.invoke(cli, ["lint", str(folder)])
        assert "Traceback" not in linted.output
        evaluated = runner.invoke(cli, ["sigma", "eval", str(rule), str(events)])
        assert _location(linted.output, "rule.sigma.yml") == _location(evaluated.output, "rule.sigma.yml"), label
    condition = tmp_path / "condition" / "T1218.003-cmstp"
    shutil.copytree(source, condition)
    import re

    (condition / "rule.sigma.yml").write_text(re.sub(r"    condition: .*", "    condition: all of nomatch_*", original),
                                              encoding="utf-8")
    linted = runner.invoke(cli, ["lint", str(condition)])
    evaluated = runner.invoke(cli, ["sigma", "eval", str(condition / "rule.sigma.yml"), str(events)])
    assert "selects nothing" in linted.output and "selects nothing" in evaluated.output
    assert _location(linted.output, "rule.sigma.yml") == _location(evaluated.output, "rule.sigma.yml")


def test_a_rule_no_table_holds_is_listed_at_its_logsource(tmp_path: Path) -> None:
    from assay.hunt.rules import load_hunt_rules

    folder = tmp_path / "rules"
    folder.mkdir()
    text = RULE.replace("    category: process_creation\n    product: windows\n",
                        "    product: linux\n    service: auditd\n")
    (folder / "linux.yml").write_text(text, encoding="utf-8")
    problems = load_hunt_rules([folder], cache_dir=False).problems
    assert [p.kind for p in problems] == ["no-route"]
    line = next(n for n, content in enumerate(text.splitlines(), start=1) if content.startswith("logsource:"))
    assert _location(problems[0].reason, "linux.yml") == f"linux.yml:{line}:1"
