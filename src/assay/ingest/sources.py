"""Finding and recognising telemetry sources: paths, folders, globs and zip members, with content-based detection.

A :class:`Source` is one readable stream (a file, or a member of a zip) and the format its first bytes show.
Detection looks at content, never at the extension alone: an EVTX header, a zip header, JSON (lines or array, and
which shape: evtx JSON, Winlogbeat/ECS, OTRF, flat Sigma-style, Defender export) or a Defender CSV header.
"""

from __future__ import annotations

import dataclasses
import glob
import io
import json
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from assay.errors import IngestError, SourceSpan

EVTX_MAGIC = b"ElfFile\x00"
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
#: Extensions considered when walking a folder (detection still reads the content).
CANDIDATE_SUFFIXES = {".evtx", ".json", ".jsonl", ".ndjson", ".csv", ".zip", ".log", ".txt"}
HEAD_BYTES = 64 * 1024

# Formats a reader knows; the value of RawEvents.SourceFormat.
EVTX = "evtx"
EVTX_JSON = "evtx-json"
ECS = "ecs"
OTRF = "otrf"
FLAT = "flat"
DEFENDER_JSON = "defender-json"
DEFENDER_CSV = "defender-csv"
JSON_FORMATS = {EVTX_JSON, ECS, OTRF, FLAT, DEFENDER_JSON}

DEFENDER_TABLES = ("DeviceProcessEvents", "DeviceFileEvents", "DeviceRegistryEvents", "DeviceNetworkEvents",
                   "DeviceImageLoadEvents", "DeviceLogonEvents", "DeviceEvents", "IdentityLogonEvents")


@dataclass(frozen=True, slots=True)
class Source:
    """One stream of telemetry: where it is (label, for evidence), how to open it, and its detected format."""

    label: str  # "path" or "archive.zip!member.json"
    opener: Callable[[], IO[bytes]]
    format: str
    #: For JSON: True when the document is one array (``[...]``), False for JSON lines.
    json_array: bool = False
    #: For Defender exports: the Device* table the rows belong to.
    defender_table: str | None = None
    #: Size in bytes when known (a file; None for a zip member): work is split by it.
    size: int | None = None
    #: For part of a large EVTX file: the chunks [first, stop) it reads (both workers share one big log).
    chunks: tuple[int, int] | None = None


@dataclass(frozen=True)
class Skipped:
    """A file or zip member that was not read, and why (unknown format, unreadable zip…)."""

    label: str
    reason: str
    is_damage: bool  # True when it looked like telemetry but was damaged (counted as a bad record)


def _path_order(text: str) -> list[str]:
    """The order ``Path`` objects sort in (by parts), without building one per file."""
    return text.split(os.sep)


def _files_under(folder: str, skipped: list[Skipped] | None = None) -> list[tuple[str, bool]]:
    """Candidate files under a folder (path, is a symbolic link), sorted as paths sort. A case can hold hundreds of
    thousands of files: ``os.scandir`` knows types from the directory entries, without a ``stat`` per file, and
    plain strings cost a fraction of ``Path`` objects (whose construction and comparison dominated the walk).

    A link to a folder is walked (triage copies often link a host's logs into a case), unless it leads to a folder
    already walked: a loop, or the same logs twice. What is not walked (such a link, a folder that cannot be
    listed) is added to ``skipped`` with the reason."""
    found: list[tuple[str, bool]] = []
    pending = [folder]
    suffixes = CANDIDATE_SUFFIXES
    roots = [os.path.realpath(folder)]  # the real folders the walk reads: the folder, and linked folders followed
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as error:
            if skipped is not None:
                skipped.append(Skipped(current, f"folder cannot be listed: {error.strerror or error}", False))
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            elif entry.is_symlink() and entry.is_dir():
                target = os.path.realpath(entry.path)
                if _within(os.path.realpath(current), target) or any(
                        root != target and _within(root, target) for root in roots):
                    reason = f"link to {target}, a folder holding this one (a loop): not followed"
                elif any(_within(target, root) for root in roots):
                    reason = f"link to {target}, a folder read already: not followed again"
                else:
                    roots.append(target)
                    pending.append(entry.path)
                    continue
                if skipped is not None:
                    skipped.append(Skipped(entry.path, reason, False))
            elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in suffixes:
                found.append((entry.path, entry.is_symlink()))
            elif skipped is not None and entry.is_symlink() and not os.path.exists(entry.path):
                skipped.append(Skipped(entry.path, "broken link: its target does not exist", False))
    found.sort(key=lambda item: _path_order(item[0]))
    return found


def _within(path: str, folder: str) -> bool:
    """Whether real path ``path`` is ``folder`` or lies inside it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def expand_paths(paths: list[str | Path], skipped: list[Skipped] | None = None
                 ) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """Files named explicitly, and files found by walking folders or globs (detection decides for those), each as
    (path, is a symbolic link); what a walk did not enter goes to ``skipped``."""
    explicit: list[tuple[str, bool]] = []
    found: list[tuple[str, bool]] = []
    for raw in paths:
        text = str(raw)
        if os.path.isfile(text):
            explicit.append((str(Path(text)), os.path.islink(text)))
        elif os.path.isdir(text):
            found.extend(_files_under(str(Path(text)), skipped))
        elif any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(text, recursive=True), key=lambda m: Path(m).parts)
            if not matches:
                raise IngestError(f"no file matches {text!r}", SourceSpan.of_file(text),
                                  hint="check the pattern; quote it so the shell does not expand it")
            for match in matches:
                if os.path.isfile(match):
                    explicit.append((str(Path(match)), os.path.islink(match)))
                elif os.path.isdir(match):
                    found.extend(_files_under(str(Path(match)), skipped))
        else:
            raise IngestError(f"no such file or folder: {text}", SourceSpan.of_file(text),
                              hint="check the path")
    return explicit, found


def _defender_table_for(keys: list[str], stem: str) -> str | None:
    """The Device* table a Defender export belongs to: by file name when it says, else by its columns."""
    key_set = set(keys)
    for table in DEFENDER_TABLES:
        if stem.lower().startswith(table.lower()):
            return table
    if not ({"Timestamp", "DeviceName", "ActionType"} <= key_set):
        return None
    if "LogonType" in key_set and "Protocol" in key_set:
        return "DeviceLogonEvents"
    if "RegistryKey" in key_set and "RegistryValueType" not in key_set and "ProcessCommandLine" in key_set:
        # DeviceEvents carries registry, network and process columns at once (DeviceRegistryEvents has the type).
        return "DeviceEvents"
    if "RegistryKey" in key_set:
        return "DeviceRegistryEvents"
    if "RemoteIP" in key_set or "RemotePort" in key_set:
        return "DeviceNetworkEvents"
    if "ProcessCommandLine" in key_set:
        return "DeviceProcessEvents"
    if "FileOriginUrl" in key_set or "PreviousFileName" in key_set:
        return "DeviceFileEvents"
    if "FileName" in key_set and "InitiatingProcessFileName" in key_set:
        # File and image-load exports share columns; the action types say which.
        return "DeviceFileEvents"
    return None


def classify_json_object(obj: object, stem: str) -> tuple[str, str | None] | None:
    """The JSON shape of one record: (format, defender table) or None when it is no shape Assay knows."""
    if not isinstance(obj, dict):
        return None
    event = obj.get("Event")
    if isinstance(event, dict) and isinstance(event.get("System"), dict):
        return EVTX_JSON, None
    if isinstance(obj.get("winlog"), dict):
        return ECS, None
    defender = _defender_table_for(list(obj), stem)
    if defender is not None:
        return DEFENDER_JSON, defender
    if "EventID" in obj or "EventId" in obj or "event_id" in obj:
        # OTRF exports carry the collector's fields (Hostname, SourceName, @timestamp); flat Sigma-style JSON
        # carries just the event fields. Both load the same way; the name only tells the user what was seen.
        if "Hostname" in obj or "SourceName" in obj or "@timestamp" in obj:
            return OTRF, None
        return FLAT, None
    return None


def _first_json_value(head: bytes) -> tuple[object, bool] | None:
    """The first record in a JSON document head and whether the document is an array; None if not JSON."""
    text = head.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if not text:
        return None
    decoder = json.JSONDecoder()
    if text.startswith("["):
        body = text[1:].lstrip()
        try:
            value, _ = decoder.raw_decode(body)
        except json.JSONDecodeError:
            return None
        return value, True
    if text.startswith("{"):
        # One pretty-printed object (spanning lines, nothing after it) is a document, read whole like an array.
        try:
            whole, end = decoder.raw_decode(text)
            if isinstance(whole, dict) and not text[end:].strip() and "\n" in text[:end]:
                return whole, True
        except json.JSONDecodeError:
            pass
        # JSON lines: try the first few lines, a damaged first line must not hide a good file.
        for line in text.splitlines()[:20]:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                value, _ = decoder.raw_decode(line)
            except json.JSONDecodeError:
                continue
            return value, False
    return None


def _classify_csv(head: bytes, stem: str) -> str | None:
    first_line = head.decode("utf-8-sig", "replace").splitlines()[0] if head else ""
    if "," not in first_line and "\t" not in first_line:
        return None
    import csv

    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    header = next(csv.reader([first_line], delimiter=delimiter), [])
    return _defender_table_for([h.strip() for h in header], stem)


def detect(label: str, opener: Callable[[], IO[bytes]], stem: str) -> Source | Skipped | list[Source | Skipped]:
    """Detect one stream's format from its first bytes (zips expand into their members)."""
    with opener() as handle:
        head = handle.read(len(EVTX_MAGIC))
        if head != EVTX_MAGIC:  # an EVTX file is known by its magic: no need to read 64 KB of it
            head += handle.read(HEAD_BYTES - len(head))
    if head.startswith(EVTX_MAGIC):
        return Source(label, opener, EVTX)
    if not head:
        # A zero-length .evtx is a damaged log (a crash, a failed copy), not an unrelated file.
        return Skipped(label, "empty file", is_damage=label.lower().endswith(".evtx"))
    if head.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)):
        return _zip_members(label, opener)
    first = _first_json_value(head)
    if first is not None:
        value, is_array = first
        # The advanced-hunting API answers {"Schema": [...], "Results": [...]}: the rows are the records.
        if isinstance(value, dict) and isinstance(value.get("Results"), list) and value["Results"]:
            value, is_array = value["Results"][0], True
        shape = classify_json_object(value, stem)
        if shape is not None:
            return Source(label, opener, shape[0], json_array=is_array, defender_table=shape[1])
    text_head = head.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if text_head.startswith("{") and '"Results"' in text_head:
        # A pretty-printed advanced-hunting API response too large to parse from its head: judge by its keys.
        keys = re.findall(r'"([A-Za-z][A-Za-z0-9_]*)"\s*:', text_head)
        table = _defender_table_for(keys, stem)
        if table is not None:
            return Source(label, opener, DEFENDER_JSON, json_array=True, defender_table=table)
    if first is not None:
        return Skipped(label, "JSON, but not a known event shape (evtx JSON, Winlogbeat/ECS, OTRF, flat, Defender)",
                       is_damage=False)
    table = _classify_csv(head, stem)
    if table is not None:
        return Source(label, opener, DEFENDER_CSV, defender_table=table)
    return Skipped(label, "unknown format (not EVTX, JSON events, a Defender CSV export or a zip of them)",
                   is_damage=False)


def _zip_members(label: str, opener: Callable[[], IO[bytes]]) -> list[Source | Skipped]:
    results: list[Source | Skipped] = []
    try:
        with opener() as handle:
            data = handle.read()
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        return [Skipped(label, f"unreadable zip: {error}", is_damage=True)]

    def member_opener(name: str) -> Callable[[], IO[bytes]]:
        def open_member() -> IO[bytes]:
            # Each open re-reads the member from the in-memory archive, so sources stay independent.
            return zipfile.ZipFile(io.BytesIO(data)).open(name)

        return open_member

    for info in members:
        member_label = f"{label}!{info.filename}"
        if info.filename.startswith("__MACOSX/"):
            continue
        try:
            found = detect(member_label, member_opener(info.filename), Path(info.filename).stem)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            results.append(Skipped(member_label, f"damaged zip member: {error}", is_damage=True))
            continue
        if isinstance(found, list):
            results.extend(found)
        elif isinstance(found, Skipped):
            # Inside a zip a non-telemetry member is junk next to the data: counted, so the user hears of it.
            results.append(Skipped(found.label, found.reason, is_damage=True))
        else:
            results.append(found)
    return results


def _real_path(text: str, is_link: bool, real_folders: dict[str, str]) -> str:
    """``os.path.realpath`` of a file, resolving each folder once (a file that is not itself a link lies in the
    real folder of its folder)."""
    if is_link:
        return os.path.realpath(text)
    folder, sep, name = text.rpartition(os.sep)
    if not folder:
        folder = os.sep if sep else os.curdir  # "/x.evtx" lies in the root, "x.evtx" in the current folder
    real = real_folders.get(folder)
    if real is None:
        real = os.path.realpath(folder)  # the raw folder text is the key: realpath resolves it
        real_folders[folder] = real
    return os.path.join(real, name)


def _evtx_head(text: str) -> tuple[bool, int]:
    """(starts with the EVTX magic, size) from raw system calls: most files of a case are EVTX, and a Python file
    object per file cost ~25 µs; the magic alone decides them."""
    descriptor = os.open(text, os.O_RDONLY)
    try:
        return os.read(descriptor, len(EVTX_MAGIC)) == EVTX_MAGIC, os.fstat(descriptor).st_size
    finally:
        os.close(descriptor)


class FileOpener:
    """Opens one file for reading. A plain object rather than a closure: a source of a file can be pickled (hunt
    workers receive their sources with their work) and weighs little (a case can hold 300k files)."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> IO[bytes]:
        return open(self.path, "rb")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileOpener) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


def discover(paths: list[str | Path]) -> tuple[list[Source], list[Skipped]]:
    """All sources under ``paths``; an explicitly named file of unknown format is an :class:`IngestError`."""
    skipped: list[Skipped] = []
    explicit, found = expand_paths(paths, skipped)
    sources: list[Source] = []
    seen: set[str] = set()
    real_folders: dict[str, str] = {}
    for (text, is_link), is_explicit in [(p, True) for p in explicit] + [(p, False) for p in found]:
        resolved = _real_path(text, is_link, real_folders)
        if resolved in seen:
            continue
        seen.add(resolved)
        opener = FileOpener(text)
        try:
            is_evtx, size = _evtx_head(text)
            if is_evtx:
                sources.append(Source(text, opener, EVTX, size=size))
                continue
            result = detect(text, opener, os.path.splitext(os.path.basename(text))[0])
        except OSError as error:
            if is_explicit:
                raise IngestError(f"cannot read {text}: {error}", SourceSpan.of_file(text),
                                  hint="check the file's permissions") from error
            # a file found in a folder: the others are still read, this one is listed as not read
            skipped.append(Skipped(text, f"cannot be read: {error.strerror or error}", False))
            continue
        items = result if isinstance(result, list) else [result]
        for item in items:
            if isinstance(item, Source):
                sources.append(item if item.label != text else dataclasses.replace(item, size=size))
            elif is_explicit and not item.is_damage and item.label == text and item.reason != "empty file":
                raise IngestError(f"{item.reason}: {text}", SourceSpan.of_file(text),
                                  hint="Assay reads EVTX, JSON lines/arrays of Windows events, Defender XDR "
                                       "CSV/JSON exports and zips of these")
            else:
                skipped.append(item)
    return sources, skipped


__all__ = ["Skipped", "Source", "discover"]
