"""Rows for any known table: JSON lines, a JSON array or CSV whose keys are the table's column names.

``assay ingest --table SigninLogs rows.jsonl`` loads rows as they are (an export of a Sentinel or Defender table,
or rows written by hand) into the named table, creating it if needed. Values are converted to the column's Kusto
type; a row that is not an object, or a value that does not convert, is a bad row reported with file:line, and
the run goes on. Keys that are not columns go to ``AdditionalFields`` when the table has one, and are reported.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from assay.engine import DuckDBEngine
from assay.errors import IngestError, SourceSpan, UsageError, did_you_mean
from assay.ingest.readers import BadRecord
from assay.schema import TableSchema, known_tables

#: Rows inserted per statement.
BATCH_ROWS = 20_000

_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "guid": pa.string(), "dynamic": pa.string(), "long": pa.int64(), "int": pa.int32(),
    "real": pa.float64(), "bool": pa.bool_(), "datetime": pa.timestamp("us"), "timespan": pa.duration("us"),
}
_FRACTION = re.compile(r"(\.\d{6})\d+")
_TIMESPAN = re.compile(r"^(-)?(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")


@dataclass
class RowsSummary:
    """What a row load did: rows added to the table, bad rows (file:line, why), keys that are not columns."""

    table: str
    rows: int = 0
    created: bool = False
    bad: list[BadRecord] = field(default_factory=list)
    unmapped: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "rows_added": self.rows, "created": self.created, "files": self.files,
                "bad_records": len(self.bad),
                "bad": [{"source": b.source, "where": b.location, "why": b.reason} for b in self.bad],
                "unmapped_keys": self.unmapped}


class _BadValue(ValueError):
    pass


def _datetime(value: Any) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
    if not isinstance(value, str):
        raise _BadValue(f"{value!r} is not a datetime")
    text = _FRACTION.sub(r"\1", value.strip())
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _BadValue(f"{value!r} is not an ISO 8601 datetime") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _timespan(value: Any) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _TIMESPAN.match(str(value).strip())
    if match is None:
        raise _BadValue(f"{value!r} is not a timespan ([d.]hh:mm:ss[.fffffff])")
    sign, days, hours, minutes, seconds, fraction = match.groups()
    span = timedelta(days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=int(seconds),
                     microseconds=int((fraction or "0").ljust(7, "0")[:6]))
    return -span if sign else span


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _BadValue(f"{value!r} is not an integer")


def _real(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _BadValue(f"{value!r} is not a number")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise _BadValue(f"{value!r} is not a bool")


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _dynamic(value: Any) -> str:
    if isinstance(value, str):
        try:
            json.loads(value)
            return value  # already JSON text (CSV exports write dynamic columns that way)
        except ValueError:
            return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


_CONVERTERS = {"string": _string, "guid": _string, "dynamic": _dynamic, "long": _integer, "int": _integer,
               "real": _real, "bool": _bool, "datetime": _datetime, "timespan": _timespan}


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, record) of a JSON lines, JSON array or CSV file; a record that does not parse is (line, error)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise IngestError(f"cannot read {path}: {error}", SourceSpan.of_file(path)) from None
    if path.suffix.lower() in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        for row in reader:
            extra = row.get(None)
            if extra is not None or any(v is None for v in row.values()):
                yield reader.line_num, _BadValue(f"row does not have the header's {len(reader.fieldnames or [])} "
                                                 "fields")
            else:
                # CSV has no nulls: an empty cell is an absent value
                yield reader.line_num, {k: v for k, v in row.items() if v != ""}
        return
    stripped = text.lstrip()
    if stripped.startswith("["):
        decoder = json.JSONDecoder()
        try:
            items, _ = decoder.raw_decode(stripped)
        except ValueError as error:
            yield text[:len(text) - len(stripped)].count("\n") + getattr(error, "lineno", 1), \
                _BadValue(f"not a JSON array: {error}")
            return
        # positions of the elements are not kept by json; number them 1.. as "element N"
        for index, item in enumerate(items if isinstance(items, list) else [items], start=1):
            yield -index, item
        return
    for number, line_text in enumerate(text.splitlines(), start=1):
        if not line_text.strip():
            continue
        try:
            yield number, json.loads(line_text)
        except ValueError as error:
            yield number, _BadValue(f"not JSON: {error}")


def resolve_table(name: str, schemas: Mapping[str, TableSchema] | None = None) -> TableSchema:
    """The known (or declared) table ``name``; a UsageError with the closest name otherwise."""
    tables = dict(known_tables())
    if schemas:
        tables.update(schemas)
    if name in tables:
        return tables[name]
    suggestion = did_you_mean(name, list(tables))
    raise UsageError(f"unknown table {name!r}",
                     hint=f"did you mean {suggestion!r}?" if suggestion else
                     "declare it in a schema file (--schema FILE; see docs/kql-support.md)")


def load_rows(engine: DuckDBEngine, table: TableSchema, paths: list[Path]) -> RowsSummary:
    """Load the rows of ``paths`` into ``table`` (created when absent); bad rows are reported, not raised."""

    def records() -> Iterator[tuple[str, int, Any]]:
        for path in paths:
            for line, record in _records(path):
                yield str(path), line, record

    summary = load_records(engine, table, records())
    summary.files = [str(p) for p in paths]
    return summary


def load_records(engine: DuckDBEngine, table: TableSchema, records: Iterable[tuple[str, int, Any]]) -> RowsSummary:
    """Load ``(source, line, record)`` items (a record is a dict of column values) into ``table``; line < 0
    means "element -line" of a JSON array. Bad records are reported in the summary, not raised."""
    summary = RowsSummary(table.name)
    summary.created = bool(engine.ensure_tables([table.name], {table.name: table}))
    present = engine.table_columns(table.name)
    columns = {name: kusto for name, kusto in table.kql_columns}
    stored = [name for name, _ in present if name in columns and name not in {c.name for c in table.computed}]
    # columns of a table that was created another way (an older database, a custom schema) keep the DB's names
    stored = stored or [name for name, _ in present]
    aliases = {c.name: c.sql.strip('"') for c in table.computed if c.sql.startswith('"')}
    computed = {c.name for c in table.computed}
    extra_column = "AdditionalFields" if "AdditionalFields" in stored else None
    has_source = "AssaySource" in stored
    batch: dict[str, list[Any]] = {name: [] for name in stored}
    pending = 0

    def flush() -> None:
        nonlocal pending
        if not pending:
            return
        arrays = {name: pa.array(values, type=_ARROW_TYPES.get(columns.get(name, "string"), pa.string()))
                  for name, values in batch.items()}
        staging = pa.table(arrays)
        quoted = ", ".join('"' + n.replace('"', '""') + '"' for n in stored)
        engine.connection.register("assay_rows_staging", staging)
        try:
            engine.connection.execute(f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM assay_rows_staging')
        finally:
            engine.connection.unregister("assay_rows_staging")
        summary.rows += pending
        for values in batch.values():
            values.clear()
        pending = 0

    for path, line, record in records:
        where = f"line {line}" if line > 0 else f"element {-line}"
        if isinstance(record, _BadValue):
            summary.bad.append(BadRecord(str(path), where, str(record)))
            continue
        if not isinstance(record, dict):
            summary.bad.append(BadRecord(str(path), where, "a row must be a JSON object"))
            continue
        row: dict[str, Any] = {}
        leftover: dict[str, Any] = {}
        try:
            for key, value in record.items():
                target = key
                if key in computed:
                    target = aliases.get(key, "")
                    if not target or target in record:
                        continue  # Type, or TimeGenerated next to the Timestamp it repeats
                if target not in batch:
                    leftover[key] = value
                    continue
                if value is None:
                    continue
                try:
                    row[target] = _CONVERTERS[columns.get(target, "string")](value)
                except _BadValue as error:
                    raise _BadValue(f"column {target}: {error}") from None
        except _BadValue as error:
            summary.bad.append(BadRecord(str(path), where, str(error)))
            continue
        if leftover:
            for key in leftover:
                summary.unmapped[key] = summary.unmapped.get(key, 0) + 1
            if extra_column is not None and extra_column not in row:
                row[extra_column] = json.dumps(leftover, ensure_ascii=False, default=str)
        if has_source and "AssaySource" not in row:
            row["AssaySource"] = f"{path}#{line}" if line > 0 else f"{path}#{-line}"
        for name, values in batch.items():
            values.append(row.get(name))
        pending += 1
        if pending >= BATCH_ROWS:
            flush()
    flush()
    return summary


__all__ = ["RowsSummary", "load_records", "load_rows", "resolve_table"]
