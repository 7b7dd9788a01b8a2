"""A detection as one document: its model plus what is derived (ATT&CK names, tactics, URLs, forms, counts).

``assay show``, ``assay list`` and the static site all render from these views, so a derived name is computed in
one place and never typed by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from assay.catalog.models import LoadedDetection, Scenario
from assay.schema.attack import AttackData, Tactic, Technique


@dataclass(frozen=True)
class AttackContext:
    """The ATT&CK box of a detection: tactic(s), technique and sub-technique, derived from the pinned data."""

    version: str
    technique_id: str
    technique: Technique | None  # None when the id is unknown (lint reports it)
    parent: Technique | None  # the technique when ``technique`` is a sub-technique
    tactics: tuple[Tactic, ...]

    @property
    def url(self) -> str | None:
        return self.technique.url if self.technique else None

    @property
    def technique_label(self) -> str:
        """'T1218 System Binary Proxy Execution' (the parent for a sub-technique)."""
        main = self.parent or self.technique
        return f"{main.id} {main.name}" if main else self.technique_id

    @property
    def subtechnique_label(self) -> str | None:
        if self.technique and self.parent:
            return f"{self.technique.id} {self.technique.name}"
        return None

    def to_json(self, attack: AttackData) -> dict[str, Any]:
        strategies = attack.strategies_of(self.technique) if self.technique else ()
        return {
            "version": self.version,
            "technique_id": self.technique_id,
            "technique": {"id": self.parent.id, "name": self.parent.name} if self.parent else (
                {"id": self.technique.id, "name": self.technique.name} if self.technique else None),
            "subtechnique": {"id": self.technique.id, "name": self.technique.name}
            if self.technique and self.parent else None,
            "tactics": [{"id": t.id, "shortname": t.shortname, "name": t.name, "url": t.url} for t in self.tactics],
            "url": self.url,
            "platforms": list(self.technique.platforms) if self.technique else [],
            "detection_strategies": [{"id": s.id, "name": s.name, "url": s.url} for s in strategies],
            "revoked": self.technique.revoked if self.technique else None,
            "deprecated": self.technique.deprecated if self.technique else None,
        }


def attack_context(loaded: LoadedDetection, attack: AttackData) -> AttackContext:
    technique = attack.technique(loaded.detection.technique)
    parent = attack.parent(technique) if technique else None
    tactics = attack.tactics_of(technique) if technique else ()
    return AttackContext(attack.version, loaded.detection.technique, technique, parent, tactics)


def provenance_label(scenario: Scenario) -> str:
    """A one-line provenance: 'atomic 34e63321-… (CMSTP Executing Remote Scriptlet)', 'false positive #2', …"""
    provenance = scenario.provenance
    if provenance.atomic:
        return f"atomic {provenance.atomic.guid} ({provenance.atomic.test})"
    if provenance.false_positive:
        return f"false positive #{provenance.false_positive.index}"
    if provenance.recording:
        return f"recording {provenance.recording.path}"
    return "own"


def process_tree_lines(scenario: Scenario) -> list[str]:
    """The scenario's process tree as indented lines: 'cmd.exe: cmd.exe /c …' under its parent."""
    activity = scenario.activity
    if activity is None:
        return []
    lines: list[str] = []

    def walk(ref: str, depth: int) -> None:
        process = activity.process(ref)
        lines.append(f"{'  ' * depth}{process.file_name}: {process.command_line}")
        for child in activity.children(ref):
            walk(child.id, depth + 1)

    for root in (p for p in activity.processes if p.parent is None):
        parent_name = re.split(r"[\\/]", root.parent_image or "")[-1]
        if parent_name:
            lines.append(f"({parent_name})")
        walk(root.id, 1 if parent_name else 0)
    return lines


def scenario_counts(loaded: LoadedDetection) -> dict[str, int]:
    attack = sum(1 for s in loaded.scenarios if s.kind == "attack")
    return {"total": len(loaded.scenarios), "attack": attack, "benign": len(loaded.scenarios) - attack}


def detection_document(loaded: LoadedDetection, attack: AttackData) -> dict[str, Any]:
    """Everything ``assay show --format json`` prints: the model, derived ATT&CK, rule texts, scenarios."""
    detection = loaded.detection.model_dump(mode="json")
    return {
        **detection,
        "attack": attack_context(loaded, attack).to_json(attack),
        "forms": list(loaded.forms),
        "paths": {
            "folder": str(loaded.path),
            "detection": str(loaded.detection_path),
            "sigma": str(loaded.sigma_path) if loaded.sigma_path else None,
            "kql": str(loaded.kql_path) if loaded.kql_path else None,
            "tests": str(loaded.tests_path) if loaded.tests_path else None,
        },
        "kql": loaded.kql_text,
        "sigma": loaded.sigma_text,
        "scenario_counts": scenario_counts(loaded),
        "scenarios": [
            {**s.model_dump(mode="json"), "provenance_label": provenance_label(s),
             "process_tree": process_tree_lines(s),
             "expected_outcomes": {form: s.expected.outcome(form) for form in loaded.forms}}
            for s in loaded.scenarios
        ],
    }


def summary_row(loaded: LoadedDetection, attack: AttackData) -> dict[str, Any]:
    """One row of ``assay list``."""
    context = attack_context(loaded, attack)
    counts = scenario_counts(loaded)
    return {
        "id": loaded.id,
        "technique": loaded.detection.technique,
        "technique_name": context.technique.name if context.technique else None,
        "tactics": [t.name for t in context.tactics],
        "title": loaded.detection.title,
        "severity": loaded.detection.severity,
        "confidence": loaded.detection.confidence,
        "status": loaded.detection.status,
        "forms": list(loaded.forms),
        "scenarios": counts,
        "folder": loaded.path.name,
    }
