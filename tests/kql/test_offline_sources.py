"""Offline stand-ins: ``_GetWatchlist('alias')`` and ``externaldata(...) [URL]`` read local files the user maps;
unmapped, they are located errors that name the flag to pass. Never a network call."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assay import kql
from assay.cli.main import cli
from assay.engine import DuckDBEngine
from assay.errors import KqlBindError, KqlUnsupportedError

IOC_URL = "https://intel.contoso.example/feeds/c2-ips.csv"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    assets = tmp_path / "assets.csv"
    assets.write_text("IPAddress,Owner,Tier\n10.0.0.5,alice,gold\n10.0.0.9,\"bob, jr\",silver\n", encoding="utf-8")
    iocs = tmp_path / "c2.csv"
    iocs.write_text("ip,confidence,first_seen\n203.0.113.7,90,2024-04-30T10:00:00Z\n198.51.100.2,oops,\n",
                    encoding="utf-8")
    tsv = tmp_path / "c2.tsv"
    tsv.write_text("203.0.113.7\tcobalt\n198.51.100.2\tsliver\n", encoding="utf-8")
    lines = tmp_path / "c2.json"
    lines.write_text('{"ip": "203.0.113.7", "tags": ["c2"], "score": 9}\n{"ip": "192.0.2.1", "tags": []}\n',
                     encoding="utf-8")
    return {"assets": assets, "iocs": iocs, "tsv": tsv, "json": lines}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a network connection was attempted")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_watchlist_columns_search_key_and_item(engine: DuckDBEngine, files: dict[str, Path],
                                               no_network: None) -> None:
    result = kql.run("_GetWatchlist('HighValueAssets') | project SearchKey, Owner, Tier, WatchlistItem",
                     db=engine, watchlists={"HighValueAssets": files["assets"]})
    assert result.rows == (
        ("10.0.0.5", "alice", "gold", {"IPAddress": "10.0.0.5", "Owner": "alice", "Tier": "gold"}),
        ("10.0.0.9", "bob, jr", "silver", {"IPAddress": "10.0.0.9", "Owner": "bob, jr", "Tier": "silver"}),
    )


def test_watchlist_alias_is_case_insensitive_and_works_in_toscalar_and_in(engine: DuckDBEngine,
                                                                          files: dict[str, Path]) -> None:
    watchlists = {"HighValueAssets": files["assets"]}
    query = "print toscalar(_GetWatchlist('highvalueassets') | summarize make_set(SearchKey))"
    assert kql.run(query, db=engine, watchlists=watchlists).rows == ((["10.0.0.5", "10.0.0.9"],),)
    query = ("let Assets = _GetWatchlist('HighValueAssets') | project SearchKey;"
             "datatable(DeviceIP: string) ['10.0.0.9', '10.0.0.77'] | where DeviceIP in (Assets)")
    assert kql.run(query, db=engine, watchlists=watchlists).rows == (("10.0.0.9",),)


def test_unmapped_watchlist_is_a_located_error_naming_the_flag() -> None:
    with pytest.raises(KqlUnsupportedError) as caught:
        kql.check("let x = 1;\nprint toscalar(_GetWatchlist('VIPUsers') | count)")
    assert (caught.value.span.line, caught.value.span.col) == (2, 16)
    assert "--watchlist VIPUsers=" in (caught.value.hint or "")


def test_externaldata_csv_with_header_skipped_and_types_converted(engine: DuckDBEngine, files: dict[str, Path],
                                                                  no_network: None) -> None:
    query = (f"externaldata(ip: string, confidence: long, first_seen: datetime) [@'{IOC_URL}'] "
             "with (format='csv', ignoreFirstRecord=true)")
    result = kql.run(query, db=engine, externaldata={IOC_URL: files["iocs"]})
    assert [row[:2] for row in result.rows] == [("203.0.113.7", 90), ("198.51.100.2", None)]
    assert result.rows[0][2].isoformat() == "2024-04-30T10:00:00"
    assert result.rows[1][2] is None


def test_externaldata_tsv_and_multijson(engine: DuckDBEngine, files: dict[str, Path]) -> None:
    query = f"externaldata(ip: string, family: string) ['{IOC_URL}'] with (format='tsv')"
    assert kql.run(query, db=engine, externaldata={IOC_URL: files["tsv"]}).rows == (
        ("203.0.113.7", "cobalt"), ("198.51.100.2", "sliver"))
    query = f"externaldata(ip: string, tags: dynamic, score: long) ['{IOC_URL}'] with (format='multijson')"
    assert kql.run(query, db=engine, externaldata={IOC_URL: files["json"]}).rows == (
        ("203.0.113.7", ["c2"], 9), ("192.0.2.1", [], None))


def test_externaldata_joined_against_events(engine: DuckDBEngine, files: dict[str, Path]) -> None:
    query = (f"let C2 = externaldata(ip: string, confidence: long, first_seen: datetime) [@'{IOC_URL}'] "
             "with (format='csv', ignoreFirstRecord=true) | where confidence >= 80 | project ip;"
             "datatable(RemoteIP: string, DeviceName: string) ['203.0.113.7', 'WS-01', '198.51.100.2', 'WS-02']"
             "| where RemoteIP in (C2) | project DeviceName")
    assert kql.run(query, db=engine, externaldata={IOC_URL: files["iocs"]}).rows == (("WS-01",),)


def test_unmapped_externaldata_is_a_located_error_naming_the_flag() -> None:
    with pytest.raises(KqlUnsupportedError) as caught:
        kql.check(f"print 1;\n  externaldata(ip: string) ['{IOC_URL}']".replace("print 1;\n", "let y = 1;\n"))
    assert (caught.value.span.line, caught.value.span.col) == (2, 3)
    assert f"--externaldata '{IOC_URL}=FILE'" in (caught.value.hint or "")


def test_a_mapped_file_that_cannot_be_read_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(KqlBindError, match="cannot read"):
        kql.check("_GetWatchlist('x')", watchlists={"x": tmp_path / "missing.csv"})
    with pytest.raises(KqlBindError, match="not supported offline"):
        kql.check(f"externaldata(a: string) ['{IOC_URL}'] with (format='parquet')",
                  externaldata={IOC_URL: tmp_path})


def test_cli_flags_map_watchlists_and_externaldata(files: dict[str, Path]) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["kql", "_GetWatchlist('HighValueAssets') | count", "--watchlist",
                                 f"HighValueAssets={files['assets']}", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == [{"Count": 2}]
    result = runner.invoke(cli, ["kql", f"externaldata(ip: string) ['{IOC_URL}'] with (format='txt')",
                                 "--externaldata", f"{IOC_URL}={files['tsv']}", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["ip", "203.0.113.7\tcobalt", "198.51.100.2\tsliver"]


def test_cli_without_a_mapping_exits_1_with_the_flag_in_the_hint() -> None:
    result = CliRunner().invoke(cli, ["kql", "_GetWatchlist('HighValueAssets') | count"])
    assert result.exit_code == 1
    assert "--watchlist HighValueAssets=" in result.stderr


def test_cli_rejects_a_malformed_mapping_as_usage() -> None:
    result = CliRunner().invoke(cli, ["kql", "print 1", "--watchlist", "no-equals-sign"])
    assert result.exit_code == 2
    assert "NAME=FILE" in result.stderr
