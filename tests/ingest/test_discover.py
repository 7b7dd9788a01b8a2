"""Walking folders: order, de-duplication of links, sizes and content detection (not the extension)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from assay.ingest.sources import EVTX, EVTX_JSON, EVTX_MAGIC, discover

#: A file that starts like an EVTX log (discovery reads the magic only; parsing is the reader's job).
_EVTX_HEAD = EVTX_MAGIC + bytes(4088)

_SYSMON_1 = {"Event": {"System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": 1,
                                  "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "WKS-042.corp.local",
                                  "TimeCreated": {"#attributes": {"SystemTime": "2026-11-20T09:14:03.512Z"}}},
                       "EventData": {"Image": "C:\\Windows\\System32\\cmstp.exe",
                                     "CommandLine": "cmstp.exe /ni /s C:\\Users\\kim\\AppData\\Local\\Temp\\x.inf",
                                     "ParentImage": "C:\\Windows\\explorer.exe"}}}


def _case(root: Path) -> dict[str, Path]:
    """A triage folder: logs in nested folders whose names sort differently as text and as paths."""
    files = {
        "dash": root / "host-a" / "Security.evtx",      # "host-a/..." sorts before "host/..." as text
        "plain": root / "host" / "Sysmon.evtx",
        "nested": root / "host" / "z" / "System.evtx",
        "json_named_evtx": root / "host" / "exported.evtx",  # evtx JSON lines behind an .evtx name
    }
    for key, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if key == "json_named_evtx":
            path.write_text(json.dumps(_SYSMON_1) + "\n", encoding="utf-8")
        else:
            path.write_bytes(_EVTX_HEAD + key.encode())
    (root / "host" / "notes.md").write_text("# analyst notes\n", encoding="utf-8")  # not a candidate suffix
    (root / "host" / "empty.evtx").write_bytes(b"")
    return files


def test_walk_order_formats_and_sizes(tmp_path: Path) -> None:
    files = _case(tmp_path / "case")
    sources, skipped = discover([tmp_path / "case"])
    labels = [s.label for s in sources]
    # the order Path objects sort in (by parts): host/... before host-a/...
    assert labels == [str(p) for p in sorted(Path(s.label) for s in sources)]
    assert labels.index(str(files["plain"])) < labels.index(str(files["dash"]))
    formats = {s.label: s.format for s in sources}
    assert formats[str(files["json_named_evtx"])] == EVTX_JSON  # judged by content, not by the name
    assert formats[str(files["plain"])] == EVTX
    assert {s.label: s.size for s in sources} == {str(p): p.stat().st_size for p in files.values()}
    assert [(Path(s.label).name, s.is_damage) for s in skipped] == [("empty.evtx", True)]


def test_links_and_repeated_paths_are_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _case(tmp_path / "case")
    (tmp_path / "case" / "host" / "again.evtx").symlink_to(files["plain"])
    (tmp_path / "alias").symlink_to(tmp_path / "case", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    sources, _ = discover(["case", str(tmp_path / "case" / "host" / "Sysmon.evtx"), "alias/host/Sysmon.evtx",
                           "./case/host/../host/z/System.evtx"])
    labels = [s.label for s in sources]
    # explicit files come first; each real file once, under the first name it was met by
    assert labels[0] == str(files["plain"])
    assert len(labels) == len(set(os.path.realpath(label) for label in labels)) == 4
    assert "case/host/again.evtx" not in labels


def test_a_file_at_the_root_of_a_relative_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "Security.evtx").write_bytes(_EVTX_HEAD)
    monkeypatch.chdir(tmp_path)
    sources, _ = discover(["Security.evtx", "."])
    assert [s.label for s in sources] == ["Security.evtx"]  # the walk's ./Security.evtx is the same file
