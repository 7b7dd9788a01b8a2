"""Event data as Event Viewer shows it: unnamed ``<Data>`` values decoded to text, one meaning on every path.

Classic Windows events (Application providers such as MsiInstaller, Windows PowerShell 400/403/600/800, many
System events) carry ``EventData`` as *unnamed* ``<Data>`` elements. The evtx parser renders an element's text as
``{"#text": "value"}``, or ``{"#text": ["v1", "v2", …]}`` when the element repeats, so the field ``Data`` would
otherwise reach a rule as that object's JSON text: backslashes doubled, a newline as the two characters ``\\n``.

Ingestion rewrites such a value to its decoded text before anything reads it (the hunt's fast path, the reference
path, Spark, ``assay ingest`` and ``assay sigma eval`` all see the same text):

- one unnamed value: the value itself, exactly as written (``C:\\Windows\\x.msi``, real newlines and tabs);
- several: the values in document order joined by one newline (``UNNAMED_DATA_SEPARATOR``), an empty element as
  the empty string, so ``Data|contains: X`` holds when ``X`` occurs in one of the values (a pattern without a
  newline cannot span two), ``Data: X`` (equality) compares the whole joined text, and a regex sees the values
  one per line. This is the order and the line-per-value layout of Event Viewer's "Friendly View".

See docs/hunting.md for the user-facing description.
"""

from __future__ import annotations

import json
from typing import Any

#: Between two unnamed ``<Data>`` values of one event.
UNNAMED_DATA_SEPARATOR = "\n"
#: The evtx parser's key for an XML element's text content, and for its attributes.
TEXT_KEY = "#text"
ATTRIBUTES_KEY = "#attributes"
#: Marks a record with unnamed ``<Data>``: JSON spells ``"Data":{"#text"`` only as structure (inside a JSON string
#: every quote is escaped). The evtx parser writes minified JSON; JSON lines exported by other tools may have a space.
#: (A long marker: the substring search skips further, ~0.6 µs per 1.6 KB record against ~20 µs to parse it.)
EVTX_MARKER = 'Data":{"#text'
_ELEMENT_MARKERS = (EVTX_MARKER, 'Data": {"#text')


def element_text(value: Any) -> tuple[bool, str | None]:
    """``(True, text)`` when ``value`` is an XML element as the evtx parser renders it (an object with ``#text``
    and at most ``#attributes`` besides); ``(False, None)`` for anything else."""
    if not isinstance(value, dict) or TEXT_KEY not in value:
        return False, None
    if any(key not in (TEXT_KEY, ATTRIBUTES_KEY) for key in value):
        return False, None
    text = value[TEXT_KEY]
    if isinstance(text, list):
        return True, UNNAMED_DATA_SEPARATOR.join(_scalar_text(item) for item in text)
    return True, _scalar_text(text) if text is not None else None


def _scalar_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def decode_field_object(fields: Any) -> bool:
    """Replace, in place, every member of a field object (EventData) that is an element with its text.
    True when something changed."""
    if not isinstance(fields, dict):
        return False
    changed = False
    for key, value in fields.items():
        is_element, text = element_text(value)
        if is_element:
            fields[key] = text
            changed = True
    return changed


def may_hold_elements(text: str) -> bool:
    """A cheap test on a record's JSON text: False when it has no unnamed ``<Data>`` (most records)."""
    return any(marker in text for marker in _ELEMENT_MARKERS)


def decode_evtx_json(text: str, *, checked: bool = False) -> str:
    """An evtx-shaped JSON record with its EventData elements decoded to text (the same text when none is).
    ``checked``: the caller already found a marker (:func:`may_hold_elements`)."""
    if not checked and not may_hold_elements(text):
        return text
    try:
        document = json.loads(text)
    except ValueError:
        return text  # reported as a bad record by the writer, as before
    event = document.get("Event") if isinstance(document, dict) else None
    if not isinstance(event, dict) or not decode_field_object(event.get("EventData")):
        return text
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
