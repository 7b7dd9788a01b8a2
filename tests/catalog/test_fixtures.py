"""Fixtures and defaults: hosts, users and process templates named once, and every event-kind example in
docs/catalog.md validating against the models (so the documentation cannot drift from the format)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from assay.catalog import clear_cache, load_detection
from assay.catalog.loader import shared_fixtures
from assay.catalog.models import EVENT_KINDS, Activity, validate_scenario_file
from assay.verify.synth import synthesize

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "detections" / "_shared" / "fixtures.yml"


@pytest.fixture(scope="module")
def fixtures() -> Any:
    return shared_fixtures(ROOT / "detections" / "T1218.003-cmstp")


def _scenario(activity: dict[str, Any], scenario_id: str = "own-fixture-test") -> dict[str, Any]:
    return {"id": scenario_id, "title": "fixture test", "kind": "attack", "provenance": {"own": "test"},
            "expected": {"sigma": "fires", "kql": "fires"}, "activity": activity}


def test_the_shared_fixtures_load_and_every_template_makes_a_process(fixtures: Any) -> None:
    assert {"dc01", "ws-finance-01"} <= set(fixtures.hosts) and {"alice", "system"} <= set(fixtures.users)
    for name in fixtures.processes:
        parsed = validate_scenario_file({"scenarios": [_scenario(
            {"host": "ws-finance-01", "user": "alice", "start": "2026-11-20T09:14:03Z",
             "processes": [{"use": name}]})]}, fixtures)
        activity = parsed.scenarios[0].activity
        assert activity is not None and activity.processes[0].id == name
    services = validate_scenario_file({"scenarios": [_scenario(
        {"host": "dc01", "user": "alice", "start": "2026-11-20T09:14:03Z",
         "processes": [{"use": "services"}]})]}, fixtures).scenarios[0].activity
    assert services is not None and services.processes[0].user is not None
    assert services.processes[0].user.sid == "S-1-5-18"


def test_defaults_and_local_fixtures_fill_every_scenario(fixtures: Any) -> None:
    data = {
        "fixtures": {"users": {"mallory": {"domain": "CORP", "name": "mallory",
                                           "sid": "S-1-5-21-3623811015-3361044348-30300820-6666"}}},
        "defaults": {"host": "dc01", "user": "mallory", "start": "2026-11-20T09:14:03Z"},
        "scenarios": [
            _scenario({"kerberos": [{"kind": "service-ticket", "service": "svc_sql", "encryption": "rc4"}]},
                      "own-one"),
            _scenario({"user": "alice", "processes": [{"use": "explorer-cmd", "id": "cmd"},
                                                      {"id": "whoami", "parent": "cmd",
                                                       "image": "C:\\Windows\\System32\\whoami.exe",
                                                       "command_line": "whoami /all"}]}, "own-two"),
        ]}
    parsed = validate_scenario_file(data, fixtures)
    first, second = (s.activity for s in parsed.scenarios)
    assert first is not None and second is not None
    assert first.host.name == "DC01" and first.user.name == "mallory"
    assert second.user.name == "alice.w" and second.host.name == "DC01"
    assert second.processes[0].parent_image == "C:\\Windows\\explorer.exe"


def test_an_unknown_fixture_name_lists_the_known_ones(fixtures: Any) -> None:
    with pytest.raises(ValidationError, match=r"'bob' is not a user fixture \(known: .*alice"):
        validate_scenario_file({"scenarios": [_scenario(
            {"host": "dc01", "user": "bob", "start": "2026-11-20T09:14:03Z",
             "logons": [{"type": "network"}]})]}, fixtures)
    with pytest.raises(ValidationError, match="not a process fixture"):
        validate_scenario_file({"scenarios": [_scenario(
            {"host": "dc01", "user": "alice", "start": "2026-11-20T09:14:03Z",
             "processes": [{"use": "nope"}]})]}, fixtures)
    with pytest.raises(ValidationError, match="not an activity key"):
        validate_scenario_file({"defaults": {"hots": "dc01"}, "scenarios": [_scenario(
            {"host": "dc01", "user": "alice", "start": "2026-11-20T09:14:03Z", "logons": [{}]})]}, fixtures)


def test_the_loader_gives_a_detection_folder_the_shared_fixtures(tmp_path: Path) -> None:
    catalog = tmp_path / "detections"
    (catalog / "_shared").mkdir(parents=True)
    (catalog / "_shared" / "fixtures.yml").write_text(SHARED.read_text(encoding="utf-8"), encoding="utf-8")
    source = ROOT / "detections" / "T1218.003-cmstp"
    folder = catalog / "T1218.003-cmstp"
    folder.mkdir()
    for name in ("detection.yml", "rule.sigma.yml", "sentinel.kql"):
        (folder / name).write_text((source / name).read_text(encoding="utf-8"), encoding="utf-8")
    tests = yaml.safe_load((source / "tests.yml").read_text(encoding="utf-8"))
    first = tests["scenarios"][0]
    first["activity"]["host"] = "ws-lab"
    first["activity"]["user"] = "art.operator"
    (folder / "tests.yml").write_text(yaml.safe_dump({"scenarios": [first]}, sort_keys=False), encoding="utf-8")
    clear_cache()
    loaded = load_detection(folder)
    activity = loaded.scenarios[0].activity
    assert activity is not None and activity.host.name == "WS-LAB-0107" and activity.user.name == "art.operator"


def _doc_examples() -> list[tuple[str, dict[str, Any]]]:
    text = (ROOT / "docs" / "catalog.md").read_text(encoding="utf-8")
    section = text[text.index("### Event kinds: how to describe each"):text.index("### Where each form runs")]
    examples = []
    for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)):
        data = yaml.safe_load(block)
        assert isinstance(data, dict) and set(data) <= set(EVENT_KINDS), block
        examples.append((f"example-{index}-{'-'.join(data).replace('_', '-')}", data))
    return examples


@pytest.mark.parametrize(("name", "events"), _doc_examples(), ids=[n for n, _ in _doc_examples()])
def test_every_event_kind_example_in_the_docs_validates_and_synthesizes(fixtures: Any, name: str,
                                                                       events: dict[str, Any]) -> None:
    refs = {item.get(key) for items in events.values() for item in items for key in ("process", "target")
            if isinstance(item.get(key), str) and key == "process"}
    processes = [{"id": ref, "image": f"C:\\Tools\\{ref}.exe", "command_line": f"{ref}.exe",
                  "parent_image": "C:\\Windows\\explorer.exe", "parent_command_line": "explorer.exe"}
                 for ref in sorted(r for r in refs if r)]
    parsed = validate_scenario_file({"fixtures": {"users": {"support": fixtures.users["support"].model_dump()}},
                                     "scenarios": [_scenario(
        {"host": "dc01", "user": "alice", "start": "2026-11-20T09:14:03Z", "processes": processes, **events},
        name)]}, fixtures)
    scenario = parsed.scenarios[0]
    assert isinstance(scenario.activity, Activity)
    telemetry = synthesize(scenario)
    assert telemetry.security or telemetry.sysmon or telemetry.windows or telemetry.defender
