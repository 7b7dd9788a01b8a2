"""The proof report: what ``assay test`` ran and found, saved as JSON for CI, the site and ``assay coverage``.

One report holds run metadata, then per detection, per scenario, one result per (form, route) with the verdict,
the expectation, evidence rows and the SQL that ran, plus the agreement findings between forms. Other stages
(the site, coverage) read this model: it changes only additively; ``schema_version`` moves on breaking change.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field

from assay.errors import SourceSpan, VerifyError

REPORT_SCHEMA_VERSION = 1

#: Outcome of one check: pass/fail against the expectation; skip (could not run, with the reason); error (the run
#: itself broke, e.g. an unsupported KQL construct; the reason says what).
ResultStatus = Literal["pass", "fail", "skip", "error"]
Verdict = Literal["fires", "does-not-fire"]
#: How a detection stands after a run, for coverage and the site (ordered best to worst in ``PROOF_STATUSES``).
ProofStatus = Literal["proven", "partial", "untested", "failing"]
PROOF_STATUSES: tuple[ProofStatus, ...] = ("proven", "partial", "untested", "failing")
#: The outcome of an agreement check: the forms agree; they differ but the detection declared it (``known``);
#: they differ undeclared (``fail``, or ``warn`` under ``--agreement warn``).
AgreementStatus = Literal["agree", "known", "warn", "fail"]

#: Evidence rows kept per result (the count of rows left out is kept in ``evidence_omitted``).
EVIDENCE_ROW_CAP = 5
#: Characters kept per evidence value (long command lines stay readable; the full value is in the telemetry).
EVIDENCE_VALUE_CAP = 500

JsonScalar = str | int | float | bool | None


class ReportModel(BaseModel):
    """Base: unknown keys tolerated on load (newer reports stay readable by older readers).

    Derived statuses (``status``, ``proof_status``) are written to the JSON for readers outside Python and
    recomputed, not trusted, when a report is loaded."""

    model_config = ConfigDict(extra="ignore")


class RunInfo(ReportModel):
    """When and how the proof ran."""

    started: dt.datetime
    finished: dt.datetime | None = None
    assay_version: str
    #: The "now" the KQL ran with, when fixed by ``--now`` (otherwise each scenario's own time + a few minutes).
    now: dt.datetime | None = None
    #: Forms requested (``--form``); all when empty.
    forms: list[str] = Field(default_factory=list)
    agreement_mode: Literal["fail", "warn"] = "fail"
    #: The path(s) tested, as given.
    paths: list[str] = Field(default_factory=list)
    #: The shared reference data folder used for recording scenarios, when found.
    shared_data: str | None = None
    python: str | None = None
    platform: str | None = None


class ColumnCheck(ReportModel):
    """An expected output-column value of a scoring query, against the value the query returned."""

    column: str
    expected: JsonScalar
    actual: JsonScalar = None
    ok: bool
    #: True when the query did not return the column at all.
    missing: bool = False


class EvidenceRow(ReportModel):
    """One row the query returned (column -> value, values capped), with where it came from."""

    values: dict[str, JsonScalar]
    #: ``AssaySource`` of the row (file#record) when the query kept it.
    source: str | None = None


class FormResult(ReportModel):
    """One form of the detection run on one scenario (for Sigma: on one route/table)."""

    #: ``sigma``, ``kql`` or ``converted:<target>`` (e.g. ``converted:kusto``).
    form: str
    #: The unit agreement compares: ``kql``, ``converted:kusto``, ``sigma[sysmon:1]``, or for Sigma on telemetry
    #: another schema was mapped from, ``sigma[security:4688 via ecs]``.
    key: str = ""
    #: Where it ran: for Sigma the route (``sysmon``, ``security-4688``, ``DeviceProcessEvents``), for KQL the
    #: telemetry schema the scenario was rendered in (``defender``).
    route: str | None = None
    #: The table the query read (``RawEvents``, ``SecurityEvent``, ``DeviceProcessEvents``…).
    table: str | None = None
    #: The telemetry schema the scenario was synthesized as (``sysmon``, ``security``, ``defender``, ``ecs``) or
    #: ``recording`` for a real file.
    telemetry: str | None = None
    status: ResultStatus
    verdict: Verdict | None = None
    expected: Verdict
    #: Why it passed, failed or was skipped, in one sentence a reviewer can act on.
    reason: str
    row_count: int = 0
    #: Rows returned by the query before the alert predicate was applied (scoring queries).
    scored_row_count: int | None = None
    evidence: list[EvidenceRow] = Field(default_factory=list)
    evidence_omitted: int = 0
    column_checks: list[ColumnCheck] = Field(default_factory=list)
    #: The query text that ran in the form's own language (KQL with the alert predicate appended, the converted KQL).
    query: str | None = None
    #: The SQL that ran on the engine.
    sql: str | None = None
    #: Fields the Sigma rule refers to that the route's events lack (a reason for a missed match).
    missing_fields: list[str] = Field(default_factory=list)
    duration_ms: float | None = None
    #: The "now" a KQL form ran with (``ago()`` is relative to it).
    now: dt.datetime | None = None

    @property
    def base_form(self) -> str:
        """``sigma``, ``kql`` or ``converted`` (what ``known_differences`` in detection.yml names)."""
        return self.form.split(":", 1)[0]


class AgreementFinding(ReportModel):
    """Forms that reached different verdicts on one scenario, and what differs."""

    scenario: str
    #: Form key (``sigma[sysmon]``, ``kql``, ``converted:kusto``) -> verdict (None when it did not run).
    verdicts: dict[str, Verdict | None]
    status: AgreementStatus
    #: The operator that differs, when pinned down (e.g. "Sigma contains '/s' matches '/silent'; KQL has '/s' does
    #: not").
    operator: str | None = None
    #: Human explanation of the difference (what each side's atoms matched on the event).
    explanation: str | None = None
    #: The event (key fields) the forms disagree on.
    event: dict[str, JsonScalar] = Field(default_factory=dict)
    declared: bool = False
    declared_reason: str | None = None


class ScenarioResult(ReportModel):
    """Every form run on one scenario."""

    id: str
    title: str
    kind: Literal["attack", "benign"]
    #: ``atomic``, ``false_positive``, ``recording`` or ``own``.
    provenance: str
    #: e.g. the Atomic test GUID and name, the false-positive text, the recording path.
    provenance_detail: str | None = None
    expected_columns: dict[str, JsonScalar] = Field(default_factory=dict)
    results: list[FormResult] = Field(default_factory=list)
    #: Claims of the scenario's ``expected_telemetry`` the events do not back (the scenario text needs fixing).
    telemetry_notes: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> ResultStatus:
        return worst_status(r.status for r in self.results)


class DetectionReport(ReportModel):
    """One detection's proof."""

    id: str
    title: str
    technique: str
    technique_name: str | None = None
    tactics: list[str] = Field(default_factory=list)
    path: str | None = None
    #: The forms the detection has and that were run (``sigma``, ``kql``, ``converted:kusto``).
    forms: list[str] = Field(default_factory=list)
    #: Every form the detection has, run or not (a run restricted with ``--form`` proves only part of it).
    available_forms: list[str] = Field(default_factory=list)
    scenarios: list[ScenarioResult] = Field(default_factory=list)
    agreement: list[AgreementFinding] = Field(default_factory=list)
    #: Problems that stopped part of the run (a rule that does not load, …), one sentence each.
    errors: list[str] = Field(default_factory=list)

    def results(self) -> list[FormResult]:
        return [result for scenario in self.scenarios for result in scenario.results]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> ResultStatus:
        statuses = [r.status for r in self.results()]
        if self.errors:
            statuses.append("error")
        if any(f.status == "fail" for f in self.agreement):
            statuses.append("fail")
        return worst_status(statuses)

    def form_status(self, form: str) -> ResultStatus:
        """The worst status of one form (by its full name, e.g. ``converted:kusto``) over all scenarios."""
        return worst_status(r.status for r in self.results() if r.form == form)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def proof_status(self) -> ProofStatus:
        """failing: any fail or error, or an undeclared disagreement; untested: nothing passed; proven: every form
        passed on every scenario that ran (a route that cannot show the activity, or an absent recording, may skip);
        partial: the rest (a form never ran, or a scenario ran in some forms only)."""
        results = self.results()
        if self.errors or any(r.status in ("fail", "error") for r in results) or any(
            f.status == "fail" for f in self.agreement
        ):
            return "failing"
        if not any(r.status == "pass" for r in results):
            return "untested"
        for scenario in self.scenarios:
            passed_forms = {r.form for r in scenario.results if r.status == "pass"}
            if not passed_forms:
                continue  # nothing ran (e.g. an absent recording): says nothing against the forms
            if not set(self.available_forms or self.forms) <= passed_forms:
                return "partial"
        return "proven"


class Summary(ReportModel):
    """Counts over the whole run."""

    detections: int = 0
    scenarios: int = 0
    results: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    disagreements: int = 0
    known_differences: int = 0
    #: Detections by proof status.
    proof: dict[str, int] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0 and self.disagreements == 0


class ProofReport(ReportModel):
    """A whole ``assay test`` run."""

    schema_version: int = REPORT_SCHEMA_VERSION
    run: RunInfo
    detections: list[DetectionReport] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)

    def detection(self, detection_id: str) -> DetectionReport | None:
        for detection in self.detections:
            if detection.id == detection_id:
                return detection
        return None

    def summarize(self) -> Summary:
        """Recompute ``summary`` from the detections (call after filling them) and return it."""
        summary = Summary(detections=len(self.detections))
        for detection in self.detections:
            summary.scenarios += len(detection.scenarios)
            for result in detection.results():
                summary.results += 1
                if result.status == "pass":
                    summary.passed += 1
                elif result.status == "fail":
                    summary.failed += 1
                elif result.status == "skip":
                    summary.skipped += 1
                else:
                    summary.errors += 1
            summary.errors += len(detection.errors)
            summary.disagreements += sum(1 for f in detection.agreement if f.status == "fail")
            summary.known_differences += sum(1 for f in detection.agreement if f.status == "known")
            summary.proof[detection.proof_status] = summary.proof.get(detection.proof_status, 0) + 1
        self.summary = summary
        return summary


_STATUS_RANK: dict[str, int] = {"pass": 0, "skip": 1, "fail": 2, "error": 3}


class StatusChange(ReportModel):
    """One check whose status differs between two runs (``None``: the check did not exist in that run)."""

    detection: str
    scenario: str
    key: str
    before: str | None
    after: str | None

    @property
    def regression(self) -> bool:
        """Worse than before: a check that passed (or did not exist) and now fails or errors."""
        return self.after in ("fail", "error") and self.before not in ("fail", "error")


def compare_reports(before: ProofReport, after: ProofReport) -> list[StatusChange]:
    """Checks (scenario × form/route, and agreement findings) whose status changed between two runs."""

    def statuses(report: ProofReport) -> dict[tuple[str, str, str], str]:
        found: dict[tuple[str, str, str], str] = {}
        for detection in report.detections:
            for scenario in detection.scenarios:
                for result in scenario.results:
                    found[(detection.id, scenario.id, result.key or result.form)] = result.status
            for finding in detection.agreement:
                found[(detection.id, finding.scenario, "agreement")] = (
                    "fail" if finding.status == "fail" else "pass")
        return found

    old, new = statuses(before), statuses(after)
    changes = [StatusChange(detection=d, scenario=s, key=k, before=old.get((d, s, k)), after=new.get((d, s, k)))
               for d, s, k in sorted(set(old) | set(new)) if old.get((d, s, k)) != new.get((d, s, k))]
    return changes


def worst_status(statuses: Any) -> ResultStatus:
    """The worst of several statuses (error > fail > skip > pass); ``skip`` when there are none."""
    worst: ResultStatus | None = None
    for status in statuses:
        if worst is None or _STATUS_RANK[status] > _STATUS_RANK[worst]:
            worst = status
    return worst if worst is not None else "skip"


def cap_value(value: Any) -> JsonScalar:
    """An evidence value made JSON-safe and capped (datetimes as ISO text, long strings shortened)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    text = value if isinstance(value, str) else str(value)
    if len(text) > EVIDENCE_VALUE_CAP:
        return text[: EVIDENCE_VALUE_CAP - 1] + "…"
    return text


def evidence_rows(columns: list[str], rows: list[tuple[Any, ...]] | list[list[Any]],
                  cap: int = EVIDENCE_ROW_CAP) -> tuple[list[EvidenceRow], int]:
    """Evidence from query rows: at most ``cap`` rows, values capped; returns (rows, how many were left out)."""
    kept: list[EvidenceRow] = []
    for row in rows[:cap]:
        values = {column: cap_value(value) for column, value in zip(columns, row, strict=False)}
        source = values.get("AssaySource")
        kept.append(EvidenceRow(values=values, source=source if isinstance(source, str) else None))
    return kept, max(len(rows) - cap, 0)


def save_report(report: ProofReport, path: str | Path) -> Path:
    """Write the report as indented JSON (creating the folder); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    report.summarize()
    target.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return target


def load_report(path: str | Path) -> ProofReport:
    """Read a saved report; a missing, unreadable or invalid file is a VerifyError naming the file."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise VerifyError(f"cannot read proof report: {error.strerror or error}", SourceSpan.of_file(source),
                          hint="run `assay test detections/` first (it writes build/proof/report.json)") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise VerifyError(f"proof report is not valid JSON: {error.msg}",
                          SourceSpan(str(source), error.lineno, error.colno, text),
                          hint="re-run `assay test` to regenerate it") from error
    if isinstance(data, dict) and isinstance(data.get("schema_version"), int) and \
            data["schema_version"] > REPORT_SCHEMA_VERSION:
        raise VerifyError(f"proof report has schema version {data['schema_version']}, this Assay reads up to "
                          f"{REPORT_SCHEMA_VERSION}", SourceSpan.of_file(source), hint="upgrade Assay")
    try:
        return ProofReport.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise VerifyError(f"proof report is not a valid report: {where}: {first['msg']}",
                          SourceSpan.of_file(source), hint="re-run `assay test` to regenerate it") from error
