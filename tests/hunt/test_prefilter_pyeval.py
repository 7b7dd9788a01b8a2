"""The prefilter never drops a match, and rules as Python answer exactly as DuckDB does (differential tests)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay.engine import DuckDBEngine
from assay.hunt.prefilter import FieldPrefilter, PrefilterTarget, TextPrefilter, regex_formula
from assay.hunt.pyeval import compile_predicate
from assay.hunt.rules import HuntTarget, compile_rule_file

RULE = """
title: {title}
id: 6a1f0e52-3c1d-4f7e-9b8a-{number:012d}
status: test
level: medium
logsource: {{category: process_creation, product: windows}}
detection:
{detection}
"""

DETECTIONS = {
    "endswith or original name": """    selection:
        - Image|endswith: '\\\\cmstp.exe'
        - OriginalFileName: 'CMSTP.EXE'
    condition: selection""",
    "contains all with wildcard chars": """    selection:
        CommandLine|contains|all: ['100%_', "it's", '\\\\temp\\\\']
    condition: selection""",
    "startswith and not": """    selection:
        CommandLine|startswith: 'powershell'
    filter:
        ParentImage|endswith: '\\\\explorer.exe'
    condition: selection and not filter""",
    "pure not": """    filter:
        Image|endswith: '\\\\svchost.exe'
    condition: not filter""",
    "regex": """    selection:
        CommandLine|re: '(?i)-e(nc|ncodedcommand)?\\s+[a-z0-9+/=]{8,}'
    condition: selection""",
    "cased wildcard": """    selection:
        CommandLine|cased: '*İstanbul?Σ*'
    condition: selection""",
    "keywords": """    keywords:
        - 'mimikatz'
        - 'sekurlsa::'
    condition: keywords""",
    "windash": """    selection:
        CommandLine|windash|contains: '-decode'
    condition: selection""",
    "null and exists": """    selection:
        ParentCommandLine: null
        Image|exists: true
    condition: selection""",
}


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> list[HuntTarget]:
    from assay.hunt.rules import _rule_from_record

    found: list[HuntTarget] = []
    folder = tmp_path_factory.mktemp("rules")
    for number, (title, detection) in enumerate(DETECTIONS.items()):
        path = folder / f"rule{number}.yml"
        text = RULE.format(title=title, number=number, detection=detection)
        path.write_text(text, encoding="utf-8")
        rule = _rule_from_record(compile_rule_file(str(path), text), str(path))
        assert not isinstance(rule, Exception) and hasattr(rule, "targets"), rule
        found.extend(t for t in rule.targets if t.route == "sysmon:1")  # type: ignore[union-attr]
    assert len(found) == len(DETECTIONS)
    return found


VALUES = st.sampled_from([
    "C:\\Windows\\System32\\cmstp.exe", "C:\\WINDOWS\\SYSTEM32\\CMSTP.EXE", "cmstp.exe", "C:\\x\\cmstp.exe.bak",
    "powershell -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoA", "powershell.exe -EncodedCommand aGVsbG8gd29ybGQ=",
    "cmd /c echo 100%_done it's in C:\\Temp\\x", "cmd /c echo 100%Xdone it's in C:\\Temp\\x", "İstanbul Σ",
    "İstanbulXΣ.exe", "istanbul σ", "mimikatz.exe sekurlsa::logonpasswords", "certutil /decode a b",
    "certutil –decode a b", "C:\\Windows\\explorer.exe", "C:\\Windows\\System32\\svchost.exe", "", "%", "_",
    "\\\\server\\share", 'quote " and backslash \\', "tab\tnewline\n", "ẞ", "K",
])
EVENT = st.fixed_dictionaries({}, optional={
    "Image": VALUES, "OriginalFileName": VALUES, "CommandLine": VALUES, "ParentImage": VALUES,
    "ParentCommandLine": VALUES, "User": VALUES})


def _duckdb_matches(engine: DuckDBEngine, target: HuntTarget, fields: dict[str, Any]) -> bool:
    engine.connection.execute("DELETE FROM RawEvents")
    engine.connection.execute(
        "INSERT INTO RawEvents (AssayEventId, Channel, EventID, Fields) VALUES "
        "(1, 'Microsoft-Windows-Sysmon/Operational', 1, ?::MAP(VARCHAR, VARCHAR))", [fields])
    return bool(engine.run(f"SELECT count(*) FROM RawEvents WHERE {target.where_duckdb}").rows[0][0])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=EVENT)
def test_python_equals_duckdb_and_prefilter_keeps_every_match(targets: list[HuntTarget],
                                                              fields: dict[str, Any]) -> None:
    import json

    engine = _ENGINE.setdefault("engine", DuckDBEngine(None))
    index = FieldPrefilter([PrefilterTarget(t.channels, t.event_ids, t.formula) for t in targets])
    text_index = TextPrefilter([PrefilterTarget(t.channels, t.event_ids, t.formula) for t in targets])
    channel = "Microsoft-Windows-Sysmon/Operational"
    candidates = set(index.candidates(fields, {"EventID": "1", "Channel": channel}, channel, 1))
    record = json.dumps({"Event": {"System": {"Channel": channel, "EventID": 1}, "EventData": fields}})
    text_candidates = set(text_index.candidates(record, trusted_escaping=False))
    for number, target in enumerate(targets):
        assert target.python is not None
        expected = _duckdb_matches(engine, target, fields)
        actual = compile_predicate(target.python)(fields, 1, channel, None, None)
        assert actual == expected, f"{target.where_duckdb} on {fields}"
        if expected:
            assert number in candidates, f"field prefilter dropped a match: {target.formula} on {fields}"
            assert number in text_candidates, f"text prefilter dropped a match: {target.formula} on {record}"


_ENGINE: dict[str, DuckDBEngine] = {}


def test_regex_literals_are_required_runs_only() -> None:
    formula = regex_formula("F:CommandLine", r"(?i)\\temp\\[a-z]+\.(ps1|bat)$")
    # a group ends a literal run: "." and then one of the branches
    assert formula == ("A", (("L", "F:CommandLine", "\\temp\\"), ("L", "F:CommandLine", "."),
                             ("O", (("L", "F:CommandLine", "ps1"), ("L", "F:CommandLine", "bat")))))
    # optional parts and classes require nothing
    assert regex_formula("F:CommandLine", r"a?b*[cd]") == ("T",)

