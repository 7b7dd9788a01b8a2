"""Readers: one per source format, each streaming :class:`Batch` es of raw JSON text with bounded memory.

Readers do as little per record in Python as they can: the EVTX parser (Rust) already produces JSON text, and JSON
lines are passed on as text; DuckDB parses them with declared shapes (see :mod:`assay.ingest.writer`). Damaged
records are reported as :class:`BadRecord` (file and chunk/line/element) and reading carries on after them.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import evtx

from assay.ingest.eventdata import EVTX_MARKER, decode_evtx_json
from assay.ingest.sources import DEFENDER_CSV, EVTX, EVTX_JSON, FileOpener, Source

DEFAULT_BATCH_ROWS = 20_000
EVTX_FILE_HEADER_SIZE = 0x1000
EVTX_CHUNK_SIZE = 0x10000
EVTX_CHUNK_MAGIC = b"ElfChnk\x00"
#: Chunks of a chunk range parsed at a time (16 MB).
RANGE_READ_CHUNKS = 256
_CHUNK_NUMBER = re.compile(r"chunk number (\d+)")


@dataclass(frozen=True)
class BadRecord:
    """A record that could not be read: the source, where in it (chunk, line, element) and why."""

    source: str
    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source} {self.location}: {self.reason}"


@dataclass
class Batch:
    """Up to ``DEFAULT_BATCH_ROWS`` records of one source: record numbers and each record's JSON text."""

    source: Source
    records: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    bad: list[BadRecord] = field(default_factory=list)
    #: Records the reader knows were lost but could not list one by one (e.g. a damaged EVTX chunk).
    lost_records: int = 0

    def __len__(self) -> int:
        return len(self.texts)


def read_source(source: Source, batch_rows: int = DEFAULT_BATCH_ROWS, evtx_threads: int = 1) -> Iterator[Batch]:
    """Batches of one source, whatever its format."""
    if source.format == EVTX:
        yield from read_evtx(source, batch_rows, evtx_threads)
    elif source.format == DEFENDER_CSV:
        yield from read_csv(source, batch_rows)
    elif source.json_array:
        yield from read_json_array(source, batch_rows)
    else:
        yield from read_json_lines(source, batch_rows)


def _evtx_chunk_records(data: bytes, chunk_number: int) -> tuple[int, int] | None:
    """First and last record numbers a chunk header claims (None if the header itself is unreadable)."""
    offset = EVTX_FILE_HEADER_SIZE + chunk_number * EVTX_CHUNK_SIZE
    header = data[offset:offset + 24]
    if len(header) < 24 or not header.startswith(EVTX_CHUNK_MAGIC):
        return None
    first, last = struct.unpack_from("<QQ", header, 8)
    if first == 0 or last < first or last - first > EVTX_CHUNK_SIZE:
        return None
    return int(first), int(last)


def _evtx_chunk_range(source: Source, first: int, stop: int) -> bytes:
    """The file header and chunks [first, stop) of an EVTX file, as one document the parser reads."""
    with source.opener() as handle:
        header = handle.read(EVTX_FILE_HEADER_SIZE)
        handle.seek(EVTX_FILE_HEADER_SIZE + first * EVTX_CHUNK_SIZE)
        return header + handle.read((stop - first) * EVTX_CHUNK_SIZE)


def evtx_chunk_count(size: int) -> int:
    """How many chunk slots an EVTX file of ``size`` bytes has (the last may be partial: a truncated log)."""
    return max(0, -(-(size - EVTX_FILE_HEADER_SIZE) // EVTX_CHUNK_SIZE))


def read_evtx(source: Source, batch_rows: int = DEFAULT_BATCH_ROWS, threads: int = 1) -> Iterator[Batch]:
    """EVTX through pyevtx-rs with checksum validation: a damaged chunk is skipped and counted, never returned."""
    # A plain file is parsed from its path (reading it into memory first costs ~2 µs per record); a zip member
    # from its bytes. The bytes of a file are read only to locate a damaged chunk. Part of a large file (a chunk
    # range) is its file header followed by its chunks: the parser reads every chunk it is given.
    if source.chunks is not None and source.chunks[1] - source.chunks[0] > RANGE_READ_CHUNKS:
        # a large range is read a few MB at a time: a range in memory is held twice (its bytes, the parser's)
        first, stop = source.chunks
        for start in range(first, stop, RANGE_READ_CHUNKS):
            yield from read_evtx(dataclasses.replace(source, chunks=(start, min(stop, start + RANGE_READ_CHUNKS))),
                                 batch_rows, threads)
        return
    chunk_base = source.chunks[0] if source.chunks is not None else 0
    if source.chunks is None and isinstance(source.opener, FileOpener):
        path: str | None = source.opener.path  # a file found by discovery
    elif source.chunks is None and "!" not in source.label and os.path.isfile(source.label):
        path = source.label
    else:
        path = None
    data: bytes | None = None
    if source.chunks is not None:
        data = _evtx_chunk_range(source, *source.chunks)
    elif path is None:
        with source.opener() as handle:
            data = handle.read()
    batch = Batch(source)
    if path is None:
        size = len(data or b"")
    else:
        try:
            size = os.path.getsize(path)  # now, not at discovery: a log can change or go in between
        except OSError as error:
            batch.bad.append(BadRecord(source.label, "file", f"unreadable EVTX: {error}"))
            yield batch
            return
    if size < EVTX_FILE_HEADER_SIZE:
        batch.bad.append(BadRecord(source.label, "file header",
                                   f"truncated EVTX: {size} bytes, shorter than the 4096-byte file header"))
        yield batch
        return
    with warnings.catch_warnings(record=True) as caught:
        # skip_errors turns a damaged chunk into a RuntimeWarning and goes on with the next chunk; we collect them.
        warnings.simplefilter("always")
        try:
            parser = evtx.PyEvtxParser(path if path is not None else io.BytesIO(data or b""),
                                       number_of_threads=threads, validate_checksums=True, skip_errors=True)
            iterator = parser.records_json()
            records, texts = batch.records, batch.texts
            for record in iterator:
                if record is None:
                    continue
                records.append(record["event_record_id"])
                text = record["data"]
                if EVTX_MARKER in text:  # unnamed <Data> values: decoded to text (assay.ingest.eventdata)
                    text = decode_evtx_json(text, checked=True)
                texts.append(text)
                if len(texts) >= batch_rows:
                    yield batch
                    batch = Batch(source)
                    records, texts = batch.records, batch.texts
        except (OSError, RuntimeError) as error:
            batch.bad.append(BadRecord(source.label, "file", f"unreadable EVTX: {error}"))
    if caught and data is None:
        with source.opener() as handle:
            data = handle.read()
    for warning in caught:
        message = str(warning.message)
        found = _CHUNK_NUMBER.search(message)
        if found:
            number = int(found.group(1))  # within what the parser was given
            span = _evtx_chunk_records(data or b"", number)
            number += chunk_base
            offset = EVTX_FILE_HEADER_SIZE + number * EVTX_CHUNK_SIZE
            message = _CHUNK_NUMBER.sub(f"chunk number {number}", message, count=1)
            if span:
                location = f"chunk {number} (offset {offset:#x}, records {span[0]}-{span[1]})"
                batch.lost_records += span[1] - span[0]  # one is counted by the BadRecord itself
            else:
                location = f"chunk {number} (offset {offset:#x})"
        else:
            location = "chunk ?"
        batch.bad.append(BadRecord(source.label, location, message.removeprefix("Skipping EVTX data: ")))
    yield batch


def read_json_lines(source: Source, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[Batch]:
    """JSON lines: each non-empty line is a record, numbered by line; DuckDB checks that it parses."""
    batch = Batch(source)
    evtx_shaped = source.format == EVTX_JSON
    with source.opener() as handle:
        for line_number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line:
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as error:
                batch.bad.append(BadRecord(source.label, f"line {line_number}", f"not UTF-8: {error}"))
                continue
            if line_number == 1:
                text = text.lstrip("\ufeff")
            if evtx_shaped:
                text = decode_evtx_json(text)
            batch.records.append(line_number)
            batch.texts.append(text)
            if len(batch.texts) >= batch_rows:
                yield batch
                batch = Batch(source)
    yield batch


def read_json_array(source: Source, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[Batch]:
    """A JSON array of records (loaded whole: arrays are exports of modest size), numbered by element."""
    batch = Batch(source)
    with source.opener() as handle:
        raw = handle.read()
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        line = getattr(error, "lineno", None)
        batch.bad.append(BadRecord(source.label, f"line {line}" if line else "file",
                                   f"JSON array does not parse: {error}"))
        yield batch
        return
    if isinstance(document, dict) and isinstance(document.get("Results"), list):
        document = document["Results"]  # advanced-hunting API response
    if not isinstance(document, list):
        document = [document]
    for index, element in enumerate(document, start=1):
        if not isinstance(element, dict):
            batch.bad.append(BadRecord(source.label, f"element {index}", "not a JSON object"))
            continue
        batch.records.append(index)
        text = json.dumps(element, ensure_ascii=False)
        batch.texts.append(decode_evtx_json(text) if source.format == EVTX_JSON else text)
        if len(batch.texts) >= batch_rows:
            yield batch
            batch = Batch(source)
    yield batch


def read_csv(source: Source, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[Batch]:
    """A Defender XDR CSV export: a header row, then one event per row; a row of the wrong width is bad."""
    batch = Batch(source)
    with source.opener() as handle:
        text_stream = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="replace", newline="")
        first = text_stream.readline()
        delimiter = "\t" if first.count("\t") > first.count(",") else ","
        header = [h.strip() for h in next(csv.reader([first], delimiter=delimiter), [])]
        reader = csv.reader(text_stream, delimiter=delimiter)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                batch.bad.append(BadRecord(source.label, f"line {reader.line_num + 1}", f"CSV error: {error}"))
                continue
            line_number = reader.line_num + 1  # +1 for the header read separately
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                batch.bad.append(BadRecord(
                    source.label, f"line {line_number}",
                    f"{len(row)} columns where the header has {len(header)}: a column is missing or extra"))
                continue
            batch.records.append(line_number)
            batch.texts.append(json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False))
            if len(batch.texts) >= batch_rows:
                yield batch
                batch = Batch(source)
    yield batch
