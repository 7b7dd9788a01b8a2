"""The ``hash`` transform: one named hash out of Sysmon's ``Hashes`` list, lower-cased, whatever the list's order,
the name's case or neighbours whose names end like it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assay.engine import DuckDBEngine
from assay.ingest import ingest_paths

SHA1 = "B4E581F173F782A2F1DA5D29C95946EE500EB2D0"
MD5 = "42893ADBC36605EC79B5BD610759947E"
SHA256 = "1A061C74619DE6AF8C02CBA0FA00754BDD9E3515C0E08CAD6350C7ADFC8CDD5B"
IMPHASH = "40BEC1A4A3BCB7D3089B5E1532386613"


def _sysmon_1(record: int, hashes: str | None) -> str:
    event_data: dict[str, object] = {
        "UtcTime": "2026-11-24 08:41:07.512", "ProcessId": 4000 + record,
        "Image": "C:\\Windows\\System32\\rundll32.exe",
        "CommandLine": "rundll32.exe C:\\Users\\j.martin\\AppData\\Local\\Temp\\update.dll,DllRegisterServer",
        "User": "CONTOSO\\j.martin"}
    if hashes is not None:
        event_data["Hashes"] = hashes
    return json.dumps({"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": 1,
        "TimeCreated": {"#attributes": {"SystemTime": "2026-11-24T08:41:07.512304Z"}}, "EventRecordID": record,
        "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "FIN-WS042.corp.contoso.com"},
        "EventData": event_data}})


@pytest.mark.parametrize(("hashes", "expected"), [
    (f"SHA1={SHA1},MD5={MD5},SHA256={SHA256},IMPHASH={IMPHASH}", (SHA1.lower(), MD5.lower(), SHA256.lower())),
    (f"SHA256={SHA256}", (None, None, SHA256.lower())),
    (f"md5={MD5.lower()},sha256={SHA256}", (None, MD5.lower(), SHA256.lower())),
    # A name that merely ends like another (XMD5, IMPHASH) or a hash not first in the list is not mistaken for it.
    (f"XMD5={IMPHASH},IMPHASH={IMPHASH},MD5={MD5}", (None, MD5.lower(), None)),
    (f"SHA1=,MD5={MD5}", (None, MD5.lower(), None)),
    ("", (None, None, None)),
    (None, (None, None, None)),
])
def test_hash_columns(tmp_path: Path, hashes: str | None, expected: tuple[str | None, ...]) -> None:
    path = tmp_path / "sysmon.jsonl"
    path.write_text(_sysmon_1(7, hashes) + "\n", encoding="utf-8")
    engine = DuckDBEngine(tmp_path / "events.duckdb")
    try:
        ingest_paths([path], engine=engine)
        rows = engine.connection.execute("SELECT SHA1, MD5, SHA256 FROM DeviceProcessEvents").fetchall()
        assert rows == [expected]
    finally:
        engine.close()
