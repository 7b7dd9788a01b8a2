"""Folders reached through links are read (a loop is not followed twice); what is not read is said, with why.

Triage copies often link each host's logs into a case folder. ``assay ingest CASE`` and ``assay hunt CASE`` read
the linked folders, say which links they did not follow (a loop, the same folder twice) and which files they
could not read, in text and in JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from assay.cli.main import cli
from assay.ingest.sources import discover
from tests.hunt.conftest import case_events, write_jsonl

RULE = """title: Any Sysmon Process
id: 4e1f6a2b-8c3d-4b5e-9f0a-1b2c3d4e0501
level: low
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|contains: '\\\\'
    condition: selection
"""


@pytest.fixture
def linked_case(tmp_path: Path) -> Path:
    """case/ holds only links: to two hosts' log folders, a second link to one of them, and a link to case/."""
    store = tmp_path / "store"
    for host in ("wks-fin-042", "srv-dc-01"):
        (store / host).mkdir(parents=True)
        write_jsonl(store / host / "events.jsonl", case_events())
    case = tmp_path / "case"
    case.mkdir()
    os.symlink(store / "wks-fin-042", case / "wks-fin-042")
    os.symlink(store / "srv-dc-01", case / "srv-dc-01")
    os.symlink(store / "srv-dc-01", case / "dc-again")
    os.symlink(case, case / "loop")
    return case


def test_linked_folders_are_walked_and_loops_said(linked_case: Path) -> None:
    sources, skipped = discover([linked_case])
    assert sorted(Path(s.label).parent.name for s in sources) == ["srv-dc-01", "wks-fin-042"]
    reasons = {Path(s.label).name: s.reason for s in skipped}
    assert set(reasons) == {"dc-again", "loop"}
    assert "read already" in reasons["dc-again"] and "loop" in reasons["loop"]


def test_ingest_of_a_folder_of_links_reads_them_and_says_what_it_skipped(linked_case: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["ingest", str(linked_case), "--db", str(tmp_path / "a.duckdb")])
    assert result.exit_code == 0, result.output
    assert f"Ingested {2 * len(case_events())} records" in result.output
    assert "dc-again" in result.output and "loop" in result.output
    as_json = runner.invoke(cli, ["ingest", str(linked_case), "--db", str(tmp_path / "b.duckdb"),
                                  "--format-output", "json"])
    document = json.loads(as_json.stdout)
    assert {Path(s["label"] if "label" in s else s["source"]).name for s in document["skipped"]} == {"dc-again", "loop"}


def _unreadable(folder: Path) -> Path | None:
    """A file in ``folder`` this process cannot read (permissions; as root, a link to a file the kernel guards)."""
    locked = folder / "locked.jsonl"
    locked.write_text('{"EventID": 1}\n', encoding="utf-8")
    locked.chmod(0)
    try:
        locked.open("rb").close()
    except OSError:
        return locked
    locked.unlink()
    guarded = folder / "guarded.evtx"
    os.symlink("/proc/1/mem", guarded)
    try:
        os.close(os.open(guarded, os.O_RDONLY))
    except OSError:
        return guarded
    guarded.unlink()
    return None


def test_hunt_text_mode_names_the_files_it_could_not_read(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    write_jsonl(logs / "events.jsonl", case_events())
    unreadable = _unreadable(logs)
    if unreadable is None:
        pytest.skip("no file this process cannot read could be made here")
    os.symlink(tmp_path / "gone.evtx", logs / "broken.evtx")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rule.yml").write_text(RULE, encoding="utf-8")
    runner = CliRunner()
    text = runner.invoke(cli, ["hunt", str(logs), "--rules", str(rules), "--workers", "1", "--no-cache"])
    assert text.exit_code == 0, text.output
    assert "not read" in text.output
    assert unreadable.name in text.output and "broken.evtx" in text.output
    as_json = runner.invoke(cli, ["hunt", str(logs), "--rules", str(rules), "--workers", "1", "--no-cache",
                                  "--format", "json"])
    document = json.loads(as_json.stdout)
    assert {Path(s["source"]).name for s in document["skipped"]} >= {unreadable.name, "broken.evtx"}
    assert document["hits"] > 0  # the readable file was hunted
    unreadable.chmod(0o600) if not unreadable.is_symlink() else None
