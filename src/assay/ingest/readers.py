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
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import evtx

from assay.ingest.eventdata import EVTX_MARKER, decode_evtx_json
from assay.ingest.sources import DEFENDER_CSV, EVTX, EVTX_JSON, FileOpener, Source

DEFAULT_BATCH_ROWS = 20_000
EVTX_FILE_HEADER_SIZE = 0x1000
EVTX_CHUNK_SIZE = 0x10000
EVTX_CHUNK_MAGIC = b"ElfChnk\x00"
EVTX_FILE_MAGIC = b"ElfFile\x00"
EVTX_CHUNK_HEADER_SIZE = 0x200
EVTX_RECORD_MAGIC = b"**\x00\x00"
#: magic, size, record number, time written
EVTX_RECORD_HEADER_SIZE = 24
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
    return _chunk_span(data[offset:offset + 24])


def _chunk_span(chunk: bytes) -> tuple[int, int] | None:
    """First and last record numbers the chunk header at the start of ``chunk`` claims (None if unreadable)."""
    header = chunk[:24]
    if len(header) < 24 or not header.startswith(EVTX_CHUNK_MAGIC):
        return None
    first, last = struct.unpack_from("<QQ", header, 8)
    if first == 0 or last < first or last - first > EVTX_CHUNK_SIZE:
        return None
    return int(first), int(last)


def _evtx_chunk_range(source: Source, first: int, stop: int) -> tuple[bytes, int]:
    """The file header and chunks [first, stop) of an EVTX file, as one document the parser reads, and the size of
    the whole file."""
    with source.opener() as handle:
        header = handle.read(EVTX_FILE_HEADER_SIZE)
        handle.seek(EVTX_FILE_HEADER_SIZE + first * EVTX_CHUNK_SIZE)
        data = header + handle.read((stop - first) * EVTX_CHUNK_SIZE)
        return data, handle.seek(0, os.SEEK_END)


@dataclass(frozen=True)
class EvtxFileHeader:
    """What an EVTX file header declares: its chunk count and the number its next record would get."""

    chunks: int
    next_record: int

    @classmethod
    def parse(cls, header: bytes) -> EvtxFileHeader | None:
        """The header's counts, or None when it is not a sound EVTX file header (its CRC32 over the first 120
        bytes, its sizes): a damaged header's counts would be guesses."""
        if len(header) < 128 or not header.startswith(EVTX_FILE_MAGIC):
            return None
        header_size, block_size = struct.unpack_from("<I", header, 32)[0], struct.unpack_from("<H", header, 40)[0]
        if (header_size != 128 or block_size != EVTX_FILE_HEADER_SIZE
                or zlib.crc32(header[:120]) != struct.unpack_from("<I", header, 124)[0]):
            return None
        next_record = struct.unpack_from("<Q", header, 24)[0]
        chunks = struct.unpack_from("<H", header, 42)[0]
        return cls(int(chunks), int(next_record))


def complete_records(chunk: bytes) -> list[int]:
    """Record numbers (the record headers' own numbers) of the records that lie whole in a cut chunk's bytes, in
    order, up to the first that does not: its header, its size and the size copy that ends it must all be there."""
    numbers: list[int] = []
    offset = EVTX_CHUNK_HEADER_SIZE
    while offset + EVTX_RECORD_HEADER_SIZE <= len(chunk):
        if chunk[offset:offset + 4] != EVTX_RECORD_MAGIC:
            break
        size, number = struct.unpack_from("<IQ", chunk, offset + 4)
        end = offset + size
        if size < EVTX_RECORD_HEADER_SIZE + 4 or end > len(chunk) or struct.unpack_from("<I", chunk, end - 4)[0] != size:
            break
        numbers.append(int(number))
        offset = end
    return numbers


def _partial_chunk(header: bytes, chunk: bytes) -> tuple[list[tuple[int, str]], list[str]]:
    """The whole records of a chunk cut short (the last of a truncated file): (record number, JSON text) each, and
    the parser's complaints. The chunk is padded to its size and read without its checksums (a cut chunk cannot
    match them); only records that :func:`complete_records` finds whole are kept."""
    whole = set(complete_records(chunk))
    if not whole:
        return [], []
    document = header + chunk + bytes(EVTX_CHUNK_SIZE - len(chunk))
    kept: list[tuple[int, str]] = []
    problems: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser = evtx.PyEvtxParser(io.BytesIO(document), number_of_threads=1, validate_checksums=False,
                                       skip_errors=True)
            for record in parser.records_json():
                if record is not None and record["event_record_id"] in whole:
                    kept.append((record["event_record_id"], record["data"]))
        except (OSError, RuntimeError) as error:
            problems.append(str(error))
    problems.extend(str(w.message) for w in caught)
    return kept, problems


def _truncation(label: str, chunk_number: int, size: int, chunk: bytes, kept: list[int], last_read: int,
                declared: EvtxFileHeader | None) -> tuple[BadRecord, int]:
    """The entry reporting a file that ends inside chunk ``chunk_number`` (``chunk``: its bytes there), or, with
    ``chunk`` empty, right after the chunk before it while its header declares more; and how many records are
    known lost. ``kept``: the cut chunk's records read; ``last_read``: the highest record number read at all."""
    offset = EVTX_FILE_HEADER_SIZE + chunk_number * EVTX_CHUNK_SIZE
    parts: list[str] = []
    if chunk:
        parts.append(f"the file ends at offset {size:#x}, {len(chunk)} bytes into chunk {chunk_number} "
                     f"(of {EVTX_CHUNK_SIZE} bytes)")
    else:
        where = f"after chunk {chunk_number - 1}" if chunk_number else "right after its header"
        parts.append(f"the file ends at offset {size:#x}, {where}, but its header declares "
                     f"{declared.chunks if declared else '?'} chunk(s)")
    lost = 0
    last_known = last_read
    span = _chunk_span(chunk) if chunk else None
    if span is not None:
        first, last = span
        parts.append(f"{len(kept)} whole record(s) of that chunk read" + (f" ({kept[0]}-{kept[-1]})" if kept else ""))
        after = kept[-1] + 1 if kept else first
        if last >= after:
            lost += last - after + 1
            parts.append(f"records {after}-{last} of the chunk lost")
        last_known = max(last_known, last)
    elif chunk:
        parts.append("its chunk header is cut too: which records it held is unknown")
    if declared is not None and declared.next_record - 1 > last_known:
        beyond = declared.next_record - 1 - last_known
        lost += beyond
        parts.append(f"the file header counts records up to {declared.next_record - 1}: {beyond} more lost")
    if not lost:
        parts.append("records lost: none known")
    return BadRecord(label, f"chunk {chunk_number} (offset {offset:#x})", "truncated EVTX: " + "; ".join(parts)), lost


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
    file_size: int | None = None  # of the whole file, when a range of it is read
    if source.chunks is not None:
        data, file_size = _evtx_chunk_range(source, *source.chunks)
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
    last_number = 0  # the highest record number read
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
                number = record["event_record_id"]
                last_number = max(last_number, number)
                records.append(number)
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
    whole_size = file_size if file_size is not None else size
    if source.chunks is None or source.chunks[1] >= evtx_chunk_count(whole_size):
        _read_cut_end(source, path, data, chunk_base, whole_size, last_number, batch)
    yield batch


def _read_cut_end(source: Source, path: str | None, data: bytes | None, chunk_base: int, size: int,
                  last_number: int, batch: Batch) -> None:
    """A file cut short (a copy interrupted, a log being written): the parser reads whole chunks only and says
    nothing of the rest. Every whole record of a last, partial chunk is added to ``batch``, and the truncation is
    reported (offset, chunk, the records known lost) as a bad-record entry counting those records."""
    full, tail = divmod(size - EVTX_FILE_HEADER_SIZE, EVTX_CHUNK_SIZE)
    previous = b""  # the header of the last whole chunk (a range of a file may not hold its records)
    if data is not None:
        header = data[:EVTX_FILE_HEADER_SIZE]
        chunk = data[EVTX_FILE_HEADER_SIZE + (full - chunk_base) * EVTX_CHUNK_SIZE:][:tail] if tail else b""
        if full > chunk_base:
            previous = data[EVTX_FILE_HEADER_SIZE + (full - 1 - chunk_base) * EVTX_CHUNK_SIZE:][:24]
    else:
        with open(path or source.label, "rb") as handle:
            header = handle.read(EVTX_FILE_HEADER_SIZE)
            handle.seek(EVTX_FILE_HEADER_SIZE + full * EVTX_CHUNK_SIZE)
            chunk = handle.read(tail) if tail else b""
    declared = EvtxFileHeader.parse(header)
    if not tail and (declared is None or declared.chunks <= full):
        return  # ends where a chunk ends, and no chunk its header counts is missing
    if full > 0 and not previous:
        with source.opener() as handle:
            handle.seek(EVTX_FILE_HEADER_SIZE + (full - 1) * EVTX_CHUNK_SIZE)
            previous = handle.read(24)
    span = _chunk_span(previous)
    if span is not None:
        last_number = max(last_number, span[1])
    numbers: list[int] = []
    if tail:
        kept, _problems = _partial_chunk(header, chunk)  # the parser's complaints are about the cut itself
        for number, text in kept:
            if EVTX_MARKER in text:
                text = decode_evtx_json(text, checked=True)
            batch.records.append(number)
            batch.texts.append(text)
            numbers.append(number)
            last_number = max(last_number, number)
    bad, lost = _truncation(source.label, full, size, chunk, numbers, last_number, declared)
    batch.bad.append(bad)
    batch.lost_records += max(lost - 1, 0)  # the entry itself counts one


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
