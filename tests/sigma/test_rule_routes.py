"""A service rule's route is named after the event ids it reads (``security:4624``), so proof reports and route
counts say which events a detection runs on; the rows the route reads are unchanged."""

from __future__ import annotations

from assay.sigma.compiler import routes_for_rule
from assay.sigma.loading import load_rule_text

RULE = """\
title: Logons with explicit credentials or special privileges
id: 2f1e4c7a-6b5d-4e3f-9a8b-7c6d5e4f3a2b
status: test
logsource: {product: windows, service: security}
detection:
    explicit: {EventID: 4648}
    special: {EventID: [4672, 4624]}
    filter: {SubjectUserSid: S-1-5-18}
    condition: (explicit or special) and not filter
level: low
"""


def test_service_routes_are_named_after_the_event_ids_the_rule_reads() -> None:
    routes = routes_for_rule(load_rule_text(RULE))
    assert [r.name for r in routes] == ["security:4624,4648,4672"]
    assert routes[0].channels == ("Security",) and routes[0].event_ids == ()


def test_a_service_rule_without_event_ids_keeps_the_service_route() -> None:
    text = RULE.replace("explicit: {EventID: 4648}", "explicit: {TargetServerName: localhost}").replace(
        "special: {EventID: [4672, 4624]}", "special: {LogonType: 3}")
    assert [r.name for r in routes_for_rule(load_rule_text(text))] == ["service:security"]
