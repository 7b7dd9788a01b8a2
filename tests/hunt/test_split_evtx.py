"""One large EVTX file is cut into chunk ranges so both workers hunt it; the timeline is the same as unsplit."""

from __future__ import annotations

from pathlib import Path

import pytest

import assay.hunt.fastpath as fastpath
from assay.hunt.rules import load_hunt_rules
from assay.hunt.run import hunt
from assay.ingest import readers
from assay.ingest.readers import EVTX_CHUNK_SIZE, EVTX_FILE_HEADER_SIZE, read_source
from assay.ingest.sources import discover

#: Sysmon 1, 11 and 13 over five used chunks (a shim persistence recording from EVTX-ATTACK-SAMPLES).
RECORDING = Path("evtx-attack-samples") / "Persistence" / "persistence_sysmon_11_13_1_shime_appfix.evtx"

RULES = {
    "proc_from_windows.yml": """
title: Process Started From The Windows Folder
id: 5b0f3c8e-6a7d-4d2e-9c1b-7e2f4a9d0c01
status: test
level: low
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|startswith: 'C:\\Windows\\'
    condition: selection
""",
    "registry_shim.yml": """
title: Registry Value Set Under AppCompatFlags
id: 5b0f3c8e-6a7d-4d2e-9c1b-7e2f4a9d0c02
status: test
level: high
tags: [attack.persistence, attack.t1546.011]
logsource: {category: registry_set, product: windows}
detection:
    selection:
        TargetObject|contains: '\\AppCompatFlags\\'
    condition: selection
""",
}


@pytest.fixture
def recording(shared_data: Path) -> Path:
    path = shared_data / RECORDING
    if not path.is_file():
        pytest.skip(f"{RECORDING} is not in the shared data")
    return path


def test_a_large_log_is_cut_into_chunk_ranges(recording: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources, _ = discover([recording])
    parts = fastpath.split_large_evtx(sources, unit_bytes=2 * EVTX_CHUNK_SIZE)
    assert len(parts) >= 3 and all(p.label == str(recording) for p in parts)
    assert parts[0].chunks == (0, 2) and parts[1].chunks == (2, 4)
    whole = [r for batch in read_source(sources[0]) for r in batch.records]
    cut = [r for part in parts for batch in read_source(part) for r in batch.records]
    assert cut == whole and len(whole) == 237  # every record once, in order
    monkeypatch.setattr(readers, "RANGE_READ_CHUNKS", 3)  # a range of 8 chunks read 3, 3 and 2 at a time
    one_at_a_time = [r for part in fastpath.split_large_evtx(sources, unit_bytes=8 * EVTX_CHUNK_SIZE)
                     for batch in readers.read_evtx(part) for r in batch.records]
    assert one_at_a_time == whole
    assert fastpath.split_large_evtx(sources) == sources  # smaller than a unit: untouched


def test_split_hunt_equals_the_unsplit_one(recording: Path, tmp_path: Path, cache_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for name, text in RULES.items():
        (rules / name).write_text(text.lstrip(), encoding="utf-8")
    rule_set = load_hunt_rules([rules], cache_dir=cache_dir)
    with hunt([recording], rule_set, workers=1) as single:
        expected = [h.as_dict() for h in single.hits]
    monkeypatch.setattr(fastpath, "UNIT_BYTES", 2 * EVTX_CHUNK_SIZE)  # three units: chunks 0-1, 2-3, 4-
    with hunt([recording], rule_set, workers=2) as parallel:
        assert parallel.events == single.events == 237
        assert [h.as_dict() for h in parallel.hits] == expected
    by_rule = {hit["rule"] for hit in expected}
    assert by_rule == {"Process Started From The Windows Folder", "Registry Value Set Under AppCompatFlags"}
    records = sorted(hit["source_record"] for hit in expected)
    # hits in the first and in later chunk ranges (records carry their EventRecordID: the recording's start at
    # 1966168, one per record)
    assert len(records) > 40 and records[-1] - records[0] > 120


def test_damage_in_a_range_is_named_by_its_place_in_the_file(recording: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "RANGE_READ_CHUNKS", 1)  # and each range read one chunk at a time
    damaged = bytearray(recording.read_bytes())
    start = EVTX_FILE_HEADER_SIZE + 3 * EVTX_CHUNK_SIZE + 0x400  # inside chunk 3's records
    for offset in range(start, start + 64):
        damaged[offset] ^= 0xFF
    path = tmp_path / "Microsoft-Windows-Sysmon%4Operational.evtx"
    path.write_bytes(bytes(damaged))
    sources, _ = discover([path])
    parts = fastpath.split_large_evtx(sources, unit_bytes=2 * EVTX_CHUNK_SIZE)
    batches = [batch for part in parts for batch in read_source(part)]
    bad = [b for batch in batches for b in batch.bad]
    assert len(bad) == 1
    assert "chunk 3" in bad[0].location and f"{EVTX_FILE_HEADER_SIZE + 3 * EVTX_CHUNK_SIZE:#x}" in bad[0].location
    kept = sum(len(batch.records) for batch in batches)
    whole = list(read_source(sources[0]))
    assert bad == [b for batch in whole for b in batch.bad]  # reported exactly as when the file is read whole
    assert kept == sum(len(batch.records) for batch in whole) > 0  # the same records survive, split or not
