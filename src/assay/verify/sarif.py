"""SARIF 2.1.0 logs of lint findings and proof failures, for code-scanning views (GitHub, GitLab, VS Code).

One run per log; each finding is a result with a rule id (the lint check's code, or the proof outcome), a level,
a message and the file, line and column it points at. Paths are relative to the working folder when they lie
under it, so a repository's code-scanning view can open them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from assay import __version__
from assay.catalog.lint import LintReport
from assay.catalog.models import LoadedDetection
from assay.errors import SourceSpan
from assay.verify.report import ProofReport

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
INFORMATION_URI = "https://github.com/assay-detections/assay"

#: Proof outcomes reported as SARIF rules: id -> (short description, level).
PROOF_RULES: dict[str, tuple[str, str]] = {
    "proof-failed": ("A form's verdict differs from the scenario's expectation", "error"),
    "proof-error": ("A form could not be run on a scenario", "error"),
    "undeclared-disagreement": ("Forms disagree on a scenario and the difference is not declared", "error"),
    "detection-error": ("The detection could not be proven", "error"),
}


def _uri(file: str | None, relative_to: Path) -> str | None:
    if file is None:
        return None
    path = Path(file)
    with contextlib.suppress(ValueError):
        path = path.resolve().relative_to(relative_to.resolve())
    return path.as_posix()


def _location(span: SourceSpan, relative_to: Path) -> list[dict[str, Any]]:
    uri = _uri(span.file, relative_to)
    if uri is None:
        return []
    physical: dict[str, Any] = {"artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"}}
    if span.line is not None:
        region: dict[str, Any] = {"startLine": max(span.line, 1)}
        if span.col is not None:
            region["startColumn"] = max(span.col, 1)
        physical["region"] = region
    return [{"physicalLocation": physical}]


def _log(tool_name: str, rules: dict[str, tuple[str, str]], results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": tool_name,
                "version": __version__,
                "informationUri": INFORMATION_URI,
                "rules": [{"id": rule_id, "shortDescription": {"text": text},
                           "defaultConfiguration": {"level": level}}
                          for rule_id, (text, level) in sorted(rules.items())],
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().resolve().as_uri() + "/"}},
            "results": results,
        }],
    }


def lint_sarif(report: LintReport, relative_to: Path | None = None) -> dict[str, Any]:
    """The lint report as a SARIF log: one result per issue (errors ``error``, warnings ``warning``)."""
    base = relative_to or Path.cwd()
    rules: dict[str, tuple[str, str]] = {}
    results = []
    for issue in report.issues:
        level = "error" if issue.severity == "error" else "warning"
        rules.setdefault(issue.code, (f"assay lint check {issue.code}", level))
        text = issue.message + (f" (hint: {issue.hint})" if issue.hint else "")
        results.append({"ruleId": issue.code, "level": level, "message": {"text": text},
                        "locations": _location(issue.span, base)})
    return _log("assay lint", rules, results)


def _scenario_span(loaded: LoadedDetection | None, scenario_id: str, detection_path: str | None) -> SourceSpan:
    if loaded is not None and loaded.tests_path is not None:
        for index, scenario in enumerate(loaded.scenarios):
            if scenario.id == scenario_id:
                return loaded.span("tests", ("scenarios", index))
        return SourceSpan(str(loaded.tests_path))
    return SourceSpan(str(Path(detection_path) / "tests.yml") if detection_path else None)


def proof_sarif(report: ProofReport, catalog: dict[str, LoadedDetection] | None = None,
                relative_to: Path | None = None) -> dict[str, Any]:
    """Failures, errors and undeclared disagreements of a proof report as a SARIF log, each located at its
    scenario in ``tests.yml`` (``catalog`` maps detection ids to loaded detections for the line numbers)."""
    base = relative_to or Path.cwd()
    catalog = catalog or {}
    results: list[dict[str, Any]] = []

    def add(rule_id: str, text: str, span: SourceSpan) -> None:
        results.append({"ruleId": rule_id, "level": PROOF_RULES[rule_id][1], "message": {"text": text},
                        "locations": _location(span, base)})

    for detection in report.detections:
        loaded = catalog.get(detection.id)
        for error in detection.errors:
            span = SourceSpan(str(loaded.detection_path)) if loaded else SourceSpan(detection.path)
            add("detection-error", f"{detection.title}: {error}", span)
        for scenario in detection.scenarios:
            span = _scenario_span(loaded, scenario.id, detection.path)
            for result in scenario.results:
                where = f"{result.form}" + (f"[{result.route}]" if result.route else "")
                if result.status == "fail":
                    add("proof-failed", f"{detection.title} / {scenario.id}: {where} expected {result.expected}, "
                        f"got {result.verdict}: {result.reason}", span)
                elif result.status == "error":
                    add("proof-error", f"{detection.title} / {scenario.id}: {where} could not run: "
                        f"{result.reason}", span)
        for finding in detection.agreement:
            if finding.status not in ("warn", "fail"):
                continue
            verdicts = ", ".join(f"{form}={verdict}" for form, verdict in finding.verdicts.items())
            loaded_span = _scenario_span(loaded, finding.scenario, detection.path)
            detail = f" ({finding.operator})" if finding.operator else ""
            add("undeclared-disagreement", f"{detection.title} / {finding.scenario}: forms disagree: "
                f"{verdicts}{detail}; declare it in known_differences with the reason, or fix the form",
                loaded_span)
    return _log("assay test", PROOF_RULES, results)
