"""What the site shows, computed once from the catalog, the ATT&CK data, the conversions and the proof report.

Templates only read these frozen views; every decision (which page a query lives on, what a form's proof status
is, which matrix cell a detection colours) is made here, where it can be unit-tested without rendering HTML.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from assay.catalog.models import LoadedDetection, Scenario
from assay.schema.attack import AttackData, Tactic, Technique
from assay.site.formatting import format_query
from assay.site.paths import slugify
from assay.verify.coverage import combine
from assay.verify.report import PROOF_STATUSES, DetectionReport, FormResult, ProofReport, ProofStatus

#: How a page's query came to be: the detection's own KQL, the portable Sigma rule, or a pySigma conversion.
QueryOrigin = Literal["native", "sigma", "converted"]
#: Conversion status as the Sigma stage reports it, plus ``native``/``portable`` for the two hand-written forms.
ConversionStatus = Literal["native", "portable", "converted", "converted-with-warnings", "failed", "unavailable"]
#: A page's proof status: the report's statuses, plus ``not-runnable`` for a language Assay does not execute.
PageProofStatus = Literal["proven", "partial", "untested", "failing", "not-runnable"]
ResultBadge = Literal["pass", "fail", "skip", "error", "not-run"]

ATOMICS_URL = "https://github.com/redcanaryco/atomic-red-team/blob/master/atomics/{technique}/{technique}.md"


@dataclass(frozen=True)
class PlatformSpec:
    """A platform a query runs on, as the site names it."""

    #: Page file name (slug) and filter value.
    key: str
    #: "Microsoft Sentinel", "Splunk", "Elastic"…
    label: str
    #: "KQL", "SPL", "ES|QL"… (also picks the highlighter).
    language: str
    #: Extra words after the language on the page title ("SecurityEvent", "ASIM", "CIM"), or empty.
    variant: str = ""
    #: Sort order on the page lists: native first, then Sigma, then conversions by label.
    rank: int = 50

    @property
    def heading(self) -> str:
        """``Microsoft Sentinel · KQL`` (with the variant in brackets when there is one)."""
        suffix = f" ({self.variant})" if self.variant else ""
        return f"{self.label} · {self.language}{suffix}"

    @property
    def family(self) -> str:
        """The filter group on the index (``microsoft``, ``splunk``, ``elastic``, ``sigma``…)."""
        label = self.label.lower()
        for family in ("microsoft", "splunk", "elastic", "sigma"):
            if family in label:
                return family
        return slugify(self.label)


NATIVE_PLATFORM = PlatformSpec(key="sentinel-kql", label="Microsoft Sentinel", language="KQL", rank=0)
SIGMA_PLATFORM = PlatformSpec(key="sigma", label="Sigma", language="YAML", variant="portable rule", rank=1)

#: Display names of the Sigma stage's conversion targets (``assay.sigma.conversion.TARGETS``):
#: target -> (label, language, variant, rank). Unknown targets fall back to ``_TARGET_PATTERNS``.
_TARGET_NAMES: dict[str, tuple[str, str, str, int]] = {
    "sentinel-securityevent": ("Microsoft Sentinel", "KQL", "SecurityEvent", 10),
    "sentinel-asim": ("Microsoft Sentinel", "KQL", "ASIM", 11),
    "microsoft-xdr": ("Microsoft Defender XDR", "KQL", "converted from Sigma", 12),
    "splunk": ("Splunk", "SPL", "", 20),
    "splunk-cim": ("Splunk", "SPL", "CIM data model", 21),
    "splunk-spl2": ("Splunk", "SPL2", "", 22),
    "elastic-esql": ("Elastic", "ES|QL", "", 30),
    "elastic-eql": ("Elastic", "EQL", "", 31),
    "elastic-lucene": ("Elastic", "Lucene", "", 32),
    "elastic-elastalert": ("Elastic", "ElastAlert", "rule", 33),
    "google-secops": ("Google SecOps", "YARA-L", "", 40),
    "ibm-qradar-aql": ("IBM QRadar", "AQL", "", 45),
    "sumo-logic": ("Sumo Logic", "CSE rule expression", "Cloud SIEM", 50),
    "crowdstrike-logscale": ("CrowdStrike Falcon", "LogScale", "", 55),
    "sentinelone-powerquery": ("SentinelOne", "PowerQuery", "", 60),
    "sqlite": ("SQLite", "SQL", "Sysmon fields table", 70),
    "spark-sql": ("Databricks / Apache Spark", "Spark SQL", "", 71),
}
_TARGET_PATTERNS: tuple[tuple[str, str, str, int], ...] = (
    (r"asim", "Microsoft Sentinel", "KQL", 13),
    (r"sentinel|kusto|defender|xdr|azure", "Microsoft Sentinel", "KQL", 14),
    (r"splunk", "Splunk", "SPL", 23),
    (r"elastic|esql|eql|lucene|kibana", "Elastic", "Query", 34),
)
#: Language names of ``Conversion.language`` as the site writes them.
_LANGUAGE_NAMES = {"kql": "KQL", "spl": "SPL", "spl2": "SPL2", "esql": "ES|QL", "eql": "EQL", "lucene": "Lucene",
                   "elastalert": "ElastAlert"}


def describe_target(target: str, label: str | None = None, language: str | None = None) -> PlatformSpec:
    """The platform of a pySigma conversion target id (``microsoft-xdr``, ``splunk-cim``, ``elastic-esql``…)."""
    key = slugify(target, fallback="target")
    known = _TARGET_NAMES.get(target)
    if known is not None:
        name, known_language, variant, rank = known
        return PlatformSpec(key=key, label=label or name, language=known_language, variant=variant, rank=rank)
    shown_language = _LANGUAGE_NAMES.get((language or "").lower(), (language or "").upper())
    for pattern, name, guessed_language, rank in _TARGET_PATTERNS:
        if re.search(pattern, target.lower()):
            return PlatformSpec(key=key, label=label or name, language=shown_language or guessed_language,
                                variant=target, rank=rank)
    return PlatformSpec(key=key, label=label or target, language=shown_language or "Query", rank=90)


@dataclass(frozen=True)
class ConversionInput:
    """One conversion of a detection's Sigma rule, as the Sigma stage reports it (``assay.sigma.convert_all``)."""

    target: str
    status: str
    query: str | None
    messages: tuple[str, ...] = ()
    #: The target's display label when the Sigma stage provides one.
    label: str | None = None
    #: The query language (``kql``, ``spl``, ``esql``…), as ``Conversion.language``.
    language: str | None = None


@dataclass(frozen=True)
class AttackView:
    """The ATT&CK box: names from the pinned data, never typed by hand."""

    technique_id: str
    technique_name: str
    technique_url: str
    #: The parent technique for a sub-technique (id, name, url), else None.
    parent: Technique | None
    tactics: tuple[Tactic, ...]
    version: str
    known: bool
    deprecated: bool = False
    revoked_by: str | None = None
    strategies: tuple[tuple[str, str, str], ...] = ()

    @property
    def is_subtechnique(self) -> bool:
        return self.parent is not None or "." in self.technique_id

    @property
    def matrix_technique_id(self) -> str:
        """The parent technique whose matrix cell this detection colours."""
        return self.technique_id.split(".")[0]


@dataclass(frozen=True)
class ResultView:
    """One proof result (a form on one route) of one scenario, for the page."""

    form: str
    route: str | None
    table: str | None
    telemetry: str | None
    status: ResultBadge
    verdict: str | None
    expected: str
    reason: str
    row_count: int
    #: Rows a scoring query returned before its alert predicate (None for filtering queries).
    scored_row_count: int | None
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    evidence_omitted: int
    column_checks: tuple[tuple[str, str, str, bool], ...]

    @property
    def fields(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The evidence transposed: one line per column with its value in each row (records are wide)."""
        return tuple((column, tuple(row[index] for row in self.rows)) for index, column in enumerate(self.columns))


@dataclass(frozen=True)
class FindingView:
    """An agreement finding between forms on one scenario (a declared known difference or a disagreement)."""

    status: str
    verdicts: tuple[tuple[str, str], ...]
    operator: str | None
    explanation: str | None
    declared_reason: str | None


@dataclass(frozen=True)
class FormVerdict:
    """One form's outcome on one scenario, in a word: the cells of a page's verdict table."""

    form: str
    status: ResultBadge
    #: "fired", "did not fire", "skipped", "error" or "not run".
    outcome: str
    #: The first reason a fail, error or skip gave (empty for a pass).
    reason: str = ""


@dataclass(frozen=True)
class ScenarioView:
    """A scenario with its provenance and, for the page's form, its latest proof results."""

    scenario: Scenario
    number: int
    provenance_kind: str
    provenance_text: str
    provenance_url: str | None
    provenance_ref: str | None
    expected_outcome: str | None
    expected_columns: tuple[tuple[str, str], ...]
    results: tuple[ResultView, ...]
    findings: tuple[FindingView, ...] = ()
    #: Every form's one-line outcome on this scenario (the report's forms, in its order).
    verdicts: tuple[FormVerdict, ...] = ()

    @property
    def status(self) -> ResultBadge:
        """The scenario's badge for this form: a fail or error shows; else a pass on any route counts (a route
        that cannot show the activity is skipped, not failed); else skipped, or not run."""
        statuses = {r.status for r in self.results}
        order: tuple[ResultBadge, ...] = ("error", "fail", "pass", "skip")
        return next((status for status in order if status in statuses), "not-run")


@dataclass(frozen=True)
class PageView:
    """One detection × platform page."""

    platform: PlatformSpec
    origin: QueryOrigin
    conversion_status: ConversionStatus
    query: str | None
    messages: tuple[str, ...]
    #: The proof form whose results this page shows (``kql``, ``sigma``, ``converted:kusto``), or None.
    form: str | None
    #: Where the page lives, relative to the site root.
    path: str
    proof_status: PageProofStatus
    scenarios: tuple[ScenarioView, ...]
    #: For conversions Assay cannot run, the Sigma form's status (the rule the query was converted from).
    source_status: PageProofStatus | None = None
    #: True when the query that ran in the proof is not the query on this page any more (results are stale).
    stale: bool = False
    #: The distinct SQL texts the engine ran for this form, with where they ran (route / table).
    sql: tuple[tuple[str, str], ...] = ()
    #: The query as shown: converted queries laid out one condition or pipe per line (``format_query``).
    display_query: str | None = None

    @property
    def engine(self) -> str:
        """The local engine this page's form runs on, in words."""
        return engine_name(self.form)


@dataclass(frozen=True)
class RelatedView:
    id: str
    title: str | None
    technique: str | None
    path: str | None
    #: Why it is related: "named in detection.yml", "same technique family T1218 …", "same tactic …", …
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class DetectionView:
    """A detection with everything its pages show."""

    loaded: LoadedDetection
    slug: str
    attack: AttackView
    pages: tuple[PageView, ...]
    proof_status: ProofStatus
    report: DetectionReport | None
    run_date: dt.datetime | None
    sigma_download: str | None
    related: tuple[RelatedView, ...] = ()
    #: True when the detection changed after the proof run (the results may be stale).
    modified_after_run: bool = False

    @property
    def id(self) -> str:
        return self.loaded.id

    @property
    def title(self) -> str:
        return self.loaded.detection.title

    @property
    def forms(self) -> tuple[str, ...]:
        """The forms the proof report ran for this detection (the columns of the verdict table)."""
        return report_forms(self.report)

    def form_page(self, form: str) -> PageView | None:
        """The page showing a proof form's results."""
        return next((page for page in self.pages if page.form == form), None)

    @property
    def home(self) -> PageView:
        """The page to link to first: the native query, else the Sigma rule, else the first conversion."""
        return self.pages[0]

    def page(self, key: str) -> PageView | None:
        return next((page for page in self.pages if page.platform.key == key), None)


@dataclass(frozen=True)
class MatrixCell:
    """A technique cell of the ATT&CK matrix: the detections covering it (or its sub-techniques)."""

    technique: Technique
    detections: tuple[DetectionView, ...]
    status: str  # a ProofStatus, or "none" for an uncovered technique
    #: Sub-techniques covered, with the detections covering each.
    subtechniques: tuple[tuple[Technique, tuple[DetectionView, ...]], ...] = ()


@dataclass(frozen=True)
class MatrixColumn:
    tactic: Tactic
    cells: tuple[MatrixCell, ...]
    detection_count: int
    covered_techniques: int


@dataclass(frozen=True)
class PlatformListing:
    platform: PlatformSpec
    path: str
    entries: tuple[tuple[DetectionView, PageView], ...]


@dataclass(frozen=True)
class SiteModel:
    detections: tuple[DetectionView, ...]
    attack: AttackData
    report: ProofReport | None
    matrix: tuple[MatrixColumn, ...]
    platforms: tuple[PlatformListing, ...]
    generated: dt.datetime
    catalog_errors: tuple[str, ...] = ()
    status_counts: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# Building the views
# --------------------------------------------------------------------------------------------------------------


def attack_view(technique_id: str, attack: AttackData) -> AttackView:
    technique = attack.technique(technique_id)
    if technique is None:
        # Lint reports unknown ids; the site still renders the page, saying the id is not in the pinned data.
        return AttackView(technique_id, "(not in the pinned ATT&CK data)",
                          f"https://attack.mitre.org/techniques/{technique_id.replace('.', '/')}/", None, (),
                          attack.version, known=False)
    parent = attack.parent(technique)
    tactics = attack.tactics_of(technique) or (attack.tactics_of(parent) if parent else ())
    strategies = attack.strategies_of(technique) or (attack.strategies_of(parent) if parent else ())
    return AttackView(
        technique_id=technique.id, technique_name=technique.name, technique_url=technique.url, parent=parent,
        tactics=tactics, version=attack.version, known=True, deprecated=technique.deprecated or technique.revoked,
        revoked_by=technique.revoked_by, strategies=tuple((s.id, s.name, s.url) for s in strategies),
    )


def _as_text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _result_view(result: FormResult) -> ResultView:
    columns: list[str] = []
    for row in result.evidence:
        for column in row.values:
            if column not in columns:
                columns.append(column)
    rows = tuple(tuple(_as_text(row.values.get(column)) if column in row.values else "" for column in columns)
                 for row in result.evidence)
    checks = tuple((check.column, _as_text(check.expected), "(missing)" if check.missing else _as_text(check.actual),
                    check.ok) for check in result.column_checks)
    return ResultView(form=result.form, route=result.route, table=result.table, telemetry=result.telemetry,
                      status=result.status, verdict=result.verdict, expected=result.expected, reason=result.reason,
                      row_count=result.row_count, scored_row_count=result.scored_row_count,
                      columns=tuple(columns), rows=rows,
                      evidence_omitted=result.evidence_omitted, column_checks=checks)


def form_proof_status(report: DetectionReport | None, form: str | None) -> PageProofStatus:
    """One form's status, by the rules of ``DetectionReport.proof_status`` restricted to that form: failing on a
    fail, an error or an undeclared disagreement it takes part in; untested when it never passed; proven when it
    passed on every scenario where any form passed (skips such as an absent recording do not count against it);
    partial otherwise."""
    if form is None:
        return "not-runnable"
    if report is None:
        return "untested"
    results = [r for r in report.results() if r.form == form]
    if any(r.status in ("fail", "error") for r in results):
        return "failing"
    if any(f.status == "fail" and any(key.split("[")[0] == form for key in f.verdicts) for f in report.agreement):
        return "failing"
    if not any(r.status == "pass" for r in results):
        return "untested"
    for scenario in report.scenarios:
        passed_forms = {r.form for r in scenario.results if r.status == "pass"}
        if passed_forms and form not in passed_forms:
            return "partial"
    return "proven"


def _provenance(loaded: LoadedDetection, scenario: Scenario) -> tuple[str, str, str | None, str | None]:
    """(kind label, text, url, reference) of a scenario's provenance."""
    provenance = scenario.provenance
    if provenance.atomic is not None:
        technique = provenance.atomic.technique or loaded.detection.technique
        return ("Atomic Red Team", provenance.atomic.test, ATOMICS_URL.format(technique=technique),
                provenance.atomic.guid)
    if provenance.false_positive is not None:
        index = provenance.false_positive.index
        items = loaded.detection.false_positives
        text = items[index - 1] if 0 < index <= len(items) else (provenance.false_positive.text or "")
        return ("False-positive item", text, None, f"#{index}")
    if provenance.recording is not None:
        source = provenance.recording.source
        url = source if source and re.match(r"^https?://", source) else None
        detail = provenance.recording.path if url or not source else f"{provenance.recording.path} ({source})"
        return ("Real recording", detail, url, None)
    return ("Written for Assay", provenance.own or "", None, None)


def _report_scenario_results(report: DetectionReport | None, scenario_id: str, form: str | None) -> tuple[
        ResultView, ...]:
    if report is None or form is None:
        return ()
    for scenario in report.scenarios:
        if scenario.id == scenario_id:
            return tuple(_result_view(r) for r in scenario.results if r.form == form)
    return ()


def _findings(report: DetectionReport | None, scenario_id: str, form: str | None) -> tuple[FindingView, ...]:
    """Agreement findings on this scenario that involve this page's form (all of them on the Sigma page)."""
    if report is None or form is None:
        return ()
    found = []
    for finding in report.agreement:
        if finding.scenario != scenario_id or finding.status == "agree":
            continue
        if not any(key.split("[")[0] == form for key in finding.verdicts):
            continue
        verdicts = tuple((key, "did not run" if verdict is None else verdict.replace("-", " "))
                         for key, verdict in finding.verdicts.items())
        found.append(FindingView(finding.status, verdicts, finding.operator, finding.explanation,
                                 finding.declared_reason))
    return tuple(found)


#: The engine each executed form runs on (converted forms by target); anything else runs on DuckDB.
FORM_ENGINES = {
    "kql": "Assay's KQL engine (KQL compiled to SQL, run on DuckDB)",
    "sigma": "DuckDB (the Sigma rule compiled to SQL)",
    "converted:microsoft-xdr": "Assay's KQL engine (KQL compiled to SQL, run on DuckDB)",
    "converted:sqlite": "SQLite (Python's sqlite3 module)",
    "converted:spark-sql": "Apache Spark (local PySpark)",
    "converted:elastic-eql": "the eql package's EQL engine",
}


def engine_name(form: str | None) -> str:
    if form is None:
        return "no local engine"
    return FORM_ENGINES.get(form, "DuckDB")


def form_label(form: str) -> str:
    """A verdict-table column heading: ``Sigma``, ``Native KQL``, ``SQL (SQLite)``…"""
    if form == "sigma":
        return "Sigma"
    if form == "kql":
        return "Native KQL"
    target = form.split(":", 1)[1] if ":" in form else form
    platform = describe_target(target)
    return f"{platform.language} ({platform.label})"


_BADGE_ORDER: tuple[ResultBadge, ...] = ("error", "fail", "pass", "skip")


def report_forms(report: DetectionReport | None) -> tuple[str, ...]:
    """The forms a proof report ran for a detection, in its order (``sigma``, ``kql``, ``converted:…``)."""
    if report is None:
        return ()
    forms = list(report.forms)
    for result in report.results():
        if result.form not in forms:
            forms.append(result.form)
    return tuple(forms)


def form_verdicts(report: DetectionReport | None, scenario_id: str) -> tuple[FormVerdict, ...]:
    """Each form's outcome on a scenario: a fail or error shows first, then a pass on any route, then a skip."""
    if report is None:
        return ()
    scenario = next((s for s in report.scenarios if s.id == scenario_id), None)
    verdicts = []
    for form in report_forms(report):
        results = [r for r in scenario.results if r.form == form] if scenario is not None else []
        statuses = {r.status for r in results}
        status: ResultBadge = next((s for s in _BADGE_ORDER if s in statuses), "not-run")
        decisive = [r for r in results if r.status == status]
        verdict = next((r.verdict for r in decisive if r.verdict), None)
        outcome = {"fires": "fired", "does-not-fire": "did not fire"}.get(verdict or "", "")
        if status == "skip":
            outcome = "skipped"
        elif status == "error":
            outcome = "error"
        elif status == "not-run":
            outcome = "not run"
        reason = decisive[0].reason if decisive and status in ("fail", "error", "skip") else ""
        verdicts.append(FormVerdict(form, status, outcome, reason))
    return tuple(verdicts)


#: Converted forms held to the Sigma rule's expectation (they run on its event-log records; see the runner).
SIGMA_EXPECTATION_FORMS = frozenset({"converted:sqlite", "converted:spark-sql", "converted:elastic-eql"})


def _expected(scenario: Scenario, origin: QueryOrigin, form: str | None = None) -> str:
    if origin == "native":
        return scenario.expected.kql
    if origin == "sigma" or form in SIGMA_EXPECTATION_FORMS:
        return scenario.expected.sigma
    return scenario.expected.outcome("converted")


def _scenario_views(loaded: LoadedDetection, report: DetectionReport | None, form: str | None,
                    origin: QueryOrigin) -> tuple[ScenarioView, ...]:
    views = []
    for number, scenario in enumerate(loaded.scenarios, start=1):
        kind, text, url, ref = _provenance(loaded, scenario)
        columns = tuple((name, _as_text(value)) for name, value in scenario.expected.columns.items()) \
            if origin == "native" else ()
        views.append(ScenarioView(scenario=scenario, number=number, provenance_kind=kind, provenance_text=text,
                                  provenance_url=url, provenance_ref=ref,
                                  expected_outcome=_expected(scenario, origin, form), expected_columns=columns,
                                  results=_report_scenario_results(report, scenario.id, form),
                                  findings=_findings(report, scenario.id, form),
                                  verdicts=form_verdicts(report, scenario.id)))
    return tuple(views)


#: Older names of conversion targets in proof reports (``converted:kusto`` is the Defender XDR conversion).
_REPORT_FORM_ALIASES = {"microsoft-xdr": ("kusto", "microsoft_xdr", "microsoftxdr")}


def _converted_form(report: DetectionReport | None, target: str) -> str | None:
    """The report's form name for a conversion target (``converted:microsoft-xdr``), when the proof ran it."""
    if report is None:
        return None
    ran = set(report.forms) | {r.form for r in report.results()}
    for name in (target, *_REPORT_FORM_ALIASES.get(target, ())):
        if f"converted:{name}" in ran:
            return f"converted:{name}"
    return None


def query_changed(report: DetectionReport | None, form: str | None, query: str | None) -> bool:
    """Whether the proof ran another text than ``query`` for this form (the KQL runs with the alert predicate
    appended, so the page's query must be where the text that ran starts)."""
    if report is None or form is None or query is None:
        return False
    ran = {r.query for r in report.results() if r.form == form and r.query}
    return any(not text.strip().startswith(query.strip()) for text in ran)


def sql_that_ran(report: DetectionReport | None, form: str | None) -> tuple[tuple[str, str], ...]:
    """The SQL the engine ran for a form, one per route or table (the first scenario's: other scenarios differ
    only by the time literal their own "now" puts in place of ``ago()``)."""
    if report is None or form is None:
        return ()
    by_label: dict[str, str] = {}
    for result in report.results():
        if result.form == form and result.sql:
            by_label.setdefault(result.route or result.table or result.telemetry or form, result.sql)
    if form in FORM_ENGINES and "DuckDB" not in FORM_ENGINES[form]:
        return tuple(by_label.items())  # another engine's own text, shown exactly as it ran
    return tuple((label, pretty_sql(sql)) for label, sql in by_label.items())


def pretty_sql(sql: str) -> str:
    """The SQL laid out one clause per line (sqlglot, DuckDB dialect); as it is when sqlglot cannot parse it."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        return ";\n".join(sqlglot.transpile(sql, read="duckdb", write="duckdb", pretty=True))
    except SqlglotError:
        return sql


def _normalise_status(status: str) -> ConversionStatus:
    lowered = status.lower().replace("_", "-").replace(" ", "-")
    if lowered in ("converted", "ok", "success"):
        return "converted"
    if "warn" in lowered:
        return "converted-with-warnings"
    if lowered == "unavailable":
        return "unavailable"
    return "failed"


def detection_slug(loaded: LoadedDetection, taken: set[str]) -> str:
    """The detection's folder on the site: its catalog folder name, slugified, made unique."""
    slug = slugify(loaded.path.name, fallback=slugify(loaded.detection.technique, fallback="detection"))
    if slug in taken:
        slug = f"{slug}-{loaded.id[:8]}"
    taken.add(slug)
    return slug


def detection_view(loaded: LoadedDetection, slug: str, attack: AttackData, report: ProofReport | None,
                   conversions: Sequence[ConversionInput]) -> DetectionView:
    detection_report = report.detection(loaded.id) if report is not None else None
    base = f"detections/{slug}"
    pages: list[PageView] = []
    runnable_sigma_status = form_proof_status(detection_report, "sigma") if loaded.sigma_text else None
    if loaded.kql_text is not None:
        pages.append(PageView(NATIVE_PLATFORM, "native", "native", loaded.kql_text, (), "kql",
                              f"{base}/{NATIVE_PLATFORM.key}.html", form_proof_status(detection_report, "kql"),
                              _scenario_views(loaded, detection_report, "kql", "native"),
                              stale=query_changed(detection_report, "kql", loaded.kql_text),
                              sql=sql_that_ran(detection_report, "kql")))
    if loaded.sigma_text is not None:
        pages.append(PageView(SIGMA_PLATFORM, "sigma", "portable", loaded.sigma_text, (), "sigma",
                              f"{base}/{SIGMA_PLATFORM.key}.html", form_proof_status(detection_report, "sigma"),
                              _scenario_views(loaded, detection_report, "sigma", "sigma"),
                              sql=sql_that_ran(detection_report, "sigma")))
    used = {page.platform.key for page in pages}
    converted: list[PageView] = []
    for conversion in conversions:
        platform = describe_target(conversion.target, conversion.label, conversion.language)
        if platform.key in used:
            platform = PlatformSpec(key=f"{platform.key}-converted", label=platform.label,
                                    language=platform.language, variant=platform.variant, rank=platform.rank)
        used.add(platform.key)
        status = _normalise_status(conversion.status)
        # A form Assay executes is "not yet run" until a report has it, never "converted, not executed".
        executable = f"converted:{conversion.target}" in FORM_ENGINES and status not in ("failed", "unavailable")
        form = _converted_form(detection_report, conversion.target) or (
            f"converted:{conversion.target}" if executable else None)
        converted.append(PageView(
            platform, "converted", status, conversion.query if status not in ("failed", "unavailable") else None,
            conversion.messages,
            form, f"{base}/{platform.key}.html",
            form_proof_status(detection_report, form) if form else "not-runnable",
            _scenario_views(loaded, detection_report, form, "converted"),
            source_status=None if form else runnable_sigma_status,
            stale=query_changed(detection_report, form, conversion.query),
            sql=sql_that_ran(detection_report, form),
            display_query=format_query(conversion.query, platform.language)
            if conversion.query and status not in ("failed", "unavailable") else None,
        ))
    converted.sort(key=lambda page: (page.platform.rank, page.platform.label, page.platform.key))
    pages.extend(converted)
    run_date = report.run.finished or report.run.started if report is not None else None
    modified_after_run = bool(run_date and loaded.detection.modified > run_date.date())
    return DetectionView(
        loaded=loaded, slug=slug, attack=attack_view(loaded.detection.technique, attack), pages=tuple(pages),
        proof_status=detection_report.proof_status if detection_report is not None else "untested",
        report=detection_report, run_date=run_date if detection_report is not None else None,
        sigma_download=f"{base}/{slug}.sigma.yml" if loaded.sigma_path is not None else None,
        modified_after_run=modified_after_run,
    )


#: How many computed related detections a page lists (the author's own ``related`` ids always show).
RELATED_LIMIT = 6
#: What each shared fact weighs; a detection is related when its weight reaches ``RELATED_THRESHOLD``.
RELATED_WEIGHTS = {"technique": 50, "family": 30, "tactic": 10, "data_source": 4, "table": 3}
RELATED_THRESHOLD = 10


def relation(view: DetectionView, other: DetectionView) -> tuple[int, tuple[str, ...]]:
    """(weight, reasons) of how ``other`` relates to ``view``: same technique or technique family, shared
    tactics, shared data sources and tables."""
    weight = 0
    reasons: list[str] = []
    mine, theirs = view.attack, other.attack
    if mine.technique_id == theirs.technique_id:
        weight += RELATED_WEIGHTS["technique"]
        reasons.append(f"same technique {mine.technique_id}")
    elif mine.matrix_technique_id == theirs.matrix_technique_id:
        weight += RELATED_WEIGHTS["family"]
        family = mine.parent.name if mine.parent else mine.technique_name
        reasons.append(f"same technique family {mine.matrix_technique_id} {family}")
    tactics = [tactic.name for tactic in mine.tactics if tactic in theirs.tactics]
    if tactics:
        weight += RELATED_WEIGHTS["tactic"] * len(tactics)
        reasons.append(f"same tactic {', '.join(tactics)}")
    detection, other_detection = view.loaded.detection, other.loaded.detection
    sources = [source for source in detection.data_sources if source in other_detection.data_sources]
    if sources:
        weight += RELATED_WEIGHTS["data_source"] * len(sources)
        reasons.append(f"shared data source{'s' if len(sources) > 1 else ''} {', '.join(sources)}")
    tables = [table for table in detection.required_tables if table in other_detection.required_tables]
    if tables:
        weight += RELATED_WEIGHTS["table"] * len(tables)
        reasons.append(f"reads {', '.join(tables)} too")
    return weight, tuple(reasons)


def related_views(view: DetectionView, views: Sequence[DetectionView],
                  limit: int = RELATED_LIMIT) -> tuple[RelatedView, ...]:
    """The detection's related detections: those its author named (a dangling id stays, marked as not in the
    catalog), then the closest by technique family, tactic and data source, each with its reasons."""
    by_id = {other.id: other for other in views}
    related: list[RelatedView] = []
    for related_id in view.loaded.detection.related:
        target = by_id.get(related_id)
        reasons = ("named in detection.yml", *(relation(view, target)[1] if target else ()))
        related.append(RelatedView(related_id, target.title if target else None,
                                   target.loaded.detection.technique if target else None,
                                   target.home.path if target and target.pages else None, reasons))
    named = set(view.loaded.detection.related) | {view.id}
    scored = []
    for other in views:
        if other.id in named or not other.pages:
            continue
        weight, reasons = relation(view, other)
        if weight >= RELATED_THRESHOLD:
            scored.append((weight, other, reasons))
    scored.sort(key=lambda item: (-item[0], item[1].loaded.detection.technique, item[1].title))
    for _, other, reasons in scored[:limit]:
        related.append(RelatedView(other.id, other.title, other.loaded.detection.technique, other.home.path,
                                   reasons))
    return tuple(related)


def with_related(views: Sequence[DetectionView]) -> tuple[DetectionView, ...]:
    """Every detection with its related detections resolved to links, with the reasons (``related_views``)."""
    resolved = []
    for view in views:
        resolved.append(DetectionView(
            loaded=view.loaded, slug=view.slug, attack=view.attack, pages=view.pages,
            proof_status=view.proof_status, report=view.report, run_date=view.run_date,
            sigma_download=view.sigma_download, related=related_views(view, views),
            modified_after_run=view.modified_after_run))
    return tuple(resolved)


def cell_status(statuses: Iterable[str]) -> str:
    """A matrix cell's colour, the same rule as the Navigator layer (``assay.verify.coverage.combine``): failing
    wins, then proven, then partial; ``none`` for a technique without a detection."""
    present = [status for status in statuses if status in PROOF_STATUSES]
    return combine(present) if present else "none"


def build_matrix(attack: AttackData, detections: Sequence[DetectionView]) -> tuple[MatrixColumn, ...]:
    """ATT&CK Enterprise matrix: tactic columns in matrix order, a cell per usable parent technique."""
    by_parent: dict[str, list[DetectionView]] = {}
    for view in detections:
        by_parent.setdefault(view.attack.matrix_technique_id, []).append(view)
    columns = []
    for tactic in attack.tactics_in_order():
        cells = []
        detection_ids: set[str] = set()
        for technique in sorted((t for t in attack.techniques.values()
                                 if t.usable and not t.is_subtechnique and tactic.shortname in t.tactics),
                                key=lambda t: t.name.lower()):
            # A detection colours the cells of its own technique's tactics only.
            covering = tuple(v for v in by_parent.get(technique.id, [])
                             if not v.attack.tactics or tactic in v.attack.tactics)
            subs: dict[str, list[DetectionView]] = {}
            for view in covering:
                if view.attack.technique_id != technique.id:
                    subs.setdefault(view.attack.technique_id, []).append(view)
            sub_entries = tuple((attack.techniques[sub_id], tuple(views))
                                for sub_id, views in sorted(subs.items()) if sub_id in attack.techniques)
            detection_ids.update(view.id for view in covering)
            cells.append(MatrixCell(technique, covering, cell_status(v.proof_status for v in covering), sub_entries))
        columns.append(MatrixColumn(tactic, tuple(cells), len(detection_ids),
                                    sum(1 for cell in cells if cell.detections)))
    return tuple(columns)


def build_platform_listings(detections: Sequence[DetectionView]) -> tuple[PlatformListing, ...]:
    listings: dict[str, tuple[PlatformSpec, list[tuple[DetectionView, PageView]]]] = {}
    for view in detections:
        for page in view.pages:
            listings.setdefault(page.platform.key, (page.platform, []))[1].append((view, page))
    ordered = sorted(listings.values(), key=lambda item: (item[0].rank, item[0].label, item[0].key))
    return tuple(PlatformListing(spec, f"platforms/{spec.key}.html",
                                 tuple(sorted(entries, key=lambda e: (e[0].loaded.detection.technique, e[0].title))))
                 for spec, entries in ordered)
