"""EVTX records as RawEvents rows, built in Python for the fast path, exactly as ingestion's SQL builds them.

The ingestion writer turns the evtx parser's JSON into a RawEvents row with DuckDB: the System values become
columns and ``Fields`` is the event's field object as ``MAP(VARCHAR, VARCHAR)`` (``json_transform``; in a database
ingestion wrote, RawEvents is a view building that map from the JSON text kept in RawEventStore). Loading every record through DuckDB costs far
more than the rules need, so the fast path builds the same row here, from the same JSON text, and the hunt's
equality test (fast path vs rule-by-rule on DuckDB) holds it to the same values. The DuckDB spellings that matter
are reproduced: nested values become minified JSON text, booleans ``true``/``false``, numbers their JSON text.
``tests/hunt/test_events.py`` compares both row for row on real recordings, so a change in the writer shows.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, NamedTuple

_SUFFIX = re.compile(r"(Z| UTC|[+-]00:?00)$")
_FRACTION = re.compile(r"(\.\d{6})\d+$")


class EventRow(NamedTuple):
    """The RawEvents columns a rule can read, plus the time for the timeline (parsed only for hits)."""

    channel: str | None
    event_id: int | None
    provider: str | None
    computer: str | None
    system_time: str | None  # TimeCreated/@SystemTime as written; ``timestamp`` reads it as ingestion does
    fields: dict[str, str | None] | None  # EventData (or UserData's element) as a map; None when neither
    record_id: int | None = None  # System/EventRecordID (what Event Viewer shows), None when absent

    @property
    def timestamp(self) -> datetime | None:
        return parse_timestamp(self.system_time)


def duck_lower(text: str) -> str:
    """``lower()`` as DuckDB computes it: one code point to one (Python maps İ to two, and Σ by context)."""
    if text.isascii():
        return text.lower()
    return text.replace("İ", "i").replace("Σ", "σ").lower()


def json_text(value: Any) -> str | None:
    """A JSON value as DuckDB's ``json_transform(…, VARCHAR)`` renders it."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)  # what json.dumps writes for an int, without the encoder's overhead
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def as_field_map(value: Any) -> dict[str, str | None] | None:
    """A parsed field object (EventData, UserData's element) as RawEvents.Fields holds it; None if not an object."""
    if not isinstance(value, dict):
        return None
    # most values are strings already: skip the conversion call for them
    return {key: item if type(item) is str else json_text(item) for key, item in value.items()}


def _string(value: Any) -> str | None:
    return json_text(value)


def _event_id(value: Any) -> int | None:
    """``coalesce(TRY_CAST(json_extract_string(EventID,'$') AS INTEGER), … '$."#text"' …)``."""
    for candidate in (value, value.get("#text") if isinstance(value, dict) else None):
        if isinstance(candidate, bool) or candidate is None:
            continue
        if isinstance(candidate, int):
            return candidate if -2**31 <= candidate < 2**31 else None
        if isinstance(candidate, str):
            text = candidate.strip()
            if re.fullmatch(r"[+-]?\d+", text):
                number = int(text)
                return number if -2**31 <= number < 2**31 else None
    return None


def parse_timestamp(text: str | None) -> datetime | None:
    """A UTC timestamp as ingestion's ``timestamp_sql`` reads it (suffix dropped, 100 ns digits cut)."""
    if not text:
        return None
    cleaned = _FRACTION.sub(r"\1", _SUFFIX.sub("", text))
    try:
        return datetime.fromisoformat(cleaned)
    except ValueError:
        return None


def evtx_row(text: str) -> EventRow | None:
    """The RawEvents row of one evtx JSON record (None when it is not the evtx shape)."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    event = document.get("Event") if isinstance(document, dict) else None
    if not isinstance(event, dict):
        return None
    system = event.get("System")
    if not isinstance(system, dict):
        system = {}
    channel = _string(system.get("Channel"))
    computer = _string(system.get("Computer"))
    provider_node = system.get("Provider")
    provider = None
    if isinstance(provider_node, dict):
        attributes = provider_node.get("#attributes")
        if isinstance(attributes, dict):
            provider = _string(attributes.get("Name"))
    created = system.get("TimeCreated")
    stamp = None
    if isinstance(created, dict) and isinstance(created.get("#attributes"), dict):
        stamp = _string(created["#attributes"].get("SystemTime"))
    event_id = _event_id(system.get("EventID"))
    # coalesce(EventData as a map, the first element of UserData as a map)
    fields = as_field_map(event.get("EventData"))
    if fields is None:
        user_data = event.get("UserData")
        if isinstance(user_data, dict) and user_data:
            fields = as_field_map(next(iter(user_data.values())))
    record_id = _record_number(system.get("EventRecordID"))
    return EventRow(channel, event_id, provider, computer, stamp, fields, record_id)


def _record_number(value: Any) -> int | None:
    """``TRY_CAST(json_extract_string(…EventRecordID) AS BIGINT)``: a JSON integer or digits, in range."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        value = int(value)
    if isinstance(value, int):
        return value if -2**63 <= value < 2**63 else None
    return None
