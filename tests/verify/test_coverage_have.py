"""``assay coverage --have``: which detections, and which of their forms, run on the telemetry a user has."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from assay.catalog.loader import load_catalog
from assay.cli.main import cli
from assay.errors import UsageError
from assay.verify.coverage import data_source_coverage, parse_have
from tests.conftest import DETECTIONS

CMSTP = DETECTIONS / "T1218.003-cmstp"


def _forms(have: str, root: Path = CMSTP) -> dict[str, tuple[bool, str]]:
    rows = data_source_coverage(load_catalog(root).detections, parse_have(have))
    return {need.form: (need.runs, need.why) for need in rows[0].forms}


def test_sysmon_and_security_run_the_sigma_forms_not_the_defender_kql() -> None:
    forms = _forms("sysmon,security")
    assert forms["sigma"][0] and forms["converted:sqlite"][0]
    assert forms["kql"] == (False, "needs defender for DeviceProcessEvents")
    assert forms["converted:microsoft-xdr"] == (False, "needs one of defender")
    row = data_source_coverage(load_catalog(CMSTP).detections, parse_have("sysmon,security"))[0]
    assert row.status == "partly"
    assert row.sources == ("sysmon", "security", "defender", "ecs")


def test_defender_alone_runs_the_kql_and_the_sigma_rule_on_its_device_route() -> None:
    forms = _forms("defender")
    assert forms["kql"] == (True, "runs on defender") and forms["sigma"] == (True, "runs on defender")
    assert not forms["converted:sqlite"][0]


def test_a_kql_query_needs_every_table_it_reads(tmp_path: Path) -> None:
    folder = tmp_path / "T1218.003-cmstp"
    shutil.copytree(CMSTP, folder)
    detection = yaml.safe_load((folder / "detection.yml").read_text(encoding="utf-8"))
    detection["required_tables"] = ["DeviceProcessEvents", "SecurityEvent"]
    (folder / "detection.yml").write_text(yaml.safe_dump(detection, sort_keys=False), encoding="utf-8")
    assert _forms("defender", tmp_path)["kql"] == (False, "needs security for SecurityEvent")
    assert _forms("defender,security", tmp_path)["kql"][0]


def test_unknown_source_is_a_usage_error_with_a_suggestion() -> None:
    with pytest.raises(UsageError, match="unknown data source 'sysmn'") as caught:
        parse_have("sysmn,security")
    assert "did you mean 'sysmon'" in (caught.value.hint or "")
    result = CliRunner().invoke(cli, ["coverage", str(DETECTIONS), "--have", "evtx"])
    assert result.exit_code == 2


def test_cli_table_and_json() -> None:
    runner = CliRunner()
    table = runner.invoke(cli, ["coverage", str(DETECTIONS / "T1218.003-cmstp"), "--have", "sysmon,security"])
    assert table.exit_code == 0, table.output
    assert "kql: needs defender for DeviceProcessEvents" in table.output
    assert "1 detection(s): 0 run in every form, 1 in some forms, 0 cannot run on security, sysmon" in table.output
    result = runner.invoke(cli, ["coverage", str(DETECTIONS / "T1218.003-cmstp"), "--have", "ecs", "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["have"] == ["ecs"]
    forms = {f["form"]: f for f in payload["detections"][0]["forms"]}
    assert forms["sigma"]["runs"] and not forms["kql"]["runs"]
