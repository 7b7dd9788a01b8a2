"""``assay new``: a new detection folder scaffolded from ATT&CK and the Atomic Red Team tests of its technique.

The folder holds the four catalog files, each valid as written so ``assay lint`` and ``assay test`` run at once:
``detection.yml`` with the technique's name and tactics from the pinned ATT&CK data and ``TODO`` prose to replace,
a minimal Sigma rule and KQL query to sharpen, and a ``tests.yml`` whose attack scenarios are the technique's
Windows atomic tests (provenance, command, executor, elevation) with shared fixtures as ``defaults`` (host, user,
start) and one benign scenario for the first false positive. Nothing is copied from public rule sets.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path
from typing import Any

import yaml

from assay.catalog.loader import shared_fixtures
from assay.errors import SourceSpan, UsageError
from assay.schema.attack import attack_data
from assay.verify.atomics import _StubDumper, atomics_file, load_atomic_tests, scenario_stub

#: Fixture names the scaffold uses when the catalog's shared fixtures define them.
FIXTURE_HOST = "ws-lab"
FIXTURE_USER = "art.operator"
FALLBACK_HOST = {"name": "WS-LAB-0107", "domain": "lab.contoso.com", "os": "Windows 11 Enterprise 23H2",
                 "ip": "10.20.4.107"}
FALLBACK_USER = {"domain": "LAB", "name": "art.operator", "sid": "S-1-5-21-2811496347-1204384553-3417892231-1607"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-")


def _dump(document: Any) -> str:
    return yaml.dump(document, Dumper=_StubDumper, sort_keys=False, allow_unicode=True, width=110,
                     default_flow_style=False)


def _detection(technique_id: str, name: str, author: str, today: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "title": f"TODO: {name}",
        "description": f"TODO: what {name} ({technique_id}) is and why a SOC should care.",
        "technique": technique_id,
        "severity": "medium",
        "confidence": "medium",
        "status": "experimental",
        "data_sources": ["Process: Process Creation"],
        "required_tables": ["DeviceProcessEvents"],
        "explanation": "TODO: how the logic works (which fields, which values, why they separate attack from "
                       "admin use).",
        "false_positives": ["TODO: a known benign cause (each item needs a benign scenario in tests.yml)"],
        "tuning": "TODO: how to tune in production.",
        "response": [
            {"title": "Triage the alert", "action": "TODO: what to check first.", "phase": "triage"},
            {"title": "Contain the host", "action": "TODO: isolate or not, and when.", "phase": "containment"},
        ],
        "investigation": "TODO: the investigation guide.",
        "hunting": [
            {"title": "TODO: a wider hunt", "purpose": "TODO: what it finds that the alert does not.",
             "query": "DeviceProcessEvents\n| where Timestamp > ago(7d)\n| take 100",
             "tables": ["DeviceProcessEvents"]},
            {"title": "TODO: a second hunt", "purpose": "TODO: a related behaviour to look for.",
             "query": "DeviceProcessEvents\n| where Timestamp > ago(7d)\n"
                      "| summarize count() by FileName\n| top 20 by count_",
             "tables": ["DeviceProcessEvents"]},
        ],
        "author": author,
        "created": today,
        "modified": today,
    }


def _sigma(technique_id: str, name: str, tactics: list[str], author: str, today: str) -> str:
    tags = "\n".join(f"    - attack.{tag}" for tag in [*tactics, technique_id.lower()])
    return (f"title: 'TODO: {name}'\n"
            f"id: {uuid.uuid4()}\n"
            "status: experimental\n"
            f"description: 'TODO: what the rule detects ({technique_id}).'\n"
            f"author: {author}\n"
            f"date: {today}\n"
            f"tags:\n{tags}\n"
            "logsource:\n    category: process_creation\n    product: windows\n"
            "detection:\n    selection:\n        # TODO: the image and the arguments that matter\n"
            "        Image|endswith: '\\TODO.exe'\n    condition: selection\n"
            "falsepositives:\n    - 'TODO: a known benign cause'\n"
            "level: medium\n")


KQL_TEMPLATE = """\
// TODO: the native query for {technique} ({name})
DeviceProcessEvents
| where Timestamp > ago(1h)
| where FileName =~ "TODO.exe"
| project Timestamp, DeviceName, AccountName, FileName, ProcessCommandLine, InitiatingProcessFileName
"""


def _tests(technique_id: str, atomics_dir: Path | None, catalog: Path) -> tuple[str, int]:
    fixtures = shared_fixtures(catalog / "_scaffold")
    host: Any = FIXTURE_HOST if FIXTURE_HOST in fixtures.hosts else dict(FALLBACK_HOST)
    user: Any = FIXTURE_USER if FIXTURE_USER in fixtures.users else dict(FALLBACK_USER)
    scenarios: list[dict[str, Any]] = []
    if atomics_dir is not None:
        try:
            path = atomics_file(atomics_dir, technique_id)
        except UsageError:
            path = None
        tests = [t for t in load_atomic_tests(path) if "windows" in t.platforms] if path else []
        seen: dict[str, int] = {}
        for index, test in enumerate(tests):
            stub = scenario_stub(test)
            count = seen.get(stub["id"], 0)
            seen[stub["id"]] = count + 1
            if count:
                stub["id"] = f"{stub['id']}-{count + 1}"
            activity = stub["activity"]
            for key in ("host", "user"):
                activity.pop(key)
            activity["start"] = f"2026-01-15T10:{index % 60:02d}:00Z"
            stub["notes"] = "TODO: add the files, registry writes, connections, logons… the payload produces " \
                            "(docs/catalog.md, Event kinds), write expected_telemetry, check the expectations."
            scenarios.append(stub)
    scenarios.append({
        "id": "fp-todo-benign-use",
        "title": "TODO: the benign use behind false positive 1",
        "kind": "benign",
        "provenance": {"false_positive": {"index": 1}},
        "expected": {"sigma": "does-not-fire", "kql": "does-not-fire"},
        "activity": {"start": "2026-01-16T09:00:00Z", "processes": [{
            "id": "admin", "image": "C:\\Windows\\System32\\cmd.exe", "command_line": '"C:\\Windows\\system32\\cmd.exe"',
            "parent_image": "C:\\Windows\\explorer.exe", "parent_command_line": "C:\\Windows\\Explorer.EXE"}]},
    })
    document = {"defaults": {"host": host, "user": user}, "scenarios": scenarios}
    header = ("# yaml-language-server: $schema=../../docs/schema/tests.schema.json\n"
              f"# Scenarios for {technique_id}, scaffolded by `assay new`: every Windows Atomic Red Team test of the "
              "technique\n# (a test the detection deliberately does not cover: delete it and say why here), then the "
              "evasions and\n# the benign scenarios. Format and event kinds: docs/catalog.md.\n")
    return header + _dump(document), len(scenarios) - 1


def scaffold_detection(technique: str, catalog: str | Path, *, slug: str | None = None,
                       atomics_dir: str | Path | None = None, author: str = "Assay detection engineering",
                       today: dt.date | None = None) -> Path:
    """Create ``<catalog>/<technique>-<slug>/`` with the four files; returns the folder. An existing folder is a
    usage error (nothing is overwritten)."""
    technique_id = technique.upper()
    attack = attack_data()
    found = attack.technique(technique_id)
    if found is None:
        raise UsageError(f"{technique!r} is not an ATT&CK v{attack.version} technique",
                         hint="e.g. assay new T1003.001 (see https://attack.mitre.org/techniques/)")
    parent = attack.parent(found)
    name = f"{parent.name}: {found.name}" if parent is not None else found.name
    tactics = [t.shortname for t in attack.tactics_of(found)]
    folder = Path(catalog) / f"{technique_id}-{_slug(slug or found.name)}"
    if folder.exists():
        raise UsageError(f"{folder} exists; not overwriting it", SourceSpan.of_file(folder),
                         hint="choose another --slug or remove the folder")
    date = (today or dt.date.today()).isoformat()
    tests_text, atomic_count = _tests(technique_id, Path(atomics_dir) if atomics_dir else None, Path(catalog))
    folder.mkdir(parents=True)
    (folder / "detection.yml").write_text(
        "# yaml-language-server: $schema=../../docs/schema/detection.schema.json\n"
        f"# {technique_id} {name} — scaffolded by `assay new` with {atomic_count} atomic scenario(s); replace "
        "every TODO.\n" + _dump(_detection(technique_id, name, author, date)), encoding="utf-8")
    (folder / "rule.sigma.yml").write_text(_sigma(technique_id, name, tactics, author, date), encoding="utf-8")
    (folder / "sentinel.kql").write_text(KQL_TEMPLATE.format(technique=technique_id, name=name), encoding="utf-8")
    (folder / "tests.yml").write_text(tests_text, encoding="utf-8")
    return folder
