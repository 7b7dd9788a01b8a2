"""A truncated EVTX file, cut at every kind of boundary: every whole record is kept, the truncation is reported.

Cuts: inside the file header, right after it, inside the first chunk's header, inside the first chunk's records,
between two chunks, inside a record. The expected records come from the whole file (parsed by the evtx library)
and the record layout read here: a record starts with ``**\\0\\0``, its size and its number.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import evtx
import pytest
from click.testing import CliRunner

from assay.cli.main import cli
from assay.engine import DuckDBEngine
from assay.ingest import ingest_paths

pytestmark = pytest.mark.shared_data

HEADER, CHUNK, CHUNK_HEADER = 0x1000, 0x10000, 0x200


def _ingest(path: Path) -> tuple[Any, int]:
    engine = DuckDBEngine(None)
    try:
        return ingest_paths([path], engine=engine), engine.row_count("RawEvents")
    finally:
        engine.close()


@pytest.fixture(scope="module")
def recording(shared_data: Path) -> bytes:
    """A real recording of three chunks or more, whose header counts its records exactly."""
    for path in sorted(shared_data.glob("evtx-attack-samples/**/*.evtx"), key=lambda p: -p.stat().st_size):
        data = path.read_bytes()
        if len(data) >= HEADER + 3 * CHUNK and all(data[HEADER + i * CHUNK:][:8] == b"ElfChnk\x00" for i in range(3)):
            return data
    pytest.skip("no multi-chunk EVTX in the shared data")


def _record_ends(data: bytes) -> list[tuple[int, int, int]]:
    """(record number, start offset, end offset) of every record, walking each chunk's records."""
    found = []
    for chunk in range((len(data) - HEADER) // CHUNK):
        base = HEADER + chunk * CHUNK
        free = struct.unpack_from("<I", data, base + 48)[0]
        offset = base + CHUNK_HEADER
        while offset < base + free and data[offset:offset + 4] == b"**\x00\x00":
            size, number = struct.unpack_from("<IQ", data, offset + 4)
            found.append((number, offset, offset + size))
            offset += size
    return found


def _cuts(data: bytes) -> dict[str, int]:
    ends = _record_ends(data)
    second_chunk = [r for r in ends if HEADER + CHUNK <= r[1] < HEADER + 2 * CHUNK]
    first_chunk = [r for r in ends if r[1] < HEADER + CHUNK]
    middle = first_chunk[len(first_chunk) // 2]
    inside = second_chunk[3]
    return {
        "inside the file header": 3000,
        "right after the file header": HEADER,
        "inside the first chunk's header": HEADER + 100,
        "inside the first chunk's records": middle[2] + 40,  # just past a record's end, into the next one
        "between two chunks": HEADER + CHUNK,
        "inside a record": inside[1] + (inside[2] - inside[1]) // 2,
    }


@pytest.mark.parametrize("cut_name", ["inside the file header", "right after the file header",
                                      "inside the first chunk's header", "inside the first chunk's records",
                                      "between two chunks", "inside a record"])
def test_truncated_evtx_keeps_every_whole_record_and_reports_the_cut(recording: bytes, tmp_path: Path,
                                                                    cut_name: str) -> None:
    cut = _cuts(recording)[cut_name]
    whole = tmp_path / "whole.evtx"
    whole.write_bytes(recording)
    all_records = [(r["event_record_id"], json.loads(r["data"])["Event"]["System"]["EventRecordID"])
                   for r in evtx.PyEvtxParser(str(whole)).records_json()]
    declared_next = struct.unpack_from("<Q", recording, 24)[0]
    assert len(all_records) == declared_next - 1  # the header counts this recording's records exactly
    whole_before_cut = {number for number, _start, end in _record_ends(recording) if end <= cut}
    expected = [record_id for number, record_id in all_records if number in whole_before_cut]
    truncated = tmp_path / "Sysmon.evtx"
    truncated.write_bytes(recording[:cut])

    summary, loaded = _ingest(truncated)

    assert loaded == len(expected)
    assert summary.records_read == len(expected)
    reports = [b for b in summary.bad_record_list if "truncated EVTX" in b.reason]
    assert len(reports) == 1, summary.bad_record_list
    report = reports[0]
    assert report.source == str(truncated)
    if cut >= HEADER:
        # every record not read is counted lost (the header says how many there were)
        assert summary.bad_records == len(all_records) - len(expected)
        assert f"{cut:#x}" in report.reason and "chunk" in report.location and "offset" in report.location
    else:
        assert summary.bad_records == 1
    if expected:
        engine = DuckDBEngine(None)
        try:
            ingest_paths([truncated], engine=engine)
            got = [row[0] for row in engine.run("SELECT SourceRecord FROM RawEvents ORDER BY SourceRecord").rows]
        finally:
            engine.close()
        assert got == sorted(expected)


def test_truncation_is_reported_by_ingest_and_hunt_in_text_and_json(recording: bytes, tmp_path: Path) -> None:
    cut = _cuts(recording)["inside the first chunk's records"]
    truncated = tmp_path / "Sysmon.evtx"
    truncated.write_bytes(recording[:cut])
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "any.yml").write_text(
        "title: Any Sysmon Event\nid: 7d0c3c0e-1f62-4f0e-9d62-2b9a0c1e0301\nlevel: low\n"
        "logsource: {product: windows, service: sysmon}\ndetection:\n  selection:\n    EventID|gt: 0\n"
        "  condition: selection\n", encoding="utf-8")
    runner = CliRunner()
    text = runner.invoke(cli, ["ingest", str(truncated), "--db", str(tmp_path / "a.duckdb")])
    assert text.exit_code == 0, text.output
    assert "truncated EVTX" in text.output and f"{cut:#x}" in text.output
    as_json = runner.invoke(cli, ["ingest", str(truncated), "--db", str(tmp_path / "b.duckdb"),
                                  "--format-output", "json"])
    document = json.loads(as_json.stdout)
    assert any("truncated EVTX" in b["reason"] for b in document["bad_record_list"])
    hunt_text = runner.invoke(cli, ["hunt", str(truncated), "--rules", str(rules), "--workers", "1", "--no-cache",
                                    "--out", str(tmp_path / "timeline.csv"), "--format", "csv"])
    assert hunt_text.exit_code == 0, hunt_text.output
    assert "truncated EVTX" in hunt_text.output and f"{cut:#x}" in hunt_text.output
    hunt_json = runner.invoke(cli, ["hunt", str(truncated), "--rules", str(rules), "--workers", "1", "--no-cache",
                                    "--format", "json"])
    document = json.loads(hunt_json.stdout)
    assert any("truncated EVTX" in b["reason"] for b in document["bad_record_list"])
    assert document["events"] > 0  # the whole records before the cut were hunted


def test_file_cut_inside_its_header_says_why_nothing_was_read(recording: bytes, tmp_path: Path) -> None:
    truncated = tmp_path / "Security.evtx"
    truncated.write_bytes(recording[:3000])
    result = CliRunner().invoke(cli, ["ingest", str(truncated), "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 1
    assert "no record could be read" in result.output
    assert "truncated EVTX" in result.output and "3000 bytes" in result.output


def test_a_truncated_file_split_into_chunk_ranges_reads_and_reports_the_same(recording: bytes, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from assay.hunt import fastpath
    from assay.hunt.run import hunt

    cut = _cuts(recording)["inside a record"] + 2 * CHUNK  # cut inside the fourth chunk, or the last one
    truncated = tmp_path / "Sysmon.evtx"
    truncated.write_bytes(recording[:min(cut, len(recording) - 1000)])
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "kw.yml").write_text(
        "title: Sysmon Keyword\nid: 7d0c3c0e-1f62-4f0e-9d62-2b9a0c1e0302\nlevel: low\n"
        "logsource: {product: windows, service: sysmon}\ndetection:\n  keywords: ['exe']\n  condition: keywords\n",
        encoding="utf-8")
    with hunt([truncated], [rules], workers=1, cache_dir=False) as single:
        expected = (single.events, single.bad_records, [vars(b) for b in single.bad_record_list])
    monkeypatch.setattr(fastpath, "UNIT_BYTES", CHUNK)  # one chunk per range: the cut chunk is a range's last
    with hunt([truncated], [rules], workers=2, cache_dir=False) as split:
        assert (split.events, split.bad_records, [vars(b) for b in split.bad_record_list]) == expected
    summary, loaded = _ingest(truncated)
    assert loaded == expected[0] and summary.bad_records == expected[1]


def test_a_damaged_file_header_is_not_believed(recording: bytes, tmp_path: Path) -> None:
    cut = _cuts(recording)["between two chunks"]
    damaged = bytearray(recording[:cut])
    damaged[24:32] = (2**62).to_bytes(8, "little")  # next record number: nonsense, and the header CRC now fails
    truncated = tmp_path / "Sysmon.evtx"
    truncated.write_bytes(bytes(damaged))
    summary, loaded = _ingest(truncated)
    assert loaded > 0
    assert summary.bad_records < 10**6  # no count from a header that fails its own checksum
    assert not any("truncated" in b.reason for b in summary.bad_record_list)  # nothing says the file was cut
