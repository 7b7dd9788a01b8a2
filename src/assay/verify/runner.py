"""The detection test runner: every form of every detection on every scenario, judged against the expectation.

For each scenario the runner synthesizes the activity in every schema (or loads its real recording), ingests each
schema into its own in-memory DuckDB, then runs: the Sigma rule on every route its logsource lands on (Sysmon,
Security 4688, Defender tables; also through Winlogbeat ECS), the native KQL on the Defender tables (with its alert
predicate, so a scoring query's benign row does not count as an alert) and the KQL pySigma's Kusto backend
produced, on our KQL engine. Verdicts are compared with the expectation (and expected output-column values), and
the forms' verdicts with each other (:mod:`assay.verify.agreement`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from assay import __version__
from assay.catalog.loader import load_catalog
from assay.catalog.models import Form, LoadedDetection, Scenario
from assay.engine import DuckDBEngine
from assay.errors import AssayError, UsageError, VerifyError, did_you_mean
from assay.verify.agreement import ProcessPair
from assay.verify.report import (
    ColumnCheck,
    DetectionReport,
    FormResult,
    JsonScalar,
    ProofReport,
    ResultStatus,
    RunInfo,
    ScenarioResult,
    Verdict,
    cap_value,
    evidence_rows,
)
from assay.verify.synth import Telemetry, synthesize, write_telemetry

AgreementMode = Literal["fail", "warn"]
#: pySigma conversion targets Assay executes, and the telemetry each reads: the Defender XDR KQL on our KQL engine;
#: SQLite, Spark SQL and Elastic EQL on their own engines (:mod:`assay.verify.converted`).
CONVERTED_TARGETS: dict[str, tuple[str, ...]] = {
    "microsoft-xdr": ("defender",), "sqlite": ("sysmon", "security", "windows"),
    "spark-sql": ("sysmon", "security", "windows"),
    "elastic-eql": ("ecs",), "sentinel-securityevent": ("security",)}
#: Run by default: the KQL conversion and SQLite (standard library, milliseconds). Ask for the others with
#: ``assay test --converted``: Spark SQL starts a JVM (seconds per run, ~0.3 s per scenario) and EQL needs the
#: optional AGPL eql package and ECS documents (a real recording has none, so its scenarios skip).
DEFAULT_CONVERTED_TARGETS: tuple[str, ...] = ("microsoft-xdr", "sqlite")
#: pySigma messages saying a target has no table or field for the rule's logsource (the form cannot exist),
#: as opposed to a defect of the rule.
_INEXPRESSIBLE = ("Unable to determine table name", "Invalid SigmaDetectionItem field name",
                  "does not support correlation")
#: Telemetry schemas a synthesized scenario can be rendered in for the Sigma rule (``windows``: the event channels
#: other than Sysmon and Security, e.g. System, PowerShell/Operational, TaskScheduler/Operational).
SIGMA_TELEMETRY: tuple[str, ...] = ("sysmon", "security", "windows", "defender", "ecs")
#: The default: the schemas the detections are written for. ECS (Winlogbeat, mapped back to event-log names)
#: doubles the Sigma checks and the ingest cost per scenario, so it is opt-in (``--telemetry ecs``). A schema
#: without events in a scenario costs nothing (no file, no database).
DEFAULT_SIGMA_TELEMETRY: tuple[str, ...] = ("sysmon", "security", "windows", "defender")
#: A Kusto target tried when a rule's logsource has no table on the first: Security, System and other Windows
#: event-log rules have no Defender XDR table but run on Sentinel's SecurityEvent.
KQL_FALLBACK_TARGETS: dict[str, str] = {"microsoft-xdr": "sentinel-securityevent"}
#: Telemetry the native KQL runs on when the detection does not say: the Defender XDR tables.
KQL_TELEMETRY: tuple[str, ...] = ("defender",)
#: The telemetry that fills a table a KQL query reads (``required_tables`` in detection.yml decides).
TABLE_TELEMETRY = {"SecurityEvent": "security", "DeviceProcessEvents": "defender", "DeviceFileEvents": "defender",
                   "DeviceRegistryEvents": "defender", "DeviceNetworkEvents": "defender",
                   "DeviceImageLoadEvents": "defender", "DeviceLogonEvents": "defender",
                   "DeviceEvents": "defender", "IdentityLogonEvents": "defender", "WindowsEvent": "windows"}
#: Which telemetry a Sigma route is native to, by its name (any other pairing is labelled "via <telemetry>");
#: routes over other event channels (System, PowerShell…) are native to ``windows`` (see :func:`_native`).
NATIVE_TELEMETRY = {"sysmon": "sysmon", "security": "security", "Device": "defender"}
SYSMON_CHANNEL_NAME = "microsoft-windows-sysmon/operational"
#: When no --now is given, the KQL runs this long after the scenario started (inside a 24h look-back).
DEFAULT_NOW_OFFSET = dt.timedelta(hours=1)
#: For a recording, the KQL runs this long after its newest event ("just after the recording"), so ``ago(1h)``
#: covers the recording's last hour (an hour after the newest event, ``Timestamp > ago(1h)`` matched nothing).
RECORDING_NOW_OFFSET = dt.timedelta(minutes=1)
SHARED_DATA_ENV = "ASSAY_SHARED_DATA"
#: Columns shown as Sigma evidence besides the fields the rule reads.
EVIDENCE_CONTEXT = {
    "RawEvents": ("Image", "NewProcessName", "CommandLine", "ParentImage", "ParentProcessName", "User",
                  "OriginalFileName"),
    "DeviceProcessEvents": ("Timestamp", "DeviceName", "AccountName", "FileName", "FolderPath",
                            "ProcessCommandLine", "InitiatingProcessFileName", "InitiatingProcessCommandLine"),
}


@dataclass(frozen=True)
class RunOptions:
    """What to run and how to judge it."""

    forms: tuple[Form, ...] = ("sigma", "kql", "converted")
    agreement: AgreementMode = "fail"
    #: Fixed "now" for the KQL (otherwise each scenario's start + an hour).
    now: dt.datetime | None = None
    #: Folder with the real recordings (``../shared/data``); found automatically when None.
    shared_data: Path | None = None
    #: Converted forms to execute; one whose engine is not installed here is left out (``skipped_targets``).
    converted_targets: tuple[str, ...] = DEFAULT_CONVERTED_TARGETS
    sigma_telemetry: tuple[str, ...] = DEFAULT_SIGMA_TELEMETRY
    #: Where the native KQL runs; None: from the detection's required tables (Device* -> defender,
    #: SecurityEvent -> security).
    kql_telemetry: tuple[str, ...] | None = None
    #: Run only these scenario ids (all when None); an id no detection has is a usage error.
    scenarios: tuple[str, ...] | None = None
    #: Parallelism: several detections are proven in this many worker processes; a single detection's scenarios
    #: in this many threads. Results keep the catalog and tests.yml order.
    jobs: int = 1


# --------------------------------------------------------------------------------------------------------------
# Scenario data: one in-memory database per telemetry schema
# --------------------------------------------------------------------------------------------------------------


@dataclass
class ScenarioData:
    """A scenario's telemetry, ingested: schema -> database (``recording`` for a real file)."""

    scenario: Scenario
    engines: dict[str, DuckDBEngine] = field(default_factory=dict)
    telemetry: Telemetry | None = None
    recording: Path | None = None
    #: Set when the scenario cannot run here (a recording that is absent), with the reason.
    skip_reason: str | None = None
    #: Problems ingestion reported (bad records), one sentence each.
    ingest_notes: list[str] = field(default_factory=list)

    def start_time(self) -> dt.datetime | None:
        if self.scenario.activity is not None:
            return self.scenario.activity.start.astimezone(dt.UTC)
        return None


def find_shared_data(start: Path | None = None) -> Path | None:
    """``$ASSAY_SHARED_DATA``, else a ``shared/data`` folder beside the project (searched upward from ``start``)."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env) if Path(env).is_dir() else None
    for base in [*(start.resolve().parents if start else ()), Path.cwd(), *Path.cwd().parents]:
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def _ingest(paths: Sequence[Path], data: ScenarioData, schema: str) -> DuckDBEngine:
    from assay.ingest import ingest_paths

    engine = DuckDBEngine(None)
    summary = ingest_paths(list(paths), engine=engine)
    if summary.bad_records:
        data.ingest_notes.append(f"{schema}: {summary.bad_records} bad record(s) while ingesting "
                                 f"({'; '.join(str(b) for b in summary.bad_record_list[:3])})")
    return engine


@contextmanager
def scenario_data(scenario: Scenario, schemas: Sequence[str], shared_data: Path | None) -> Iterator[ScenarioData]:
    """Synthesize (or locate) and ingest a scenario; the databases close when the block ends."""
    data = ScenarioData(scenario)
    with ExitStack() as stack:
        recording = scenario.provenance.recording
        if recording is not None:
            if shared_data is None:
                data.skip_reason = (f"recording {recording.path} needs the shared reference data (set "
                                    f"${SHARED_DATA_ENV} or put it at ../shared/data)")
            elif not (shared_data / recording.path).is_file():
                data.skip_reason = f"recording {recording.path} not found under {shared_data}"
            else:
                data.recording = shared_data / recording.path
                engine = _ingest([data.recording], data, "recording")
                stack.callback(engine.close)
                data.engines["recording"] = engine
            yield data
            return
        data.telemetry = synthesize(scenario)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="assay-proof-")))
        files = write_telemetry(data.telemetry, folder, schemas)
        for schema in schemas:
            if not files.get(schema):
                continue
            engine = _ingest(files[schema], data, schema)
            stack.callback(engine.close)
            data.engines[schema] = engine
        yield data


# --------------------------------------------------------------------------------------------------------------
# Judging
# --------------------------------------------------------------------------------------------------------------


def judge(expected: Verdict, verdict: Verdict, checks: Sequence[ColumnCheck] = ()) -> tuple[ResultStatus, str]:
    """pass/fail and why, from the verdict against the expectation and the expected column values."""
    wrong = [c for c in checks if not c.ok]
    if verdict == expected and not wrong:
        detail = f"{verdict} as expected"
        if checks:
            detail += f"; {len(checks)} expected column value(s) match"
        return "pass", detail
    reasons = []
    if verdict != expected:
        reasons.append(f"expected {expected}, got {verdict}")
    for check in wrong:
        if check.missing:
            reasons.append(f"column {check.column} not returned (expected {check.expected!r})")
        else:
            reasons.append(f"{check.column} = {check.actual!r}, expected {check.expected!r}")
    return "fail", "; ".join(reasons)


def _same_value(expected: JsonScalar, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    if expected is None:
        return actual is None
    return str(expected) == str(cap_value(actual))


def column_checks(expected: dict[str, JsonScalar], columns: Sequence[str],
                  rows: Sequence[Sequence[Any]]) -> list[ColumnCheck]:
    """Expected column values against the returned row that matches them best (a query may return several)."""
    if not expected:
        return []
    if not rows:
        return [ColumnCheck(column=name, expected=value, ok=False, missing=True) for name, value in expected.items()]
    best: list[ColumnCheck] = []
    for row in rows:
        values = dict(zip(columns, row, strict=False))
        checks = [ColumnCheck(column=name, expected=value, actual=cap_value(values.get(name)),
                              ok=name in values and _same_value(value, values.get(name)),
                              missing=name not in values)
                  for name, value in expected.items()]
        if not best or sum(c.ok for c in checks) > sum(c.ok for c in best):
            best = checks
    return best


# --------------------------------------------------------------------------------------------------------------
# Forms
# --------------------------------------------------------------------------------------------------------------


def _native(route: str, table: str, channels: Sequence[str] = ()) -> str | None:
    """The telemetry schema a Sigma route reads natively: by the route's table and channels (Sysmon, Security, any
    other Windows channel), else by its name."""
    if table.startswith("Device"):
        return "defender"
    lowered = {c.lower() for c in channels}
    if lowered:
        if lowered == {SYSMON_CHANNEL_NAME}:
            return "sysmon"
        if lowered == {"security"}:
            return "security"
        return "windows"
    return next((schema for prefix, schema in NATIVE_TELEMETRY.items() if route.startswith(prefix)), None)


def _is_native(route: Any, native: str) -> bool:
    """Whether a Sigma route (:class:`assay.sigma.routes.Route`) reads the ``native`` telemetry."""
    return _native(route.name, route.table, route.channels) == native


def _route_applies(route: str, table: str, telemetry: str, channels: Sequence[str] = ()) -> bool:
    """Whether a Sigma route is run on a telemetry schema: its own routes (and for ECS, the event-log routes its
    documents are mapped back to); a recording runs on every route it has data for."""
    if telemetry == "recording":
        return True
    if telemetry == "ecs":
        return table == "RawEvents"
    return _native(route, table, channels) == telemetry


def _sigma_key(route: str, telemetry: str, table: str = "RawEvents", channels: Sequence[str] = ()) -> str:
    if telemetry in (_native(route, table, channels), "recording"):
        return f"sigma[{route}]"
    return f"sigma[{route} via {telemetry}]"


def _sigma_evidence(engine: DuckDBEngine, table: str, fields: Sequence[str], event_ids: Sequence[int]
                    ) -> tuple[list[Any], int]:
    if not event_ids:
        return [], 0
    ids = ", ".join(str(int(i)) for i in event_ids[:5])
    if table == "RawEvents":
        result = engine.run(f'SELECT "AssayEventId", "Timestamp", "Computer", "EventID", "SourceFile", '
                            f'"SourceRecord", "Fields" FROM "RawEvents" WHERE "AssayEventId" IN ({ids}) '
                            f'ORDER BY "AssayEventId"')
        wanted = list(dict.fromkeys([*fields, *EVIDENCE_CONTEXT["RawEvents"]]))
        columns = ["AssayEventId", "Timestamp", "Computer", "EventID", *wanted, "AssaySource"]
        full_rows: list[list[Any]] = []
        for event_id, timestamp, computer, eid, source_file, source_record, fields_map in result.rows:
            mapping = dict(fields_map or {})
            full_rows.append([event_id, timestamp, computer, eid, *(mapping.get(name) for name in wanted),
                              f"{Path(str(source_file)).name}#{source_record}"])
        # Only the fields these events carry (a 4688 event has no ParentImage, a Sysmon one no NewProcessName).
        kept = [i for i in range(len(columns)) if any(r[i] is not None for r in full_rows)]
        evidence, _ = evidence_rows([columns[i] for i in kept], [[r[i] for i in kept] for r in full_rows])
        return evidence, max(len(event_ids) - 5, 0)
    present = {column for column, _ in engine.table_columns(table)}
    wanted = [c for c in dict.fromkeys(["AssayEventId", *EVIDENCE_CONTEXT.get(table, ("Timestamp", "DeviceName")),
                                        *fields, "AssaySource"]) if c in present]
    result = engine.run(f'SELECT {", ".join(chr(34) + c + chr(34) for c in wanted)} FROM "{table}" '
                        f'WHERE "AssayEventId" IN ({ids}) ORDER BY "AssayEventId"')
    evidence, _ = evidence_rows(list(result.columns), [list(r) for r in result.rows])
    return evidence, max(len(event_ids) - 5, 0)


class DetectionRun:
    """Runs one detection's forms on its scenarios."""

    def __init__(self, loaded: LoadedDetection, options: RunOptions) -> None:
        self.loaded = loaded
        self.options = options
        self.errors: list[str] = []
        self.rule: Any = None
        #: The rule compiled once per route (pySigma parsing is the slow part; the trees are reused).
        self.targets: list[Any] = []
        self.route_fields: dict[str, tuple[str, ...]] = {}
        self.conversions: dict[str, str] = {}
        #: Conversion targets that do not exist for this rule (a correlation rule), with the reason.
        self.unconvertible: dict[str, str] = {}
        self.kql_text = loaded.kql_text
        #: Each scenario's process creations (Sysmon and Defender side by side), kept for the agreement diagnosis.
        self.processes: dict[str, list[ProcessPair]] = {}
        #: The Spark session the spark-sql converted form runs on, started on first use.
        self._spark: Any = None
        #: Local-engine targets whose backend could not convert the rule, with the backend's reason.
        self.unconverted: dict[str, str] = {}
        forms = [f for f in loaded.forms if f in options.forms]
        self.forms: list[str] = []
        if "sigma" in forms:
            self._load_sigma()
            if self.rule is not None:
                self.forms.append("sigma")
        if "kql" in forms and self.kql_text is not None:
            self.forms.append("kql")
        if "converted" in forms and self.rule is not None:
            self._convert()

    def kql_telemetry(self) -> tuple[str, ...]:
        """The schemas the native KQL runs on: the options', else those filling the detection's required tables."""
        if self.options.kql_telemetry is not None:
            return self.options.kql_telemetry
        schemas = {TABLE_TELEMETRY[t] for t in self.loaded.detection.required_tables if t in TABLE_TELEMETRY}
        return tuple(sorted(schemas)) or KQL_TELEMETRY

    def available_forms(self) -> list[str]:
        """Every form the detection has, whatever this run was restricted to (a converted form whose engine is
        not installed here is not available: it cannot count against the detection)."""
        forms: list[str] = []
        for form in self.loaded.forms:
            if form == "converted":
                # A target that cannot express the rule (a correlation rule, a logsource without a table there, a
                # local backend without the construct) is not a form this detection has; a fallback that converted is.
                forms.extend(f"converted:{target}" for target in runnable_targets(self.options.converted_targets)
                             if target not in self.unconvertible and target not in self.unconverted)
                forms.extend(f"converted:{target}" for target in self.conversions
                             if target not in self.options.converted_targets)  # a fallback target
            else:
                forms.append(form)
        return forms

    def _load_sigma(self) -> None:
        from assay.sigma import compile_rule, load_rule

        assert self.loaded.sigma_path is not None
        try:
            self.rule = load_rule(self.loaded.sigma_path)
            if self.rule.is_correlation:
                # Evaluated whole per database (assay.sigma.correlation); there is no single compiled condition.
                return
            self.targets = compile_rule(self.rule)
            if not self.targets:
                raise VerifyError("the rule's logsource lands on no table Assay has (see `assay sigma` routes)")
            for target in self.targets:
                self.route_fields[target.route] = tuple(target.fields)
        except Exception as error:  # pySigma raises more than SigmaError on odd rules
            self.rule = None
            self.errors.append(f"sigma: the rule does not load or compile: {_describe_error(error)}")

    def _convert(self) -> None:
        from assay.sigma import convert

        targets = list(runnable_targets(self.options.converted_targets))
        while targets:
            target = targets.pop(0)
            try:
                conversion = convert(self.rule, target)
            except Exception as error:
                self.errors.append(f"converted:{target}: conversion failed: {_describe_error(error)}")
                continue
            messages = "; ".join(conversion.messages) or "no query produced"
            if conversion.status == "failed" or not conversion.query:
                if target in LOCAL_TARGETS:
                    # A backend that cannot express the rule means there is no such form to prove (the site's
                    # page for that platform shows the backend's reason); it is not a defect of the detection.
                    self.unconverted[target] = messages
                    continue
                if self.rule.is_correlation or any(text in messages for text in _INEXPRESSIBLE):
                    # The target cannot express this rule (its logsource has no table there, or it is a
                    # correlation rule): not a form of this detection. Each scenario says so (skip), and another
                    # target is tried.
                    why = ("pySigma cannot convert a Sigma correlation rule; the native KQL is the windowed form"
                           if self.rule.is_correlation else f"the {target} target cannot express this rule's "
                           "logsource")
                    self.unconvertible[target] = f"{why} ({messages})"
                    fallback = KQL_FALLBACK_TARGETS.get(target)
                    if (fallback and not self.rule.is_correlation and fallback not in targets
                            and fallback not in self.conversions and fallback not in self.unconvertible):
                        # The same rule as Sentinel runs it on the Windows event tables (a Security-log rule has
                        # no Defender table but has SecurityEvent): the converted form is proven on that target.
                        self.unconvertible[target] += f"; tried {fallback} instead"
                        targets.append(fallback)
                    continue
                self.errors.append(f"converted:{target}: pySigma could not convert the rule: {messages}")
                continue
            self.conversions[target] = conversion.query
            self.forms.append(f"converted:{target}")

    # -- one scenario ----------------------------------------------------------------------------------------------

    def now_for(self, data: ScenarioData, engine: DuckDBEngine) -> dt.datetime:
        if self.options.now is not None:
            return self.options.now
        start = data.start_time()
        if start is None:
            latest = engine.run('SELECT max("Timestamp") FROM "RawEvents"').rows[0][0]
            newest = latest.replace(tzinfo=dt.UTC) if isinstance(latest, dt.datetime) else dt.datetime.now(dt.UTC)
            return newest + RECORDING_NOW_OFFSET
        return start + DEFAULT_NOW_OFFSET

    def run_scenario(self, scenario: Scenario, shared_data: Path | None) -> ScenarioResult:
        result = ScenarioResult(
            id=scenario.id, title=scenario.title, kind=scenario.kind, provenance=scenario.provenance.kind,
            provenance_detail=_provenance_detail(scenario, self.loaded),
            expected_columns={k: v for k, v in scenario.expected.columns.items()},
        )
        schemas = sorted(set(self.options.sigma_telemetry if "sigma" in self.forms else ())
                         | set(self.kql_telemetry() if "kql" in self.forms else ())
                         | {schema for t in self.conversions for schema in CONVERTED_TARGETS.get(t, ("defender",))
                            if schema != "ecs"},
                         key=lambda s: SIGMA_TELEMETRY.index(s) if s in SIGMA_TELEMETRY else 99)
        try:
            with scenario_data(scenario, schemas, shared_data) as data:
                self.processes[scenario.id] = _process_pairs(data)
                if data.skip_reason:
                    for form in self.forms:
                        result.results.append(FormResult(
                            form=form, key=form, status="skip", expected=scenario.expected.outcome(_base(form)),
                            reason=data.skip_reason, telemetry="recording"))
                    return result
                result.telemetry_notes = self.check_expected_telemetry(scenario, data)
                runs: list[tuple[str, Callable[[], list[FormResult]]]] = []
                if "sigma" in self.forms:
                    runs.append(("sigma", partial(self.run_sigma, scenario, data)))
                if "kql" in self.forms:
                    runs.append(("kql", partial(self.run_kql, scenario, data)))
                for target, query in self.conversions.items():
                    runs.append((f"converted:{target}", partial(self.run_converted, scenario, data, target, query)))
                for target, why in self.unconvertible.items():
                    result.results.append(FormResult(form=f"converted:{target}", key=f"converted:{target}",
                                                     status="skip", expected=scenario.expected.outcome("converted"),
                                                     reason=why))
                for form, run in runs:
                    # One form breaking (an engine bug, an unsupported construct) must not hide the others.
                    try:
                        result.results.extend(run())
                    except Exception as error:
                        reason = f"the form failed to run: {_describe_error(error)}"
                        result.results.append(_error_result(form, scenario, reason))
        except Exception as error:
            result.results = [_error_result(form, scenario, f"the scenario could not be prepared: "
                                                            f"{_describe_error(error)}") for form in self.forms]
        return result

    @staticmethod
    def check_expected_telemetry(scenario: Scenario, data: ScenarioData) -> list[str]:
        from assay.verify.expectations import inventory_of_database, inventory_of_events, unbacked_claims

        if not scenario.expected_telemetry:
            return []
        if data.telemetry is not None:
            inventory = inventory_of_events(data.telemetry.sysmon, data.telemetry.security, data.telemetry.windows)
        elif "recording" in data.engines:
            inventory = inventory_of_database(data.engines["recording"])
        else:
            return []
        return unbacked_claims(scenario.expected_telemetry, inventory)

    def _engines(self, data: ScenarioData, schemas: Sequence[str]) -> list[tuple[str, DuckDBEngine]]:
        if data.recording is not None:
            return [("recording", data.engines["recording"])]
        return [(schema, data.engines[schema]) for schema in schemas if schema in data.engines]

    def run_sigma(self, scenario: Scenario, data: ScenarioData) -> list[FormResult]:
        from assay.sigma.evaluation import evaluate_target

        expected = scenario.expected.outcome("sigma")
        if self.rule is not None and self.rule.is_correlation:
            return self.run_sigma_correlation(scenario, data)
        results: list[FormResult] = []
        for telemetry, engine in self._engines(data, self.options.sigma_telemetry):
            for target in self.targets:
                channels = target.route_spec.channels
                if not _route_applies(target.route, target.table, telemetry, channels):
                    continue
                started = time.perf_counter()
                try:
                    route = evaluate_target(target, engine)
                except AssayError as error:
                    results.append(FormResult(form="sigma", key=_sigma_key(target.route, telemetry, target.table,
                                                                           channels),
                                              route=target.route, table=target.table, telemetry=telemetry,
                                              status="error", expected=expected,
                                              reason=f"Sigma evaluation failed: {error}"))
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                if route.status == "no-data":
                    continue  # this telemetry has no events on this route
                results.append(self._sigma_result(route, telemetry, engine, expected, elapsed, channels))
        if not results:
            # None of the rule's routes has events in this scenario's telemetry: the activity does not produce
            # what the rule reads. An attack that cannot be shown fails; a benign scenario trivially passes.
            routes = ", ".join(t.route for t in self.targets)
            status: ResultStatus = "fail" if expected == "fires" else "pass"
            results.append(FormResult(
                form="sigma", key="sigma", status=status, verdict="does-not-fire", expected=expected,
                reason=f"no events on any route of the rule ({routes}) in this scenario's telemetry"
                       + ("; add the activity the rule reads to the scenario" if status == "fail" else "")))
        return results

    def run_sigma_correlation(self, scenario: Scenario, data: ScenarioData) -> list[FormResult]:
        """A Sigma correlation rule on each telemetry database holding events of its rules' routes: it fires when a
        window of events meets the condition (event_count, value_count, temporal)."""
        from assay.sigma.correlation import evaluate_correlation

        expected = scenario.expected.outcome("sigma")
        results: list[FormResult] = []
        runs: list[tuple[str, DuckDBEngine, str]] = []
        for telemetry, engine in self._engines(data, self.options.sigma_telemetry):
            # One evaluation per kind of route (Sysmon, Security, other channels, Defender tables): a database
            # holds an event and its copy mapped into a Defender table, which must not count twice.
            natives = ("sysmon", "security", "windows", "defender") if telemetry in ("recording", "ecs") \
                else (telemetry,)
            runs.extend((telemetry, engine, native) for native in natives)
        for telemetry, engine, native in runs:
            if telemetry == "ecs" and native == "defender":
                continue  # Winlogbeat documents map back to event-log routes only
            started = time.perf_counter()
            try:
                outcome = evaluate_correlation(self.rule, engine, keep=partial(_is_native, native=native))
            except AssayError as error:
                results.append(FormResult(form="sigma", key=f"sigma[correlation via {telemetry}]",
                                          telemetry=telemetry, status="error", expected=expected,
                                          reason=f"Sigma correlation evaluation failed: {error}"))
                continue
            with_data = [r for r in outcome.routes if r.status != "no-data" and r.rows_in_route]
            if not with_data:
                continue  # none of the referenced rules' routes has events in this telemetry
            if all(r.status == "cannot-evaluate" for r in with_data):
                # Every route here lacks a field the correlation groups or counts by (4688 has no User): this
                # telemetry cannot show the activity, as for a single rule's missing field.
                lacking = sorted({name for r in with_data for name in r.missing})
                routes = sorted({r.route.split("@", 1)[-1] for r in with_data})
                results.append(FormResult(
                    form="sigma", key=f"sigma[correlation:{','.join(routes)}]", route=",".join(routes),
                    table=with_data[0].table, telemetry=telemetry, status="skip", verdict=None, expected=expected,
                    missing_fields=lacking,
                    reason=f"this telemetry cannot show it: the route lacks {', '.join(lacking)}"))
                continue
            elapsed = (time.perf_counter() - started) * 1000
            if all(r.status == "cannot-evaluate" for r in with_data):
                # Every route with events lacks a group-by field: this telemetry cannot show the correlation.
                missing = sorted({m for r in with_data for m in r.missing})
                routes = sorted({r.route.split("@", 1)[-1] for r in with_data})
                results.append(FormResult(
                    form="sigma", key=f"sigma[correlation:{','.join(routes)}]", route=",".join(routes),
                    table=with_data[0].table, telemetry=telemetry, status="skip", expected=expected,
                    missing_fields=missing, duration_ms=round(elapsed, 2),
                    reason=f"this telemetry cannot show it: the route lacks {', '.join(missing)} to group by"))
                continue
            with_data = [r for r in with_data if r.status != "cannot-evaluate"]
            verdict: Verdict = "fires" if outcome.correlation_hits else "does-not-fire"
            status, reason = judge(expected, verdict)
            matched = sum(len(r.event_ids) for r in outcome.routes)
            reason += (f" ({len(outcome.correlation_hits)} window(s) met the condition; {matched} event(s) matched "
                       "the referenced rules)")
            evidence, omitted = evidence_rows(
                ["group", "start", "end", "value", "events"],
                [[", ".join(f"{k}={v}" for k, v in hit.group), hit.start, hit.end, hit.value, len(hit.event_ids)]
                 for hit in outcome.correlation_hits])
            routes = sorted({r.route.split("@", 1)[-1] for r in with_data})
            results.append(FormResult(
                form="sigma", key=f"sigma[correlation:{','.join(routes)}]", route=",".join(routes),
                table=with_data[0].table, telemetry=telemetry, status=status, verdict=verdict, expected=expected,
                reason=reason,
                row_count=len(outcome.correlation_hits), evidence=evidence, evidence_omitted=omitted,
                duration_ms=round(elapsed, 2)))
        if not results:
            status_empty: ResultStatus = "fail" if expected == "fires" else "pass"
            results.append(FormResult(
                form="sigma", key="sigma", status=status_empty, verdict="does-not-fire", expected=expected,
                reason="no events on any route of the correlation's rules in this scenario's telemetry"))
        return results

    def _sigma_result(self, route: Any, telemetry: str, engine: DuckDBEngine, expected: Verdict,
                      elapsed: float, channels: Sequence[str] = ()) -> FormResult:
        common: dict[str, Any] = dict(form="sigma", key=_sigma_key(route.route, telemetry, route.table, channels),
                                      route=route.route,
                                      table=route.table, telemetry=telemetry, expected=expected, sql=route.sql,
                                      missing_fields=list(route.missing), duration_ms=round(elapsed, 2))
        verdict: Verdict = "fires" if route.status == "matched" else "does-not-fire"
        if route.status == "cannot-evaluate" and expected == "fires":
            # A route without a field the rule needs cannot show the activity: that is a property of the
            # telemetry (e.g. 4688 has no OriginalFileName), not a defect of the rule.
            return FormResult(**common, status="skip", verdict=verdict,
                              reason=f"this telemetry cannot show it: the route lacks {', '.join(route.missing)}")
        status, reason = judge(expected, verdict)
        if route.missing and route.status != "matched":
            reason += f" (route lacks {', '.join(route.missing)})"
        evidence, omitted = _sigma_evidence(engine, route.table, self.route_fields.get(route.route, ()),
                                            route.event_ids)
        return FormResult(**common, status=status, verdict=verdict, reason=reason, row_count=len(route.event_ids),
                          evidence=evidence, evidence_omitted=omitted)

    def _run_kql(self, text: str, engine: DuckDBEngine, now: dt.datetime) -> Any:
        from assay.kql import run as run_kql

        # a detection may ship the watchlists its KQL reads: <detection>/watchlists/<alias>.csv
        folder = self.loaded.path / "watchlists"
        watchlists = {p.stem: p for p in sorted(folder.glob("*.csv"))} if folder.is_dir() else {}
        return run_kql(text, db=engine, now=now, watchlists=watchlists)

    def run_kql(self, scenario: Scenario, data: ScenarioData) -> list[FormResult]:
        assert self.kql_text is not None
        expected = scenario.expected.outcome("kql")
        predicate = self.loaded.detection.alert.predicate if self.loaded.detection.alert else None
        results: list[FormResult] = []
        for telemetry, engine in self._engines(data, self.kql_telemetry()):
            now = self.now_for(data, engine)
            query = self.kql_text.rstrip()
            alert_query = f"{query}\n| where {predicate}" if predicate else query
            key = "kql" if len(self.kql_telemetry()) == 1 or data.recording else f"kql[{telemetry}]"
            common: dict[str, Any] = dict(form="kql", key=key, table=_leading_table(query),
                                          telemetry=telemetry, expected=expected, query=alert_query, now=now)
            started = time.perf_counter()
            try:
                scored = self._run_kql(query, engine, now)
                alerts = self._run_kql(alert_query, engine, now) if predicate else scored
            except AssayError as error:
                results.append(FormResult(**common, status="error", reason=f"the KQL did not run: {error}",
                                          sql=getattr(error, "sql", None)))
                continue
            elapsed = (time.perf_counter() - started) * 1000
            verdict: Verdict = "fires" if alerts.rows else "does-not-fire"
            checks = column_checks(dict(scenario.expected.columns), _names(scored),
                                   [list(r) for r in scored.rows])
            status, reason = judge(expected, verdict, checks)
            if predicate:
                reason += f" ({len(scored.rows)} row(s) scored, {len(alerts.rows)} meet the alert predicate)"
            shown = alerts if alerts.rows else scored
            evidence, omitted = _kql_evidence(shown, query)
            results.append(FormResult(**common, status=status, verdict=verdict, reason=reason,
                                      row_count=len(alerts.rows), scored_row_count=len(scored.rows) if predicate
                                      else None, evidence=evidence, evidence_omitted=omitted,
                                      column_checks=checks, sql=alerts.sql, duration_ms=round(elapsed, 2)))
        return results

    def run_converted(self, scenario: Scenario, data: ScenarioData, target: str, query: str) -> list[FormResult]:
        if target in LOCAL_TARGETS:
            return [self.run_local(scenario, data, target, query)]
        form = f"converted:{target}"
        expected = scenario.expected.outcome("converted")
        results: list[FormResult] = []
        for telemetry, engine in self._engines(data, CONVERTED_TARGETS.get(target, ("defender",))):
            now = self.now_for(data, engine)
            common: dict[str, Any] = dict(form=form, key=form, telemetry=telemetry, expected=expected, query=query,
                                          table=_leading_table(query), now=now)
            started = time.perf_counter()
            try:
                result = self._run_kql(query, engine, now)
            except AssayError as error:
                results.append(FormResult(**common, status="error",
                                          reason=f"the converted KQL did not run on our engine: {error}",
                                          sql=getattr(error, "sql", None)))
                continue
            verdict: Verdict = "fires" if result.rows else "does-not-fire"
            status, reason = judge(expected, verdict)
            evidence, omitted = _kql_evidence(result, query)
            results.append(FormResult(**common, status=status, verdict=verdict, reason=reason,
                                      row_count=len(result.rows), evidence=evidence, evidence_omitted=omitted,
                                      sql=result.sql, duration_ms=round((time.perf_counter() - started) * 1000, 2)))
        return results

    def run_local(self, scenario: Scenario, data: ScenarioData, target: str, query: str) -> FormResult:
        """A converted form on its own engine (SQLite, Spark, EQL) over the scenario's events."""
        from assay.verify import converted

        form = f"converted:{target}"
        # These forms read the event-log records the Sigma rule reads, with the Sigma rule's field names: they are
        # held to the Sigma rule's expectation (expected.converted describes the Defender XDR conversion).
        expected = scenario.expected.outcome("sigma")
        telemetry = "recording" if data.recording is not None else "+".join(CONVERTED_TARGETS[target])
        common: dict[str, Any] = dict(form=form, key=form, telemetry=telemetry, expected=expected, query=query,
                                      table="logs" if target != "elastic-eql" else None)
        started = time.perf_counter()
        try:
            if target == "elastic-eql":
                documents = data.telemetry.ecs if data.telemetry is not None else converted.ecs_documents(
                    [record for engine in data.engines.values() for record in converted.event_records(engine)])
                result = converted.run_eql(query, documents)
                if data.telemetry is None:
                    result = replace(result, notes=(*result.notes, "the recording's Sysmon records as ECS "
                                                    "documents (the ecs_windows pipeline's field names)"))
            else:
                records = [record for schema in ("recording", *CONVERTED_TARGETS[target]) if schema in data.engines
                           for record in converted.event_records(data.engines[schema])]
                if target == "sqlite":
                    result = converted.run_sqlite(query, records)
                else:
                    result = converted.run_spark(query, records, self._spark_session())
        except AssayError as error:
            return FormResult(**common, status="error", reason=f"the converted query did not run: {error}")
        elapsed = (time.perf_counter() - started) * 1000
        verdict: Verdict = "fires" if result.rows else "does-not-fire"
        status, reason = judge(expected, verdict)
        reason += f" ({converted.engine_label(target)})" + "".join(f"; {note}" for note in result.notes)
        names = list(result.columns)
        keep = _local_evidence_columns(names, query)
        evidence, omitted = evidence_rows([names[i] for i in keep], [[row[i] for i in keep] for row in result.rows])
        return FormResult(**common, status=status, verdict=verdict, reason=reason, row_count=len(result.rows),
                          evidence=evidence, evidence_omitted=omitted, sql=result.statement,
                          duration_ms=round(elapsed, 2))

    def _spark_session(self) -> Any:
        """One local Spark session for the run (Spark reuses the JVM across detections: getOrCreate)."""
        if self._spark is None:
            from assay.engine.spark_engine import SparkEngine

            self._spark = SparkEngine(os.environ.get("ASSAY_SPARK_MASTER") or "local[1]").session
        return self._spark

    def run(self, shared_data: Path | None,
            on_scenario: Callable[[str, ScenarioResult], None] | None = None) -> DetectionReport:
        from assay.verify.agreement import agreement_findings

        detection = self.loaded.detection
        technique_name, tactics = _technique_facts(detection.technique)
        report = DetectionReport(id=detection.id, title=detection.title, technique=detection.technique,
                                 technique_name=technique_name, tactics=tactics, path=str(self.loaded.path),
                                 forms=list(self.forms), available_forms=self.available_forms(),
                                 errors=list(self.errors))
        selected = [s for s in self.loaded.scenarios
                    if self.options.scenarios is None or s.id in self.options.scenarios]
        if self.options.jobs > 1 and len(selected) > 1:
            # Scenarios are independent (each has its own databases); DuckDB releases the GIL while it works.
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=self.options.jobs, thread_name_prefix="assay-proof") as pool:
                results = list(pool.map(lambda s: self.run_scenario(s, shared_data), selected))
        else:
            results = [self.run_scenario(s, shared_data) for s in selected]
        for scenario_result in results:
            report.scenarios.append(scenario_result)
            if on_scenario is not None:
                on_scenario(detection.id, scenario_result)
        report.agreement = agreement_findings(self.loaded, report, self.processes, self.options.agreement,
                                              converted_queries=self.conversions)
        return report


#: Converted targets with an engine of their own (not our KQL engine).
LOCAL_TARGETS = ("sqlite", "spark-sql", "elastic-eql")
#: Record fields always shown as evidence of a local converted form, besides those its query names.
LOCAL_EVIDENCE_CONTEXT = ("EventID", "Computer", "Image", "NewProcessName", "CommandLine", "ParentImage",
                          "ParentProcessName", "OriginalFileName", "User")


def runnable_targets(targets: Sequence[str]) -> list[str]:
    """The converted targets whose engine can run here (``skipped_targets`` says why the others cannot)."""
    from assay.verify.converted import engine_unavailable

    return [target for target in targets if target not in LOCAL_TARGETS or engine_unavailable(target) is None]


def skipped_targets(targets: Sequence[str]) -> dict[str, str]:
    """Requested converted targets whose engine is not installed here, with the reason."""
    from assay.verify.converted import engine_unavailable

    reasons = {target: engine_unavailable(target) for target in targets if target in LOCAL_TARGETS}
    return {target: reason for target, reason in reasons.items() if reason is not None}


def _local_evidence_columns(names: Sequence[str], query: str) -> list[int]:
    import re

    if len(names) <= EVIDENCE_COLUMN_LIMIT:
        return list(range(len(names)))
    mentioned = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", query))
    return [i for i, name in enumerate(names) if name in LOCAL_EVIDENCE_CONTEXT or name in mentioned]


def _error_result(form: str, scenario: Scenario, reason: str) -> FormResult:
    return FormResult(form=form, key=form, status="error", expected=scenario.expected.outcome(_base(form)),
                      reason=reason)


def _describe_error(error: Exception) -> str:
    """An AssayError as it renders; anything else with its type, so the report says what broke."""
    return str(error) if isinstance(error, AssayError) else f"{type(error).__name__}: {error}"


def _process_pairs(data: ScenarioData) -> list[ProcessPair]:
    """Process creations as Sysmon and Defender show them: synthesized, or read back from a recording's database
    (a DeviceProcessEvents row mapped from Sysmon keeps the AssayEventId of its RawEvents event)."""
    from assay.verify.agreement import process_pairs

    if data.telemetry is not None:
        return process_pairs(data.telemetry)
    engine = data.engines.get("recording")
    if engine is None:
        return []
    result = engine.run('SELECT r."Fields" AS "RawFields", d.* FROM "DeviceProcessEvents" d JOIN "RawEvents" r '
                        'USING ("AssayEventId") WHERE r."EventID" = 1 ORDER BY d."AssayEventId" LIMIT 500')
    pairs: list[ProcessPair] = []
    for row in result.rows:
        values = dict(zip(result.columns, row, strict=False))
        pairs.append((dict(values.pop("RawFields") or {}), values))
    return pairs


def _leading_table(query: str) -> str | None:
    """The table a KQL query starts from (``DeviceProcessEvents | ...``), when it starts from one."""
    import re

    lines = [line for line in query.splitlines() if line.strip() and not line.strip().startswith("//")]
    match = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\||$)", lines[0]) if lines else None
    return match.group(1) if match and match.group(1) not in ("let", "print", "datatable") else None


#: Above this many columns (a query returning whole rows), evidence keeps context columns and those the query reads.
EVIDENCE_COLUMN_LIMIT = 16


def _kql_evidence(result: Any, query: str) -> tuple[list[Any], int]:
    """Evidence rows of a KQL result; whole-table rows are cut to the columns that explain the match."""
    import re

    names = _names(result)
    keep = list(range(len(names)))
    if len(names) > EVIDENCE_COLUMN_LIMIT:
        mentioned = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", query))
        context = set(EVIDENCE_CONTEXT["DeviceProcessEvents"]) | {"AssayEventId", "AssaySource"}
        keep = [i for i, name in enumerate(names) if name in context or name in mentioned]
    return evidence_rows([names[i] for i in keep], [[row[i] for i in keep] for row in result.rows])


def _names(result: Any) -> list[str]:
    """Column names of a KQL result (its columns are (name, Kusto type) pairs)."""
    return [column[0] if isinstance(column, tuple) else str(column) for column in result.columns]


def _base(form: str) -> Form:
    base = form.split(":", 1)[0]
    if base == "sigma":
        return "sigma"
    if base == "kql":
        return "kql"
    return "converted"


def _technique_facts(technique_id: str) -> tuple[str | None, list[str]]:
    try:
        from assay.schema.attack import attack_data

        data = attack_data()
        technique = data.technique(technique_id)
        if technique is None:
            return None, []
        return technique.name, [t.name for t in data.tactics_of(technique)]
    except AssayError:
        return None, []


def _provenance_detail(scenario: Scenario, loaded: LoadedDetection) -> str | None:
    provenance = scenario.provenance
    if provenance.atomic is not None:
        return f"Atomic Red Team {provenance.atomic.technique or loaded.detection.technique} " \
               f"{provenance.atomic.guid} \u2014 {provenance.atomic.test}"
    if provenance.false_positive is not None:
        index = provenance.false_positive.index
        items = loaded.detection.false_positives
        text = items[index - 1] if 0 < index <= len(items) else provenance.false_positive.text
        return f"false positive #{index}: {text}" if text else f"false positive #{index}"
    if provenance.recording is not None:
        return f"recording {provenance.recording.path}" + (
            f" ({provenance.recording.source})" if provenance.recording.source else "")
    return provenance.own


# --------------------------------------------------------------------------------------------------------------
# Whole runs
# --------------------------------------------------------------------------------------------------------------


def run_detections(detections: Sequence[LoadedDetection], options: RunOptions | None = None, *,
                   paths: Sequence[str] = (),
                   on_scenario: Callable[[str, ScenarioResult], None] | None = None) -> ProofReport:
    """Prove each detection; returns the report (summary filled)."""
    options = options or RunOptions()
    shared_data = options.shared_data
    if shared_data is None and detections:
        shared_data = find_shared_data(detections[0].path)
    report = ProofReport(run=RunInfo(
        started=dt.datetime.now(dt.UTC), assay_version=__version__, now=options.now, forms=list(options.forms),
        agreement_mode=options.agreement, paths=list(paths), shared_data=str(shared_data) if shared_data else None,
        python=sys.version.split()[0], platform=platform.platform(terse=True)))
    if options.scenarios is not None:
        known = {scenario.id for loaded in detections for scenario in loaded.scenarios}
        for wanted in options.scenarios:
            if wanted not in known:
                suggestion = did_you_mean(wanted, sorted(known))
                raise UsageError(f"no scenario {wanted!r} in the detections tested",
                                 hint=f"did you mean {suggestion!r}?" if suggestion else
                                 "scenario ids are the `id:` keys of tests.yml")
        detections = [d for d in detections if any(s.id in options.scenarios for s in d.scenarios)]
    if options.jobs > 1 and len(detections) > 1:
        report.detections.extend(_prove_in_processes(detections, options, shared_data, on_scenario))
    else:
        for loaded in detections:
            report.detections.append(_prove_one(loaded, options, shared_data, on_scenario))
    report.run.finished = dt.datetime.now(dt.UTC)
    report.summarize()
    return report


def _prove_one(loaded: LoadedDetection, options: RunOptions, shared_data: Path | None,
               on_scenario: Callable[[str, ScenarioResult], None] | None = None) -> DetectionReport:
    try:
        return DetectionRun(loaded, options).run(shared_data, on_scenario)
    except Exception as error:
        # A detection that breaks the runner is reported as failing; the other detections still run.
        detection = loaded.detection
        return DetectionReport(id=detection.id, title=detection.title, technique=detection.technique,
                               path=str(loaded.path), errors=[f"the proof run failed: {_describe_error(error)}"])


def _prove_in_worker(folder: str, options: RunOptions, shared_data: Path | None) -> DetectionReport:
    """One detection proven in a worker process (it loads the folder itself: loaded models stay in the parent)."""
    from assay.catalog.loader import load_detection

    return _prove_one(load_detection(folder), options, shared_data)


def _prove_in_processes(detections: Sequence[LoadedDetection], options: RunOptions, shared_data: Path | None,
                        on_scenario: Callable[[str, ScenarioResult], None] | None) -> list[DetectionReport]:
    """Detections proven in parallel worker processes (the work is Python and holds the GIL, so threads do not
    pay); reports come back in catalog order, ``on_scenario`` is called as each detection finishes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    worker_options = dataclasses.replace(options, jobs=1)
    # spawn: a worker must not inherit the parent's DuckDB or pySigma state half-initialised by a fork.
    context = multiprocessing.get_context("spawn")
    reports: list[DetectionReport | None] = [None] * len(detections)
    with ProcessPoolExecutor(max_workers=min(options.jobs, len(detections)), mp_context=context) as pool:
        futures = {pool.submit(_prove_in_worker, str(loaded.path), worker_options, shared_data): index
                   for index, loaded in enumerate(detections)}
        for future in as_completed(futures):
            index = futures[future]
            loaded = detections[index]
            try:
                result = future.result()
            except Exception as error:  # the worker died (out of memory, killed): report it, keep the others
                detection = loaded.detection
                result = DetectionReport(id=detection.id, title=detection.title, technique=detection.technique,
                                         path=str(loaded.path),
                                         errors=[f"the proof worker failed: {_describe_error(error)}"])
            reports[index] = result
            if on_scenario is not None:
                for scenario_result in result.scenarios:
                    on_scenario(result.id, scenario_result)
    return [r for r in reports if r is not None]


def run_paths(paths: Sequence[str | Path], options: RunOptions | None = None, *,
              on_scenario: Callable[[str, ScenarioResult], None] | None = None) -> ProofReport:
    """Load the detections under ``paths`` and prove them; a detection that does not load is a VerifyError
    listing every problem (fix the catalog first: ``assay lint``)."""
    catalog = load_catalog([Path(p) for p in paths])
    if catalog.errors:
        first = catalog.errors[0]
        more = f" (and {len(catalog.errors) - 1} more)" if len(catalog.errors) > 1 else ""
        raise VerifyError(f"the catalog does not load: {first.message}{more}", first.span,
                          hint="run `assay lint` on it and fix the errors first")
    if not catalog.detections:
        raise UsageError(f"no detections under {', '.join(str(p) for p in paths)}",
                         hint="pass a detection folder or a folder of detections (each holds detection.yml)")
    return run_detections(catalog.detections, options, paths=[str(p) for p in paths], on_scenario=on_scenario)
