"""The catalog models are strict: frozen, unknown keys rejected, provenance and process trees consistent."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from assay.catalog.models import Activity, Detection, Provenance, Scenario, ScenarioFile

HOST = {"name": "WS-FIN-0142", "domain": "corp.contoso.com"}
USER = {"domain": "CORP", "name": "m.keller", "sid": "S-1-5-21-3623811015-3361044348-30300820-4412"}
CMD = {"id": "cmd", "image": "C:\\Windows\\System32\\cmd.exe",
       "command_line": "cmd.exe /c cmstp.exe /s C:\\Users\\m.keller\\AppData\\Local\\Temp\\netcfg.inf",
       "parent_image": "C:\\Windows\\explorer.exe", "parent_command_line": "C:\\Windows\\Explorer.EXE"}
CMSTP = {"id": "cmstp", "image": "C:\\Windows\\System32\\cmstp.exe",
         "command_line": "cmstp.exe /s C:\\Users\\m.keller\\AppData\\Local\\Temp\\netcfg.inf", "parent": "cmd"}


def activity(**overrides: Any) -> dict[str, Any]:
    return {"host": HOST, "user": USER, "start": "2026-11-21T14:02:11Z", "processes": [CMD, CMSTP], **overrides}


def scenario(**overrides: Any) -> dict[str, Any]:
    return {"id": "own-temp-inf", "title": "cmstp.exe /s with an INF in Temp", "kind": "attack",
            "provenance": {"own": "test"}, "expected": {"sigma": "fires", "kql": "fires"},
            "activity": activity(), **overrides}


def test_scenario_is_frozen_and_converted_defaults_to_sigma() -> None:
    parsed = Scenario.model_validate(scenario())
    assert parsed.expected.outcome("converted") == "fires"
    with pytest.raises(ValidationError):
        parsed.title = "changed"  # type: ignore[misc]


def test_unknown_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"extra_forbidden|Extra inputs"):
        Scenario.model_validate(scenario(expectd={"sigma": "fires"}))


def test_provenance_needs_exactly_one_source() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        Provenance.model_validate({"own": "ours", "recording": {"path": "cmstp/x.evtx"}})
    with pytest.raises(ValidationError, match="exactly one"):
        Provenance.model_validate({})


def test_recording_path_may_not_escape_shared_data() -> None:
    with pytest.raises(ValidationError, match="relative"):
        Provenance.model_validate({"recording": {"path": "../../etc/passwd"}})


def test_parent_must_be_listed_before_child() -> None:
    with pytest.raises(ValidationError, match="listed before"):
        Activity.model_validate(activity(processes=[CMSTP, CMD]))


def test_side_effects_must_name_a_scenario_process() -> None:
    files = [{"process": "powershell", "path": "C:\\Windows\\Tasks\\update.inf"}]
    with pytest.raises(ValidationError, match="not one of the scenario's processes"):
        Activity.model_validate(activity(files=files))


def test_root_process_needs_an_explicit_parent() -> None:
    orphan = {k: v for k, v in CMD.items() if not k.startswith("parent")}
    with pytest.raises(ValidationError, match="root process needs parent_image"):
        Activity.model_validate(activity(processes=[orphan]))


def test_start_time_must_carry_a_timezone() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Activity.model_validate(activity(start="2026-11-21T14:02:11"))


def test_non_recording_scenario_needs_activity() -> None:
    with pytest.raises(ValidationError, match="activity is required"):
        Scenario.model_validate(scenario(activity=None))
    recorded = Scenario.model_validate(scenario(activity=None, provenance={"recording": {"path": "cmstp/a.evtx"}}))
    assert recorded.provenance.kind == "recording"


def test_duplicate_scenario_ids_are_rejected() -> None:
    with pytest.raises(ValidationError, match="duplicate scenario id"):
        ScenarioFile.model_validate({"scenarios": [scenario(), scenario()]})


def test_detection_ids_are_canonical_uuids_and_dates_ordered() -> None:
    base = {"id": "5C191F9C-FF71-48E7-BEBB-1F04E3D6E3F8", "title": "t", "description": "d", "technique": "T1218.003",
            "severity": "high", "confidence": "high", "status": "test", "data_sources": ["Process: Process Creation"],
            "required_tables": ["DeviceProcessEvents"], "explanation": "e", "tuning": "t",
            "response": [{"title": "Scope", "action": "Read the alert"}], "investigation": "i", "author": "a",
            "created": "2026-11-28", "modified": "2026-11-28"}
    assert Detection.model_validate(base).id == "5c191f9c-ff71-48e7-bebb-1f04e3d6e3f8"
    with pytest.raises(ValidationError, match="not a UUID"):
        Detection.model_validate({**base, "id": "cmstp-1"})
    with pytest.raises(ValidationError, match="technique id"):
        Detection.model_validate({**base, "technique": "T1218.3"})
    with pytest.raises(ValidationError, match="before created"):
        Detection.model_validate({**base, "modified": "2026-11-01"})


def test_editor_json_schemas_are_current() -> None:
    """docs/schema/*.json come from the models via scripts/gen_catalog_schema.py; stale copies fail here."""
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("gen_catalog_schema", ROOT / "scripts" / "gen_catalog_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, text in module.schemas().items():
        current = (ROOT / "docs" / "schema" / name).read_text(encoding="utf-8")
        assert current == text, f"docs/schema/{name} is stale: run python scripts/gen_catalog_schema.py"
