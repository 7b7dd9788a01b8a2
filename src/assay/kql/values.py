"""Kusto literal values: datetime and timespan text forms, shared by the parser and conversion functions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_TIMESPAN_CLOCK = re.compile(r"^(-)?(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$")
_TIMESPAN_UNIT = re.compile(r"^(-)?(\d+(?:\.\d+)?)\s*([a-z]+)$", re.IGNORECASE)


def parse_datetime_literal(raw: str) -> datetime | None:
    """ISO 8601 and the RFC 822/850-ish forms Kusto accepts; result is naive UTC (DuckDB TIMESTAMP).
    None when the text is not a datetime, or is out of range."""
    try:
        return _parse_datetime(raw)
    except (OverflowError, ValueError):
        return None


def _parse_datetime(raw: str) -> datetime | None:
    text = raw.strip().strip("'\"")
    if not text:
        return None
    candidate = text.replace("Z", "+00:00").replace("z", "+00:00")
    if "T" not in candidate and " " in candidate and candidate.count(":") >= 1:
        candidate = candidate.replace(" ", "T", 1)
    # Python accepts at most 6 fraction digits; Kusto allows 7 (ticks)
    candidate = re.sub(r"(\.\d{6})\d+", r"\1", candidate)
    try:
        value = datetime.fromisoformat(candidate)
    except ValueError:
        for pattern in ("%a, %d %b %Y %H:%M:%S %Z", "%d %b %Y %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d",
                        "%m/%d/%Y %H:%M:%S", "%m/%d/%Y"):
            try:
                value = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
        else:
            return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def parse_timespan_literal(raw: str) -> timedelta | None:
    """``1.02:03:04.5``, ``02:03``, ``2d``, ``1.5h``, ``100ms`` → timedelta; None when invalid or out of range."""
    try:
        return _parse_timespan(raw)
    except (OverflowError, ValueError):
        return None


def _parse_timespan(raw: str) -> timedelta | None:
    from assay.kql.lexer import TIMESPAN_UNITS

    text = raw.strip().strip("'\"")
    clock = _TIMESPAN_CLOCK.match(text)
    if clock:
        sign, days, hours, minutes, seconds, fraction = clock.groups()
        value = timedelta(days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0),
                          microseconds=int((fraction or "0").ljust(7, "0")[:7]) / 10)
        return -value if sign else value
    unit = _TIMESPAN_UNIT.match(text)
    if unit and unit.group(3).lower() in TIMESPAN_UNITS:
        micros = float(unit.group(2)) * TIMESPAN_UNITS[unit.group(3).lower()]
        value = timedelta(microseconds=micros)
        return -value if unit.group(1) else value
    if re.fullmatch(r"-?\d+", text):  # a bare number of days
        return timedelta(days=int(text))
    return None
