"""Generated rule code is compiled once per machine; a damaged cache file is compiled again, never trusted."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.hunt import codecache
from assay.hunt.pyeval import compile_predicate

#: A predicate in the shape pyeval generates, for the rule "Image ends with \\cmstp.exe and CommandLine contains /s".
SOURCE = '''def predicate(F, EventID, Channel, Provider, Computer):
    v0 = F.get('Image')
    v1 = F.get('CommandLine')
    return (v0 is not None and v0.lower().endswith('\\\\cmstp.exe')) and (v1 is not None and '/s' in v1.lower())
'''

EVENT = {"Image": "C:\\Windows\\System32\\cmstp.exe",
         "CommandLine": "cmstp.exe /s C:\\Users\\j.ortega\\AppData\\Local\\Temp\\x.inf"}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ASSAY_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(codecache, "_MEMORY", {})
    return tmp_path


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_code_is_compiled_once_and_then_loaded(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = compile_predicate(SOURCE)
    assert first(EVENT, 1, "Microsoft-Windows-Sysmon/Operational", None, None) is True
    assert first({**EVENT, "CommandLine": "cmstp.exe /ni profile.inf"}, 1, None, None, None) is False
    [stored] = _files(cache)
    assert stored.parent.parent.name.startswith("code-cpython")
    monkeypatch.setattr(codecache, "_MEMORY", {})  # a new process: only the file is left
    monkeypatch.setattr("builtins.compile", lambda *a, **k: pytest.fail("compiled again"))
    again = compile_predicate(SOURCE)
    assert again(EVENT, 1, None, None, None) is True


def test_a_damaged_cache_file_is_compiled_again(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compile_predicate(SOURCE)
    [stored] = _files(cache)
    stored.write_bytes(b"\x00not marshal data")
    monkeypatch.setattr(codecache, "_MEMORY", {})
    predicate = compile_predicate(SOURCE)
    assert predicate(EVENT, 1, None, None, None) is True
    assert stored.read_bytes() != b"\x00not marshal data"  # rewritten


def test_a_read_only_cache_only_costs_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be", encoding="utf-8")
    monkeypatch.setenv("ASSAY_CACHE_DIR", str(blocker))
    monkeypatch.setattr(codecache, "_MEMORY", {})
    assert compile_predicate(SOURCE)(EVENT, 1, None, None, None) is True
