"""ATT&CK coverage scored by proof: by tactic (matrix order, from the packaged ATT&CK data) and as a Navigator layer.

A technique's score comes from the proof status of its detections in a saved report: proven in every form,
proven in some forms (partial), untested, or failing. A detection in the catalog but not in the report is untested.
:func:`navigator_layer` returns a valid ATT&CK Navigator layer (format 4.5) the site also publishes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from assay.catalog.models import LoadedDetection
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
