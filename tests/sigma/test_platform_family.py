"""The catalog page's platform family beyond Microsoft, Splunk and Elastic: Google SecOps (YARA-L), IBM QRadar (AQL),
Sumo Logic (CSE), CrowdStrike LogScale and SentinelOne PowerQuery, plus the SQLite and Spark SQL forms Assay runs.
Each target has an honest status with the backend's own words; a backend that is not installed is unavailable,
never missing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from assay.sigma import convert, convert_all, load_rule
from assay.sigma.conversion import TARGETS, TargetSpec, convert_loaded
from tests.conftest import DETECTIONS

CMSTP = DETECTIONS / "T1218.003-cmstp"
FAMILY = ("google-secops", "ibm-qradar-aql", "sumo-logic", "crowdstrike-logscale", "sentinelone-powerquery",
          "sqlite", "spark-sql")


def test_the_family_is_configured_and_every_target_has_a_status() -> None:
    assert set(FAMILY) <= set(TARGETS)
    statuses = {c.target: c for c in convert_all(CMSTP)}
    for target in FAMILY:
        conversion = statuses[target]
        assert conversion.status in ("converted", "converted-with-warnings", "failed", "unavailable")
        assert conversion.query or conversion.messages, f"{target}: neither a query nor a reason"


def test_google_secops_writes_a_yara_l_rule_on_udm() -> None:
    conversion = convert(CMSTP, "google-secops")
    assert conversion.status == "converted", conversion.messages
    assert conversion.query is not None and conversion.query.startswith("rule cmstp_proxy_execution")
    assert '$event1.metadata.event_type = "PROCESS_LAUNCH"' in conversion.query
    assert "$event1.target.process.command_line" in conversion.query
    # Deprecation warnings about the backend's own imports are not messages about the rule.
    assert not any("deprecated" in message for message in conversion.messages)


def test_qradar_aql_and_logscale_read_their_platforms_fields() -> None:
    aql = convert(CMSTP, "ibm-qradar-aql")
    assert aql.status == "converted" and aql.query is not None
    assert aql.query.startswith("SELECT * FROM events WHERE devicetype=12")
    assert "LOWER(Command) LIKE '%/s%'" in aql.query
    logscale = convert(CMSTP, "crowdstrike-logscale")
    assert logscale.status == "converted" and logscale.query is not None
    assert "#event_simpleName=/^ProcessRollup2$/i" in logscale.query
    assert "OriginalFilename=/^CMSTP\\.EXE$/i" in logscale.query


def test_sumo_logic_shows_the_rule_expression_and_the_backends_confidence() -> None:
    first = convert(CMSTP, "sumo-logic")
    assert first.status == "converted" and first.query is not None
    assert first.query.startswith('(baseImage matches /.*\\\\cmstp\\.exe/ OR file_basename="CMSTP.EXE")')
    assert any(message.startswith("the backend's field-mapping confidence: ") for message in first.messages)
    # The rule JSON carries a conversion timestamp; the page's query must not change from build to build.
    assert convert(CMSTP, "sumo-logic").query == first.query


def test_sentinelone_failure_keeps_the_backends_reason_short() -> None:
    conversion = convert(CMSTP, "sentinelone-powerquery")
    assert conversion.status == "failed" and conversion.query is None
    assert "OriginalFileName" in conversion.messages[-1]
    assert "{CommandLine}" not in conversion.messages[-1]  # the list of every supported field is cut off


def test_a_backend_that_is_not_installed_is_unavailable_with_the_package_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    spec = dataclasses.replace(TARGETS["google-secops"], name="google-secops",
                               backend=("sigma.backends.not_installed_here", "NopeBackend"),
                               package="pysigma-backend-not-installed-here")
    monkeypatch.setitem(TARGETS, "google-secops", spec)
    conversion = convert_loaded(load_rule(CMSTP), "google-secops")
    assert conversion.status == "unavailable" and conversion.query is None
    assert "pip install pysigma-backend-not-installed-here" in conversion.messages[0]
    legacy: TargetSpec = dataclasses.replace(spec, package="pysigma-backend-qradar-aql")
    monkeypatch.setitem(TARGETS, "google-secops", legacy)
    reason = convert_loaded(load_rule(CMSTP), "google-secops").messages[0]
    assert "requires pySigma >=0.9.8,<0.12" in reason


def test_local_engine_targets_convert() -> None:
    sqlite = convert(CMSTP, "sqlite")
    assert sqlite.status == "converted" and sqlite.query is not None
    assert sqlite.query.startswith("SELECT * FROM logs WHERE")
    spark = convert(CMSTP, "spark-sql")
    assert spark.status == "converted" and spark.query is not None
    assert "contains(lower(CommandLine), lower('/s'))" in spark.query


def test_sentinelone_pipeline_is_applied_once(tmp_path: Path) -> None:
    # The SentinelOne PQ backend applies its pipeline itself; passing it too mapped every field twice and
    # rejected the mapped names (tgt.process.image.path), so every rule failed.
    rule = tmp_path / "rule.yml"
    rule.write_text(CMSTP_WITHOUT_ORIGINAL_FILE_NAME, encoding="utf-8")
    conversion = convert(rule, "sentinelone-powerquery")
    assert conversion.status == "converted", conversion.messages
    assert conversion.query is not None
    assert "tgt.process.image.path" in conversion.query
    assert "tgt.process.cmdline" in conversion.query


CMSTP_WITHOUT_ORIGINAL_FILE_NAME = r"""title: CMSTP silent install from a user folder
id: 0f6f4a4e-3f0c-4c55-8a57-7d1e2b9c4e11
status: test
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\cmstp.exe'
        CommandLine|contains: '/s'
    condition: selection
level: high
"""


def test_sentinelone_reason_is_this_rules_not_an_earlier_ones(tmp_path: Path) -> None:
    # The backend's shared transformation prepends each failure's field to one message: a later rule's reason
    # must name its own field only.
    other = tmp_path / "hashes.yml"
    other.write_text(CMSTP_WITHOUT_ORIGINAL_FILE_NAME.replace("CommandLine|contains: '/s'", "Hashes|contains: 'MD5='"),
                     encoding="utf-8")
    convert(other, "sentinelone-powerquery")
    reason = convert(CMSTP, "sentinelone-powerquery").messages[-1]
    assert "OriginalFileName" in reason and "Hashes" not in reason
