"""Conversion through pySigma backends: a status per target, backend reasons kept, known defects reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from assay.cli.main import cli
from assay.errors import SigmaError
from assay.sigma import convert, convert_all, list_targets, load_rule
from assay.sigma.conversion import TARGETS, mixes_and_or_unparenthesized
from tests.conftest import DETECTIONS

CMSTP = DETECTIONS / "T1218.003-cmstp"

REQUIRED_TARGETS = {"microsoft-xdr", "sentinel-securityevent", "sentinel-asim", "splunk", "splunk-cim",
                    "elastic-esql", "elastic-eql", "elastic-lucene"}

SECURITY_4688_RULE = r"""title: Net User Add From Command Line
id: 6c2b7a1e-0f3d-4e5a-9b8c-7d6e5f4a3b2c
status: test
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\net.exe'
        CommandLine|contains|all:
            - ' user '
            - ' /add'
    condition: selection
level: medium
"""


def test_every_required_target_is_configured() -> None:
    assert {t.name for t in list_targets()} >= REQUIRED_TARGETS
    statuses = {c.target: c.status for c in convert_all(CMSTP)}
    assert set(statuses) == set(TARGETS)


def test_defender_xdr_kql() -> None:
    conversion = convert(CMSTP, "microsoft-xdr")
    assert conversion.status == "converted"
    assert conversion.query is not None
    assert conversion.query.startswith("DeviceProcessEvents")
    assert 'FolderPath endswith "\\\\cmstp.exe"' in conversion.query
    assert "ProcessVersionInfoOriginalFileName" in conversion.query


def test_asim_defect_is_reported_and_worked_around() -> None:
    conversion = convert(CMSTP, "sentinel-asim")
    assert conversion.status == "converted-with-warnings"
    assert any("TargetProcessFilename" in m and "known backend defect" in m for m in conversion.messages)
    assert conversion.query is not None
    assert "TargetProcessFileOriginalName" in conversion.query
    assert "TargetProcessFilename" not in conversion.query


def test_securityevent_failure_keeps_the_backend_reason() -> None:
    # Security 4688 has no OriginalFileName: the Azure Monitor pipeline refuses the rule, and says why.
    conversion = convert(CMSTP, "sentinel-securityevent")
    assert conversion.status == "failed"
    assert conversion.query is None
    assert any("OriginalFileName" in m for m in conversion.messages)
    assert all(len(m) < 700 for m in conversion.messages)  # the list of every valid field is cut off


def test_securityevent_converts_a_rule_4688_can_express(tmp_path: Path) -> None:
    path = tmp_path / "net_user_add.yml"
    path.write_text(SECURITY_4688_RULE, encoding="utf-8")
    conversion = convert(path, "sentinel-securityevent")
    assert conversion.status == "converted"
    assert conversion.query is not None and conversion.query.startswith("SecurityEvent")
    assert "NewProcessName" in conversion.query


def test_splunk_plain_and_cim() -> None:
    plain = convert(CMSTP, "splunk")
    cim = convert(CMSTP, "splunk-cim")
    assert plain.status == "converted" and plain.query is not None and 'Image="*\\\\cmstp.exe"' in plain.query
    assert cim.status == "converted" and cim.query is not None and "datamodel=Endpoint.Processes" in cim.query


def test_elastic_targets() -> None:
    for target, marker in (("elastic-esql", "from * metadata"), ("elastic-eql", "any where"),
                           ("elastic-lucene", "process.executable")):
        conversion = convert(CMSTP, target)
        assert conversion.status == "converted", (target, conversion.messages)
        assert conversion.query is not None and marker in conversion.query


def test_spl2_precedence_is_flagged() -> None:
    conversion = convert(CMSTP, "splunk-spl2")
    assert conversion.status == "converted-with-warnings"
    assert any("precedence" in m for m in conversion.messages)
    assert mixes_and_or_unparenthesized('a="x" OR b="y" AND c="z"')
    assert not mixes_and_or_unparenthesized('(a="x" OR b="y") AND c="z AND OR"')


def test_unknown_target_suggests_the_closest() -> None:
    with pytest.raises(SigmaError, match="unknown conversion target") as raised:
        convert(CMSTP, "microsoft-xdrr")
    assert "microsoft-xdr" in (raised.value.hint or "")


def test_autodiscovery_does_not_change_the_pipeline_we_use() -> None:
    from sigma.plugins import InstalledSigmaPlugins

    InstalledSigmaPlugins.autodiscover()
    conversion = convert(CMSTP, "microsoft-xdr")
    assert conversion.status == "converted"
    assert conversion.pipeline == TARGETS["microsoft-xdr"].pipeline_name


def test_cli_convert_prints_queries_and_statuses() -> None:
    result = CliRunner().invoke(cli, ["convert", str(CMSTP), "--to", "microsoft-xdr", "--to", "sentinel-asim"])
    assert result.exit_code == 0, result.output
    assert "== microsoft-xdr: converted" in result.output
    assert "== sentinel-asim: converted-with-warnings" in result.output
    assert "DeviceProcessEvents" in result.output


def test_cli_convert_json() -> None:
    result = CliRunner().invoke(cli, ["convert", str(CMSTP), "--to", "sentinel-securityevent", "--format", "json"])
    assert result.exit_code == 1  # the only requested target failed
    report = json.loads(result.stdout)
    assert report["conversions"][0]["status"] == "failed"


def test_cli_convert_unknown_target_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["convert", str(CMSTP), "--to", "splunkk"])
    assert result.exit_code == 2
    assert "did you mean 'splunk'" in result.output
    assert "Traceback" not in result.output


def test_cli_convert_list() -> None:
    result = CliRunner().invoke(cli, ["convert", "--list"])
    assert result.exit_code == 0
    for target in REQUIRED_TARGETS:
        assert target in result.output
    assert "installed pySigma backend packages" in result.output


def test_conversion_of_a_rule_that_does_not_load(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(SECURITY_4688_RULE.replace("|contains|all", "|allcontains"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["convert", str(path)])
    assert result.exit_code == 1
    assert f"{path}:" in result.output and "allcontains" in result.output
    with pytest.raises(SigmaError):
        load_rule(path)
