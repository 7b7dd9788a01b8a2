"""ATT&CK coverage scored by proof: by tactic (matrix order, from the packaged ATT&CK data) and as a Navigator layer.

A technique's score comes from the proof status of its detections in a saved report: proven in every form,
proven in some forms (partial), untested, or failing. A detection in the catalog but not in the report is untested.
:func:`navigator_layer` returns a valid ATT&CK Navigator layer (format 4.5) the site also publishes.
:func:`data_source_coverage` answers "which detections can run on the telemetry I have?" (``--have sysmon,security``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from assay.catalog.models import LoadedDetection
from assay.errors import AssayError, UsageError
from assay.schema.attack import AttackData, attack_data
from assay.verify.report import PROOF_STATUSES, ProofReport, ProofStatus

NAVIGATOR_LAYER_VERSION = "4.5"
NAVIGATOR_VERSION = "5.1.0"
STATUS_SCORE: dict[str, int] = {"proven": 100, "partial": 60, "untested": 20, "failing": 0}
STATUS_COLOR: dict[str, str] = {"proven": "#2e7d32", "partial": "#f9a825", "untested": "#bdbdbd",
                                "failing": "#c62828"}
STATUS_LABEL: dict[str, str] = {"proven": "proven in every form", "partial": "proven in some forms",
                                "untested": "untested", "failing": "failing"}


@dataclass(frozen=True)
class DetectionStatus:
    id: str
    title: str
    technique: str
    status: ProofStatus
    forms: tuple[str, ...] = ()


@dataclass
class TacticCoverage:
    """One tactic's row: techniques with a detection, and how well they are proven."""

    id: str
    name: str
    shortname: str
    techniques_total: int
    techniques: dict[str, ProofStatus] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for s in self.techniques.values() if s == status)

    def as_dict(self) -> dict[str, Any]:
        return {"tactic": self.id, "name": self.name, "techniques_total": self.techniques_total,
                "techniques_covered": len(self.techniques),
                **{status: self.count(status) for status in PROOF_STATUSES},
                "techniques": dict(sorted(self.techniques.items()))}


def combine(statuses: Iterable[ProofStatus]) -> ProofStatus:
    """A technique's status from its detections': failing wins (it needs attention), then proven, partial."""
    found = set(statuses)
    for status in ("failing", "proven", "partial"):
        if status in found:
            return status
    return "untested"


def detection_statuses(report: ProofReport | None,
                       catalog: Sequence[LoadedDetection] = ()) -> list[DetectionStatus]:
    """Every detection's proof status: from the report, and catalog detections the report lacks as untested."""
    statuses: dict[str, DetectionStatus] = {}
    if report is not None:
        for detection in report.detections:
            statuses[detection.id] = DetectionStatus(detection.id, detection.title, detection.technique,
                                                     detection.proof_status, tuple(detection.forms))
    for loaded in catalog:
        if loaded.id not in statuses:
            statuses[loaded.id] = DetectionStatus(loaded.id, loaded.detection.title, loaded.detection.technique,
                                                  "untested", tuple(loaded.forms))
    return list(statuses.values())


def technique_statuses(detections: Iterable[DetectionStatus]) -> dict[str, ProofStatus]:
    by_technique: dict[str, list[ProofStatus]] = {}
    for detection in detections:
        by_technique.setdefault(detection.technique, []).append(detection.status)
    return {technique: combine(statuses) for technique, statuses in by_technique.items()}


def coverage_by_tactic(detections: Sequence[DetectionStatus], attack: AttackData | None = None
                       ) -> list[TacticCoverage]:
    """One row per tactic, in ATT&CK matrix order."""
    attack = attack or attack_data()
    rows = []
    usable = [t for t in attack.techniques.values() if t.usable]
    for tactic in attack.tactics_in_order():
        rows.append(TacticCoverage(tactic.id, tactic.name, tactic.shortname,
                                   sum(1 for t in usable if tactic.shortname in t.tactics)))
    by_shortname = {row.shortname: row for row in rows}
    for technique_id, status in technique_statuses(detections).items():
        technique = attack.technique(technique_id)
        if technique is None:
            continue
        for shortname in technique.tactics:
            if shortname in by_shortname:
                by_shortname[shortname].techniques[technique_id] = status
    return rows


def navigator_layer(report: ProofReport | None, catalog: Sequence[LoadedDetection] = (), *,
                    name: str = "Assay: detections by proof status", attack: AttackData | None = None
                    ) -> dict[str, Any]:
    """An ATT&CK Navigator layer (format 4.5) scoring each covered technique by its detections' proof status."""
    attack = attack or attack_data()
    detections = detection_statuses(report, catalog)
    by_technique: dict[str, list[DetectionStatus]] = {}
    for detection in detections:
        by_technique.setdefault(detection.technique, []).append(detection)
    techniques: list[dict[str, Any]] = []
    for technique_id in sorted(by_technique):
        technique = attack.technique(technique_id)
        if technique is None:
            continue
        members = by_technique[technique_id]
        status = combine(d.status for d in members)
        comment = "; ".join(f"{d.title} ({d.id[:8]}): {STATUS_LABEL[d.status]}" for d in members)
        for shortname in technique.tactics:
            techniques.append({
                "techniqueID": technique_id,
                "tactic": shortname,
                "score": STATUS_SCORE[status],
                "color": STATUS_COLOR[status],
                "comment": comment,
                "enabled": True,
                "metadata": [{"name": "proof", "value": STATUS_LABEL[status]},
                             *({"name": "detection", "value": f"{d.title} [{', '.join(d.forms)}]"} for d in members)],
                "links": [{"label": "ATT&CK", "url": technique.url}],
                "showSubtechniques": False,
            })
            parent = attack.parent(technique)
            if parent is not None and not any(t["techniqueID"] == parent.id and t["tactic"] == shortname
                                              for t in techniques):
                # Show the parent expanded so the sub-technique is visible in the matrix.
                techniques.append({"techniqueID": parent.id, "tactic": shortname, "enabled": True,
                                   "showSubtechniques": True, "metadata": [], "links": []})
    generated = report.run.finished or report.run.started if report is not None else None
    description = (f"Techniques covered by Assay detections, coloured by proof status (ATT&CK v{attack.version})."
                   + (f" Proof run of {generated.isoformat(timespec='seconds')}." if generated else
                      " No proof run: every detection is untested."))
    return {
        "name": name,
        "versions": {"attack": attack.version.split(".")[0], "navigator": NAVIGATOR_VERSION,
                     "layer": NAVIGATOR_LAYER_VERSION},
        "domain": "enterprise-attack",
        "description": description,
        "filters": {"platforms": ["Windows"]},
        "sorting": 0,
        "layout": {"layout": "side", "aggregateFunction": "average", "showID": True, "showName": True,
                   "showAggregateScores": False, "countUnscored": False, "expandedSubtechniques": "annotated"},
        "hideDisabled": False,
        "techniques": techniques,
        "gradient": {"colors": [STATUS_COLOR["failing"], STATUS_COLOR["partial"], STATUS_COLOR["proven"]],
                     "minValue": 0, "maxValue": 100},
        "legendItems": [{"label": STATUS_LABEL[s], "color": STATUS_COLOR[s]} for s in
                        ("proven", "partial", "untested", "failing")],
        "metadata": [{"name": "generator", "value": "assay coverage"}],
        "links": [],
        "showTacticRowBackground": False,
        "tacticRowBackground": "#dddddd",
        "selectTechniquesAcrossTactics": True,
        "selectSubtechniquesWithParent": False,
        "selectVisibleTechniques": False,
    }


# --------------------------------------------------------------------------------------------------------------
# Coverage for the telemetry a user has
# --------------------------------------------------------------------------------------------------------------

#: Telemetry a user can have, as ``--have`` names it, and what each is.
DATA_SOURCES: dict[str, str] = {
    "sysmon": "Sysmon event log (Microsoft-Windows-Sysmon/Operational)",
    "security": "Windows Security event log (4688 process creation with command line, …)",
    "defender": "Microsoft Defender XDR advanced hunting tables (DeviceProcessEvents, …)",
    "ecs": "Elastic Winlogbeat documents (ECS)",
}
#: Which telemetry a Sigma route reads (by route prefix) and which fills a KQL table.
ROUTE_SOURCES = {"sysmon": "sysmon", "security": "security", "Device": "defender"}
#: Telemetry each executed converted form reads (any one of them is enough).
CONVERTED_SOURCES: dict[str, tuple[str, ...]] = {"microsoft-xdr": ("defender",), "sqlite": ("sysmon", "security"),
                                                 "spark-sql": ("sysmon", "security"), "elastic-eql": ("ecs",)}


@dataclass(frozen=True)
class FormNeed:
    """One form of a detection: the telemetry it can run on, and whether the user's telemetry is enough."""

    form: str
    #: Alternatives: the form runs when any one of these is present (a Sigma rule's routes)…
    any_of: tuple[str, ...] = ()
    #: …and all of these are (a KQL query's tables).
    all_of: tuple[str, ...] = ()
    runs: bool = False
    why: str = ""


@dataclass(frozen=True)
class DataSourceCoverage:
    """Whether a detection can run on the telemetry a user has, form by form, with the reason when it cannot."""

    id: str
    title: str
    technique: str
    forms: tuple[FormNeed, ...]

    @property
    def status(self) -> str:
        """``runs`` (every form), ``partly`` (some forms) or ``cannot run``."""
        running = [need.runs for need in self.forms]
        if running and all(running):
            return "runs"
        return "partly" if any(running) else "cannot run"

    @property
    def sources(self) -> tuple[str, ...]:
        """Every telemetry on which at least one form runs on its own."""
        found: list[str] = []
        for need in self.forms:
            candidates = [*need.any_of] if not need.all_of else ([*need.all_of] if len(set(need.all_of)) == 1 else [])
            for source in candidates:
                if source not in found:
                    found.append(source)
        return tuple(source for source in DATA_SOURCES if source in found)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "technique": self.technique, "status": self.status,
                "sources": list(self.sources),
                "forms": [{"form": n.form, "runs": n.runs, "any_of": list(n.any_of), "all_of": list(n.all_of),
                           "why": n.why} for n in self.forms]}


def parse_have(text: str) -> frozenset[str]:
    """``sysmon,security`` -> the set; an unknown name is a usage error naming the known ones."""
    from assay.errors import did_you_mean

    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError("--have names no data source", hint=f"e.g. --have sysmon,security ({', '.join(DATA_SOURCES)})")
    for name in names:
        if name not in DATA_SOURCES:
            suggestion = did_you_mean(name, list(DATA_SOURCES))
            raise UsageError(f"--have: unknown data source {name!r}",
                             hint=(f"did you mean {suggestion!r}? " if suggestion else "")
                             + f"choose from {', '.join(DATA_SOURCES)}")
    return frozenset(names)


def _route_source(route: str) -> str | None:
    return next((source for prefix, source in ROUTE_SOURCES.items() if route.startswith(prefix)), None)


def form_needs(loaded: LoadedDetection, converted_targets: Sequence[str] = ("microsoft-xdr", "sqlite")
               ) -> list[FormNeed]:
    """What each form of a detection reads: the Sigma rule's routes (any one), the KQL's tables (all of them),
    the executed converted forms' telemetry (any one)."""
    from assay.verify.runner import TABLE_TELEMETRY

    needs: list[FormNeed] = []
    if loaded.sigma_path is not None:
        from assay.sigma import compile_rule, load_rule

        try:
            targets = compile_rule(load_rule(loaded.sigma_path))
        except (AssayError, Exception) as error:  # pySigma raises more than SigmaError on odd rules
            needs.append(FormNeed("sigma", why=f"the rule does not compile: {error}"))
        else:
            sources = [source for target in targets if (source := _route_source(target.route))]
            if any(target.table == "RawEvents" for target in targets):
                sources.append("ecs")  # Winlogbeat documents are mapped back to event-log names
            needs.append(FormNeed("sigma", any_of=tuple(dict.fromkeys(sources)),
                                  why="routes: " + ", ".join(target.route for target in targets)))
        for target in converted_targets:
            needs.append(FormNeed(f"converted:{target}", any_of=CONVERTED_SOURCES.get(target, ())))
    if loaded.kql_text is not None:
        tables = loaded.detection.required_tables
        unknown = [table for table in tables if table not in TABLE_TELEMETRY]
        needs.append(FormNeed("kql", all_of=tuple(TABLE_TELEMETRY[t] for t in tables if t in TABLE_TELEMETRY),
                              why=(f"no telemetry Assay knows fills {', '.join(unknown)}" if unknown else
                                   "tables: " + ", ".join(tables))))
    return needs


def _judge(need: FormNeed, have: frozenset[str], tables: Sequence[str]) -> FormNeed:
    from assay.verify.runner import TABLE_TELEMETRY

    if not need.any_of and not need.all_of:
        return FormNeed(need.form, runs=False, why=need.why or "reads no telemetry Assay knows")
    missing_all = [source for source in dict.fromkeys(need.all_of) if source not in have]
    any_ok = not need.any_of or any(source in have for source in need.any_of)
    if need.form == "kql" and len(tables) != len(need.all_of):
        missing_all.append("(a table no telemetry fills)")
    if not missing_all and any_ok:
        used = [s for s in need.any_of if s in have] or list(dict.fromkeys(need.all_of))
        return FormNeed(need.form, need.any_of, need.all_of, True, f"runs on {', '.join(used)}")
    if missing_all:
        lacking = [t for t in tables if TABLE_TELEMETRY.get(t) not in have]
        why = f"needs {', '.join(s for s in missing_all)} for {', '.join(lacking)}" if lacking else \
            f"needs {', '.join(missing_all)}"
    else:
        why = f"needs one of {', '.join(need.any_of)}" + (f" ({need.why})" if need.why else "")
    return FormNeed(need.form, need.any_of, need.all_of, False, why)


def data_source_coverage(catalog: Sequence[LoadedDetection], have: frozenset[str],
                         converted_targets: Sequence[str] = ("microsoft-xdr", "sqlite")
                         ) -> list[DataSourceCoverage]:
    """For each detection, which of its forms can run on the telemetry in ``have``, and why the others cannot."""
    rows = []
    for loaded in catalog:
        detection = loaded.detection
        needs = tuple(_judge(need, have, detection.required_tables if need.form == "kql" else ())
                      for need in form_needs(loaded, converted_targets))
        rows.append(DataSourceCoverage(loaded.id, detection.title, detection.technique, needs))
    return rows
