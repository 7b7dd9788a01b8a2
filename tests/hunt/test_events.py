"""Events built in Python for the fast path equal the RawEvents rows ingestion builds with DuckDB."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.engine import DuckDBEngine
from assay.hunt.events import duck_lower, evtx_row, json_text, parse_timestamp
from assay.ingest.readers import read_source
from assay.ingest.sources import discover
from assay.ingest.writer import RawEventWriter


def test_duck_lower_folds_like_duckdb() -> None:
    engine = DuckDBEngine(None, create_tables=False)
    samples = ["C:\\Windows\\System32\\CMD.EXE", "İSTANBUL", "ΟΔΥΣΣΕΥΣ", "Straße ẞ", "ǅ", "K"]
    for text in samples:
        assert duck_lower(text) == engine.run("SELECT lower(?)", [text]).rows[0][0], text


def test_json_text_matches_json_transform() -> None:
    engine = DuckDBEngine(None, create_tables=False)
    document = ('{"a": 6424, "b": true, "c": null, "d": "C:\\\\Users\\\\jdoe", "e": {"#text": ["x", "1004"]},'
                ' "f": 1.5, "g": ["(NULL)", ""]}')
    expected = engine.run("SELECT json_transform(?, '\"MAP(VARCHAR, VARCHAR)\"')", [document]).rows[0][0]
    import json

    assert {k: json_text(v) for k, v in json.loads(document).items()} == expected


def test_timestamp_reading_matches_ingestion() -> None:
    assert parse_timestamp("2019-07-29T21:32:55.5836671Z").isoformat() == "2019-07-29T21:32:55.583667"
    assert parse_timestamp("2020-10-22 01:54:23.975 UTC").isoformat() == "2020-10-22T01:54:23.975000"
    assert parse_timestamp("not a time") is None


@pytest.mark.shared_data
def test_evtx_rows_equal_ingested_rows(shared_data: Path) -> None:
    corpus = shared_data / "evtx-attack-samples"
    files = [*sorted(corpus.rglob("*.evtx"))[:60], shared_data / "cmstp" / "sysmon_1_13_11_cmstp_ini_uacbypass.evtx"]
    sources, _ = discover([str(f) for f in files if f.exists()])
    engine = DuckDBEngine(None)
    writer = RawEventWriter(engine)
    compared = 0
    for source in sources:
        for batch in read_source(source):
            first = writer.next_id
            writer.write([batch])
            rows = engine.run("SELECT AssayEventId, Channel, EventID, Provider, Computer, Timestamp, Fields, "
                              "SourceRecord "
                              f"FROM RawEvents WHERE AssayEventId >= {first} ORDER BY AssayEventId").rows
            assert len(rows) == len(batch.texts)
            for text, row in zip(batch.texts, rows, strict=True):
                built = evtx_row(text)
                assert built is not None
                expected = {"channel": row[1], "event_id": row[2], "provider": row[3], "computer": row[4],
                            "timestamp": row[5], "fields": row[6], "record_id": row[7]}
                actual = built._asdict()
                actual["timestamp"] = built.timestamp
                del actual["system_time"]
                assert actual == expected, f"{source.label}: {text[:200]}"
                compared += 1
    assert compared > 1000
