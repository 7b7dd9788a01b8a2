"""The Sigma semantics suite: every case of ``semantics_cases.yml`` through ``assay sigma eval`` and the table path.

Both paths must give exactly the matches the Sigma specification requires, so they also agree with each other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from assay.cli.main import cli
from assay.engine import DuckDBEngine
from assay.sigma import compile_rule, load_rule
from assay.sigma.compiler import routes_for_rule
from assay.sigma.evaluation import evaluate_target

CASES_FILE = Path(__file__).with_name("semantics_cases.yml")
CASES: list[dict[str, Any]] = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))["cases"]


def rule_text(case: dict[str, Any]) -> str:
    rule = {
        "title": f"semantics: {case['name']}",
        "id": "5d0c1f2e-8a7b-4c3d-9e1f-0a2b3c4d5e6f",
        "status": "test",
        "logsource": case.get("logsource", {"category": "process_creation", "product": "windows"}),
        "detection": case["detection"],
        "level": "medium",
    }
    return yaml.safe_dump(rule, sort_keys=False, allow_unicode=True)


def write_case(case: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    rule_path = folder / "rule.yml"
    rule_path.write_text(rule_text(case), encoding="utf-8")
    events_path = folder / "events.jsonl"
    events_path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in case["events"]),
                           encoding="utf-8")
    return rule_path, events_path


def test_suite_has_at_least_40_cases() -> None:
    assert len(CASES) >= 40
    assert len({c["name"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_sigma_eval_cli(case: dict[str, Any], tmp_path: Path) -> None:
    rule_path, events_path = write_case(case, tmp_path)
    result = CliRunner().invoke(cli, ["sigma", "eval", str(rule_path), str(events_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    matched = [event["record"] - 1 for event in report["events"] if event["matched"]]
    assert matched == case["match"], f"{case['name']} -> expected {case['match']} got {matched}"


@pytest.fixture(scope="module")
def engine() -> Iterator[DuckDBEngine]:
    with DuckDBEngine() as shared:
        yield shared


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_table_path(case: dict[str, Any], tmp_path: Path, engine: DuckDBEngine) -> None:
    rule_path, _ = write_case(case, tmp_path)
    rule = load_rule(rule_path)
    sysmon_or_channel_route = next(r for r in routes_for_rule(rule) if not r.typed)
    event_id = case.get("event_id", 1)
    assert event_id in sysmon_or_channel_route.event_ids
    engine.connection.execute('DELETE FROM "RawEvents"')
    for index, event in enumerate(case["events"]):
        engine.connection.execute(
            'INSERT INTO "RawEvents" ("AssayEventId", "Timestamp", "Channel", "Provider", "EventID", "Computer", '
            '"SourceFile", "SourceRecord", "SourceFormat", "Fields") VALUES '
            "(?, TIMESTAMP '2026-03-02 09:14:07', ?, 'Microsoft-Windows-Sysmon', ?, 'WS-FIN-042.corp.example', "
            "'semantics.evtx', ?, 'evtx', map(?, ?))",
            [index + 1, sysmon_or_channel_route.channels[0], event_id, index + 1, list(event),
             [str(v) for v in event.values()]])
    target = compile_rule(rule, targets=[sysmon_or_channel_route.name])[0]
    route = evaluate_target(target, engine)
    matched = [event_id - 1 for event_id in route.event_ids]
    assert matched == case["match"], f"{case['name']} -> expected {case['match']} got {matched} ({route.message})"
