"""JUnit XML for a proof run, so CI systems show each (scenario, form) as a test case.

One ``<testsuite>`` per detection; one ``<testcase>`` per scenario × form/route, plus one per agreement check that
found a difference and one per detection-level error. Failures carry the reason as the message and the evidence
and SQL in the body, so a CI page is enough to see why.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

from assay.verify.report import DetectionReport, FormResult, ProofReport


def _case_body(result: FormResult) -> str:
    lines = [f"expected: {result.expected}", f"verdict: {result.verdict or '-'}", f"reason: {result.reason}"]
    if result.telemetry:
        lines.append(f"telemetry: {result.telemetry}")
    for check in result.column_checks:
        lines.append(f"column {check.column}: expected {check.expected!r}, got {check.actual!r}"
                     f"{'' if check.ok else '  <-- differs'}")
    for row in result.evidence:
        lines.append("evidence: " + json.dumps(row.values, ensure_ascii=False, default=str))
    if result.query:
        lines.append("query:\n" + result.query)
    if result.sql:
        lines.append("sql:\n" + result.sql)
    return "\n".join(lines)


def _suite(detection: DetectionReport) -> ElementTree.Element:
    suite = ElementTree.Element("testsuite", name=f"{detection.technique} {detection.title}", id=detection.id)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_ms = 0.0
    # CI systems read dots in a classname as packages: keep one level per detection (its folder name).
    folder = Path(detection.path).name if detection.path else detection.id
    classname = "assay." + folder.replace(".", "_")
    for message in detection.errors:
        counts["tests"] += 1
        counts["errors"] += 1
        case = ElementTree.SubElement(suite, "testcase", classname=classname, name="load and compile")
        ElementTree.SubElement(case, "error", message=message, type="error").text = message
    for scenario in detection.scenarios:
        for result in scenario.results:
            counts["tests"] += 1
            seconds = (result.duration_ms or 0.0) / 1000
            total_ms += result.duration_ms or 0.0
            case = ElementTree.SubElement(suite, "testcase", classname=classname,
                                          name=f"{scenario.id} [{result.key or result.form}]", time=f"{seconds:.3f}")
            if result.status == "fail":
                counts["failures"] += 1
                ElementTree.SubElement(case, "failure", message=result.reason, type="fail").text = _case_body(result)
            elif result.status == "error":
                counts["errors"] += 1
                ElementTree.SubElement(case, "error", message=result.reason, type="error").text = _case_body(result)
            elif result.status == "skip":
                counts["skipped"] += 1
                ElementTree.SubElement(case, "skipped", message=result.reason)
            else:
                ElementTree.SubElement(case, "system-out").text = _case_body(result)
    for finding in detection.agreement:
        counts["tests"] += 1
        case = ElementTree.SubElement(suite, "testcase", classname=classname,
                                      name=f"{finding.scenario} [agreement]")
        verdicts = ", ".join(f"{key}: {verdict}" for key, verdict in finding.verdicts.items())
        body = "\n".join(line for line in (
            f"verdicts: {verdicts}", f"operator: {finding.operator}" if finding.operator else "",
            f"explanation: {finding.explanation}" if finding.explanation else "",
            f"declared: {finding.declared_reason}" if finding.declared_reason else "",
            "event: " + json.dumps(finding.event, ensure_ascii=False) if finding.event else "") if line)
        if finding.status == "fail":
            counts["failures"] += 1
            ElementTree.SubElement(case, "failure", message=finding.explanation or "the forms disagree",
                                   type="disagreement").text = body
        else:
            ElementTree.SubElement(case, "system-out").text = f"status: {finding.status}\n{body}"
    notes = [f"{scenario.id}: {note}" for scenario in detection.scenarios for note in scenario.telemetry_notes]
    if notes:
        ElementTree.SubElement(suite, "system-err").text = "\n".join(notes)
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("time", f"{total_ms / 1000:.3f}")
    return suite


def junit_xml(report: ProofReport) -> str:
    """The report as a JUnit XML document (``<testsuites>``)."""
    root = ElementTree.Element("testsuites", name="assay test")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for detection in report.detections:
        suite = _suite(detection)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"
