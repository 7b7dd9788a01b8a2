"""Damaged input: every good record around the damage is kept, each bad one counted with file and place."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from assay.cli.main import cli
from assay.engine import DuckDBEngine
from assay.errors import IngestError
from assay.ingest import ingest_paths

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "cmstp-case"
EVTX_HEADER, EVTX_CHUNK = 0x1000, 0x10000


def _ingest(*paths: Path):  # type: ignore[no-untyped-def]
    engine = DuckDBEngine(None)
    try:
        return ingest_paths(list(paths), engine=engine), engine.row_count("RawEvents")
    finally:
        engine.close()


def _multi_chunk_evtx(shared_data: Path) -> bytes:
    """A real recording with at least three chunks of events (so damage in one leaves good ones around it)."""
    for path in sorted(shared_data.glob("evtx-attack-samples/**/*.evtx"), key=lambda p: -p.stat().st_size):
        data = path.read_bytes()
        chunks = [data[EVTX_HEADER + i * EVTX_CHUNK:][:8] for i in range(3)]
        if all(c == b"ElfChnk\x00" for c in chunks):
            first, last = (int.from_bytes(data[EVTX_HEADER + EVTX_CHUNK + o:][:8], "little") for o in (8, 16))
            if last > first:
                return data
    pytest.skip("no multi-chunk EVTX in the shared data")


@pytest.mark.shared_data
def test_bit_flipped_evtx_chunk_is_skipped_and_counted(shared_data: Path, tmp_path: Path) -> None:
    data = _multi_chunk_evtx(shared_data)
    good = tmp_path / "good.evtx"
    good.write_bytes(data)
    damaged = bytearray(data)
    start = EVTX_HEADER + EVTX_CHUNK + 0x400  # inside chunk 1's records, past its header
    for offset in range(start, start + 64):
        damaged[offset] ^= 0xFF
    bad_file = tmp_path / "flipped.evtx"
    bad_file.write_bytes(bytes(damaged))
    good_summary, good_rows = _ingest(good)
    summary, loaded = _ingest(bad_file)
    first, last = (int.from_bytes(data[EVTX_HEADER + EVTX_CHUNK + o:][:8], "little") for o in (8, 16))
    assert good_summary.bad_records == 0
    assert loaded == good_rows - (last - first + 1)  # exactly chunk 1's records are gone, none returned as garbage
    assert summary.bad_records == last - first + 1
    bad = summary.bad_record_list[0]
    assert bad.source == str(bad_file) and "chunk 1" in bad.location and "0x11000" in bad.location
    assert "CRC" in bad.reason or "checksum" in bad.reason.lower()


@pytest.mark.shared_data
def test_truncated_evtx_keeps_the_complete_chunks(shared_data: Path, tmp_path: Path) -> None:
    data = _multi_chunk_evtx(shared_data)
    truncated = tmp_path / "truncated.evtx"
    truncated.write_bytes(data[:EVTX_HEADER + EVTX_CHUNK + EVTX_CHUNK // 2])  # chunk 0 whole, chunk 1 cut in half
    summary, loaded = _ingest(truncated)
    chunk0_records = (int.from_bytes(data[EVTX_HEADER + 16:][:8], "little")
                      - int.from_bytes(data[EVTX_HEADER + 8:][:8], "little") + 1)
    assert loaded >= chunk0_records
    assert summary.records_read == loaded


def test_zero_length_evtx_is_a_bad_record_and_nothing_read(tmp_path: Path) -> None:
    empty = tmp_path / "Security.evtx"
    empty.write_bytes(b"")
    summary, loaded = _ingest(empty)
    assert loaded == 0 and summary.nothing_read
    assert summary.bad_records == 1 and summary.bad_record_list[0].source == str(empty)
    runner = CliRunner()
    result = runner.invoke(cli, ["ingest", str(empty), "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 1
    assert "no record could be read" in result.output


def test_header_only_evtx_is_bad(tmp_path: Path) -> None:
    stub = tmp_path / "stub.evtx"
    stub.write_bytes(b"ElfFile\x00" + b"\x00" * 100)
    summary, loaded = _ingest(stub)
    assert loaded == 0 and summary.bad_records == 1
    assert "truncated EVTX" in summary.bad_record_list[0].reason


def test_json_line_that_does_not_parse_is_counted_with_its_line(tmp_path: Path) -> None:
    lines = (SAMPLE / "sysmon.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    lines[9] = lines[9][: len(lines[9]) // 2]  # a line cut in the middle, as a crashed shipper leaves it
    lines[20] = '"just a string"'
    target = tmp_path / "sysmon-damaged.jsonl"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary, loaded = _ingest(target)
    assert loaded == 38 and summary.records_read == 38
    assert summary.bad_records == 2
    places = {(b.location, b.reason) for b in summary.bad_record_list}
    assert places == {("line 10", "JSON does not parse"), ("line 21", "not a JSON object")}
    runner = CliRunner()
    ok = runner.invoke(cli, ["ingest", str(target), "--db", str(tmp_path / "a.duckdb")])
    assert ok.exit_code == 0, ok.output
    strict = runner.invoke(cli, ["ingest", str(target), "--db", str(tmp_path / "b.duckdb"), "--strict"])
    assert strict.exit_code == 1 and "--strict" in strict.output


def test_zip_with_junk_keeps_its_good_members(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(SAMPLE / "security.jsonl", "case/security.jsonl")
        archive.writestr("case/notes.bin", bytes(range(256)) * 4)
    target = tmp_path / "case.zip"
    target.write_bytes(buffer.getvalue())
    summary, loaded = _ingest(target)
    expected = len((SAMPLE / "security.jsonl").read_text(encoding="utf-8").splitlines())
    assert loaded == expected
    assert summary.bad_records == 1
    assert summary.bad_record_list[0].source == f"{target}!case/notes.bin"
    # A zip whose bytes are cut off cannot be opened: the file itself is the bad record.
    broken = tmp_path / "broken.zip"
    broken.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    summary, loaded = _ingest(broken)
    assert loaded == 0 and summary.bad_records == 1 and "zip" in summary.bad_record_list[0].reason


def test_csv_row_with_a_missing_column(tmp_path: Path) -> None:
    lines = (SAMPLE / "defender" / "DeviceProcessEvents.csv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    cut = rows[4].rsplit(",", 1)[0]  # the last column (ReportId) is missing on line 6
    target = tmp_path / "DeviceProcessEvents.csv"
    target.write_text("\n".join([header, *rows[:4], cut, *rows[5:]]) + "\n", encoding="utf-8")
    engine = DuckDBEngine(None)
    summary = ingest_paths([target], engine=engine)
    assert summary.records_read == len(rows) - 1
    assert summary.rows_per_table["DeviceProcessEvents"] == len(rows) - 1
    assert summary.bad_records == 1
    bad = summary.bad_record_list[0]
    assert bad.location == "line 6" and "missing" in bad.reason
    engine.close()


def test_unknown_format_named_explicitly_is_an_error(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Incident notes: host FIN-WS042 isolated at 09:12 UTC\n", encoding="utf-8")
    with pytest.raises(IngestError) as raised:
        ingest_paths([notes], engine=DuckDBEngine(None))
    assert str(notes) in str(raised.value) and "unknown format" in str(raised.value)
    result = CliRunner().invoke(cli, ["ingest", str(notes), "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 1 and "unknown format" in result.output and "Traceback" not in result.output


def test_unknown_file_inside_a_folder_is_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("collected with Sysmon 15.0\n", encoding="utf-8")
    (tmp_path / "security.jsonl").write_bytes((SAMPLE / "security.jsonl").read_bytes())
    summary, loaded = _ingest(tmp_path)
    assert loaded > 0 and summary.bad_records == 0
    assert [s.label for s in summary.skipped] == [str(tmp_path / "README.txt")]


def test_json_array_element_that_is_not_an_object(tmp_path: Path) -> None:
    events = [json.loads(line) for line in (SAMPLE / "security.jsonl").read_text(encoding="utf-8").splitlines()[:5]]
    target = tmp_path / "export.json"
    target.write_text(json.dumps([*events[:2], 42, *events[2:]]), encoding="utf-8")
    summary, loaded = _ingest(target)
    assert loaded == 5 and summary.bad_records == 1
    assert summary.bad_record_list[0].location == "element 3"


def _a_real_evtx(shared_data: Path) -> bytes:
    return min(shared_data.glob("evtx-attack-samples/**/*.evtx"), key=lambda p: p.stat().st_size).read_bytes()


def test_log_cut_short_after_discovery_is_reported_as_truncated(tmp_path: Path, shared_data: Path) -> None:
    """A log being rotated while a hunt runs: found whole, read after it was cut below its file header."""
    from assay.ingest.readers import read_source
    from assay.ingest.sources import discover

    log = tmp_path / "Security.evtx"
    log.write_bytes(_a_real_evtx(shared_data))
    [source], _ = discover([log])
    assert source.size is not None and source.size > EVTX_HEADER
    log.write_bytes(log.read_bytes()[:2048])
    bad = [record for batch in read_source(source) for record in batch.bad]
    assert [(b.source, b.location) for b in bad] == [(str(log), "file header")]
    assert "truncated EVTX: 2048 bytes" in bad[0].reason


def test_log_removed_after_discovery_is_reported_not_raised(tmp_path: Path, shared_data: Path) -> None:
    from assay.ingest.readers import read_source
    from assay.ingest.sources import discover

    log = tmp_path / "Microsoft-Windows-Sysmon%4Operational.evtx"
    log.write_bytes(_a_real_evtx(shared_data))
    [source], _ = discover([log])
    log.unlink()
    batches = list(read_source(source))
    assert sum(len(batch) for batch in batches) == 0
    [bad] = [record for batch in batches for record in batch.bad]
    assert bad.source == str(log) and bad.location == "file"
    assert "unreadable EVTX" in bad.reason and "No such file" in bad.reason
