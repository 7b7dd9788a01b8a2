"""Offline stand-ins for workspace data a query names but Assay cannot fetch: Sentinel watchlists
(``_GetWatchlist('name')``) and ``externaldata(...) [URL]``. The user maps each name or URL to a local file
(``--watchlist name=FILE``, ``--externaldata URL=FILE``); the rows are read here and inlined into the query.
Nothing here opens a network connection: an unmapped name is an error that says which flag to pass.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

#: Largest file read as an offline stand-in; rows are inlined into the SQL, so this keeps compile time sane.
MAX_OFFLINE_BYTES = 64 * 1024 * 1024


class OfflineDataError(Exception):
    """A mapped file cannot be read as the query asks (the binder turns it into a located KqlBindError)."""


@dataclass(frozen=True)
class OfflineSources:
    """Local files standing in for watchlists (by name, case-insensitive) and externaldata (by URL)."""

    watchlists: Mapping[str, Path] = field(default_factory=dict)
    externaldata: Mapping[str, Path] = field(default_factory=dict)

    def watchlist(self, name: str) -> Path | None:
        for key, path in self.watchlists.items():
            if key.lower() == name.lower():
                return Path(path)
        return None

    def external(self, url: str) -> Path | None:
        for key, path in self.externaldata.items():
            if key == url or key.rstrip("/") == url.rstrip("/"):
                return Path(path)
        return None


def parse_mapping(values: Sequence[str], flag: str) -> dict[str, Path]:
    """``NAME=FILE`` pairs (the last ``=`` splits, so URLs with query strings work) → {name: path}."""
    mapping: dict[str, Path] = {}
    for value in values:
        key, separator, path = value.rpartition("=")
        if not separator or not key or not path:
            raise ValueError(f"{flag} expects NAME=FILE, got {value!r}")
        mapping[key] = Path(path)
    return mapping


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
    except OSError as error:
        raise OfflineDataError(f"cannot read {path}: {error.strerror or error}") from None
    if size > MAX_OFFLINE_BYTES:
        raise OfflineDataError(f"{path} is {size:,} bytes; offline stand-ins are at most {MAX_OFFLINE_BYTES:,}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise OfflineDataError(f"cannot read {path} as UTF-8 text: {error}") from None


def read_watchlist(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A watchlist CSV (first line: column names) → its column names and rows (every value a string)."""
    text = _read_text(path)
    try:
        reader = csv.DictReader(io.StringIO(text))
        columns = [c.strip() for c in (reader.fieldnames or []) if c is not None]
        rows = [{(k or "").strip(): (v if isinstance(v, str) else "") for k, v in row.items()} for row in reader]
    except csv.Error as error:
        raise OfflineDataError(f"{path} is not valid CSV: {error}") from None
    if not columns:
        raise OfflineDataError(f"{path} has no header line; a watchlist CSV starts with its column names")
    return columns, rows


def read_external(path: Path, columns: Sequence[tuple[str, str]], data_format: str,
                  ignore_first_record: bool) -> list[list[Any]]:
    """Rows of ``path`` in ``data_format`` (csv, tsv, psv, scsv, txt/raw, json, multijson), converted to the
    externaldata schema's types. CSV-like rows map by position; JSON objects map by column name."""
    kind = data_format.lower()
    delimiters = {"csv": ",", "tsv": "\t", "tsve": "\t", "psv": "|", "scsv": ";", "sohsv": "\x01"}
    if kind not in delimiters and kind not in ("json", "multijson", "singlejson", "txt", "raw"):
        raise OfflineDataError(f"externaldata format '{data_format}' is not supported offline "
                               "(use csv, tsv, psv, scsv, txt, raw, json or multijson)")
    text = _read_text(path)
    records: list[list[Any]] = []
    if kind in ("json", "multijson", "singlejson"):
        for item in _json_records(text, path):
            if isinstance(item, dict):
                records.append([item.get(name) for name, _ in columns])
            elif isinstance(item, list):
                records.append(list(item))
            else:
                records.append([item])
    elif kind in ("txt", "raw"):
        lines = text.splitlines() if kind == "txt" else [text]
        records = [[line] for line in lines]
    else:
        delimiter = delimiters[kind]
        try:
            records = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row]
        except csv.Error as error:
            raise OfflineDataError(f"{path} is not valid {kind.upper()}: {error}") from None
        if ignore_first_record and records:
            records = records[1:]
    width = len(columns)
    return [[convert(record[index] if index < len(record) else None, kusto_type)
             for index, (_, kusto_type) in enumerate(columns)] for record in records if width]


def _json_records(text: str, path: Path) -> list[Any]:
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = json.loads(stripped)
    except ValueError:
        whole = None
    else:
        return whole if isinstance(whole, list) else [whole]
    records = []
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as error:
            raise OfflineDataError(f"{path}:{number}: not a JSON record ({error.args[0]})") from None
    return records


def convert(value: Any, kusto_type: str) -> Any:
    """A file value → the Python value of ``kusto_type`` (invalid or empty → null, as Kusto's ingestion does)."""
    from assay.kql.values import parse_datetime_literal, parse_timespan_literal

    if kusto_type in ("string", "guid"):
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if kusto_type == "dynamic":
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value
    text = value.strip() if isinstance(value, str) else value
    try:
        if kusto_type in ("long", "int"):
            number = int(float(text)) if isinstance(text, str) and not text.lstrip("-+").isdigit() else int(text)
            return number if -2**63 <= number < 2**63 else None
        if kusto_type == "real":
            return float(text)
        if kusto_type == "bool":
            if isinstance(text, bool):
                return text
            lowered = str(text).lower()
            return True if lowered in ("true", "1") else False if lowered in ("false", "0") else None
        if kusto_type == "datetime":
            return text if isinstance(text, datetime) else parse_datetime_literal(str(text))
        if kusto_type == "timespan":
            return text if isinstance(text, timedelta) else parse_timespan_literal(str(text))
    except (TypeError, ValueError, OverflowError):
        return None
    return None
