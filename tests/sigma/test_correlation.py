"""Correlation rules on the table path: sliding windows (not fixed buckets), group-by, order for temporal_ordered."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from assay.engine import DuckDBEngine
from assay.errors import SigmaError
from assay.sigma import evaluate, load_rule

SECURITY = "Security"
SYSMON = "Microsoft-Windows-Sysmon/Operational"
START = datetime(2026, 3, 2, 9, 14, 30)

FAILED_LOGON = """title: Failed Logon
name: failed_logon
id: 0e6a9c3b-1d2f-4a5b-8c7d-6e5f4a3b2c1d
status: test
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID: 4625
    condition: selection
"""

BRUTE_FORCE = FAILED_LOGON + """---
title: Password Guessing Against One Account
id: 1f7b0d4c-2e3a-4b6c-9d8e-7f6a5b4c3d2e
status: test
correlation:
    type: event_count
    rules:
        - failed_logon
    group-by:
        - TargetUserName
    timespan: 1m
    condition:
        gte: 5
level: high
"""

SPRAY = FAILED_LOGON + """---
title: Password Spraying From One Address
id: 2a8c1e5d-3f4b-4c7d-8e9f-8a7b6c5d4e3f
status: test
correlation:
    type: value_count
    rules:
        - failed_logon
    group-by:
        - IpAddress
    timespan: 5m
    condition:
        field: TargetUserName
        gte: 3
level: high
"""

RECON_RULES = r"""title: Whoami Execution
name: whoami
id: 3b9d2f6e-4a5c-4d8e-9f0a-9b8c7d6e5f4a
status: test
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\whoami.exe'
    condition: selection
---
title: Domain Admins Enumeration
name: net_group_admins
id: 4c0e3a7f-5b6d-4e9f-8a1b-0c9d8e7f6a5b
status: test
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        CommandLine|contains: 'group "Domain Admins"'
    condition: selection
"""

RECON_TEMPORAL = RECON_RULES + """---
title: Quick Local Then Domain Reconnaissance
id: 5d1f4b8a-6c7e-4f0a-9b2c-1d0e9f8a7b6c
status: test
correlation:
    type: {kind}
    rules:
        - whoami
        - net_group_admins
    group-by:
        - Computer
    timespan: 2m
level: medium
"""


def add_event(engine: DuckDBEngine, event_id: int, when: datetime, channel: str, eid: int, computer: str,
              fields: dict[str, str]) -> None:
    engine.connection.execute(
        'INSERT INTO "RawEvents" ("AssayEventId", "Timestamp", "Channel", "Provider", "EventID", "Computer", '
        '"SourceFile", "SourceRecord", "SourceFormat", "Fields") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, map(?, ?))',
        [event_id, when, channel, "Microsoft-Windows-Security-Auditing" if channel == SECURITY else "Sysmon", eid,
         computer, "dc01-security.evtx", event_id, "evtx", list(fields), list(fields.values())])


def failed_logon(user: str, ip: str) -> dict[str, str]:
    return {"TargetUserName": user, "TargetDomainName": "CORP", "IpAddress": ip, "LogonType": "3",
            "Status": "0xc000006d", "SubStatus": "0xc000006a", "WorkstationName": "KALI"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "correlation.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_event_count_window_slides_across_minute_boundaries(tmp_path: Path) -> None:
    engine = DuckDBEngine()
    # alice: 5 failures within 40 s, but split 2 + 3 by a minute boundary (fixed buckets would miss it)
    for n, second in enumerate([40, 50, 62, 70, 80], start=1):
        add_event(engine, n, START.replace(second=0) + timedelta(seconds=second), SECURITY, 4625, "DC01",
                  failed_logon("alice", "203.0.113.50"))
    # bob: 4 failures within a minute, then one more 3 minutes later: never 5 in a minute
    for n, second in enumerate([0, 10, 20, 30, 210], start=10):
        add_event(engine, n, START + timedelta(seconds=second), SECURITY, 4625, "DC01",
                  failed_logon("bob", "203.0.113.50"))
    outcome = evaluate(load_rule(write(tmp_path, BRUTE_FORCE)), engine)
    assert outcome.is_correlation and outcome.matched
    assert [dict(h.group) for h in outcome.correlation_hits] == [{"TargetUserName": "alice"}]
    assert outcome.correlation_hits[0].event_ids == (1, 2, 3, 4, 5)
    assert outcome.correlation_hits[0].value == 5


def test_value_count_counts_distinct_values_per_group(tmp_path: Path) -> None:
    engine = DuckDBEngine()
    for n, user in enumerate(["alice", "bob", "carol", "alice"], start=1):
        add_event(engine, n, START + timedelta(seconds=20 * n), SECURITY, 4625, "DC01",
                  failed_logon(user, "198.51.100.23"))
    for n, user in enumerate(["dave", "dave", "dave", "erin"], start=10):
        add_event(engine, n, START + timedelta(seconds=20 * n), SECURITY, 4625, "DC01",
                  failed_logon(user, "192.0.2.77"))
    outcome = evaluate(load_rule(write(tmp_path, SPRAY)), engine)
    assert [dict(h.group) for h in outcome.correlation_hits] == [{"IpAddress": "198.51.100.23"}]
    assert outcome.correlation_hits[0].value == 3


@pytest.mark.parametrize(("kind", "reverse_order_fires"), [("temporal", True), ("temporal_ordered", False)])
def test_temporal_and_ordered(tmp_path: Path, kind: str, reverse_order_fires: bool) -> None:
    engine = DuckDBEngine()
    whoami = {"Image": r"C:\Windows\System32\whoami.exe", "CommandLine": "whoami /all"}
    net_group = {"Image": r"C:\Windows\System32\net.exe", "CommandLine": 'net group "Domain Admins" /domain'}
    # WS-01: whoami then net group within 2 minutes
    add_event(engine, 1, START, SYSMON, 1, "WS-01", whoami)
    add_event(engine, 2, START + timedelta(seconds=45), SYSMON, 1, "WS-01", net_group)
    # WS-02: net group first, whoami after
    add_event(engine, 3, START, SYSMON, 1, "WS-02", net_group)
    add_event(engine, 4, START + timedelta(seconds=30), SYSMON, 1, "WS-02", whoami)
    # WS-03: both, but 10 minutes apart
    add_event(engine, 5, START, SYSMON, 1, "WS-03", whoami)
    add_event(engine, 6, START + timedelta(minutes=10), SYSMON, 1, "WS-03", net_group)
    outcome = evaluate(load_rule(write(tmp_path, RECON_TEMPORAL.format(kind=kind))), engine)
    fired = sorted(dict(h.group)["Computer"] for h in outcome.correlation_hits)
    assert fired == (["WS-01", "WS-02"] if reverse_order_fires else ["WS-01"])


def test_unsupported_correlation_type_is_a_clear_error(tmp_path: Path) -> None:
    text = SPRAY.replace("type: value_count", "type: value_sum")
    with pytest.raises(SigmaError, match="value_sum"):
        evaluate(load_rule(write(tmp_path, text)), DuckDBEngine())


def test_sigma_eval_runs_correlations_on_flat_events(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from assay.cli.main import cli

    rule = write(tmp_path, BRUTE_FORCE)
    events = tmp_path / "events.jsonl"
    lines = []
    for second in (40, 50, 62, 70, 80):  # alice: five failures in 40 s, across a minute boundary
        when = START.replace(second=0) + timedelta(seconds=second)
        lines.append({"@timestamp": when.isoformat() + "Z", "EventID": 4625, **failed_logon("alice", "203.0.113.50")})
    lines.append({"@timestamp": START.isoformat() + "Z", "EventID": 4625, **failed_logon("bob", "203.0.113.50")})
    events.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    result = CliRunner().invoke(cli, ["sigma", "eval", str(rule), str(events), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [e["record"] for e in report["events"] if e["matched"]] == [1, 2, 3, 4, 5]
    assert "TargetUserName=alice" in report["events"][0]["explanation"]
