"""Compare engine values with the text of a documented Kusto output cell.

Docs show values as Kusto's UI renders them: datetimes as ``2024-01-01T00:00:00Z`` (or with 7 fraction digits),
timespans as ``1.02:03:04``, dynamic values as JSON, numbers sometimes with thousands separators. Comparison is
by meaning (a datetime equals a datetime, a number a number within 1e-6 relative), never by re-formatting rules
tuned to pass.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from typing import Any

from assay.kql.values import parse_datetime_literal, parse_timespan_literal


def _number(text: str) -> float | None:
    cleaned = text.replace(",", "").strip()
    if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", cleaned):
        return float(cleaned)
    if cleaned.lower() in ("nan", "inf", "-inf", "+inf"):
        return float(cleaned.lower().replace("+", ""))
    return None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _INVALID


_INVALID = object()


def normalize_json(value: Any) -> Any:
    """Numbers compare as floats inside JSON (Kusto prints 1.0 as 1)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return round(float(value), 6)
    if isinstance(value, list):
        return [normalize_json(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize_json(v) for k, v in value.items()}
    return value


def clean_cell(cell: str) -> str:
    """Markdown table cell → the value text: code ticks and bold removed, <br> line breaks restored."""
    text = cell.strip()
    if text.startswith("`") and text.endswith("`") and len(text) > 1:
        text = text[1:-1]
    text = re.sub(r"<br\s*/?>", "\n", text)
    return text.replace("∞", "inf").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def cell_matches(value: Any, kusto_type: str, cell: str) -> bool:
    text = clean_cell(cell)
    if text.startswith("**") and text.endswith("**"):
        text = text[2:-2]
    if value is None:
        return text in ("", "null", "(null)")
    if isinstance(value, bool):
        return text.lower() == str(value).lower() or text == ("1" if value else "0")
    if isinstance(value, datetime):
        parsed = parse_datetime_literal(text)
        return parsed is not None and abs((parsed - value).total_seconds()) < 1e-3
    if isinstance(value, timedelta):
        parsed_span = parse_timespan_literal(text)
        return parsed_span is not None and abs((parsed_span - value).total_seconds()) < 1e-3
    if isinstance(value, int | float):
        number = _number(text)
        if number is None:
            return False
        if math.isnan(number) or math.isnan(float(value)):
            return math.isnan(number) and math.isnan(float(value))
        return math.isclose(float(value), number, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(value, dict | list) or kusto_type == "dynamic":
        parsed = _json(text)
        if parsed is _INVALID:
            return isinstance(value, str) and value == text
        if isinstance(value, list) and isinstance(parsed, list) and sorted(map(json.dumps, normalize_json(parsed))) \
                == sorted(map(json.dumps, normalize_json(value))) and kusto_type == "dynamic-set":
            return True
        return bool(normalize_json(parsed) == normalize_json(value))
    return str(value) == text or str(value).strip() == text.replace("<br>", "\n").strip()
