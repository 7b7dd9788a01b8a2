"""The hunt's output: a timeline of rule hits sorted by time, a summary, and its table / CSV / JSON-lines forms.

A :class:`Hit` is one rule matching one event, with the evidence a reader needs to go back to the log: host,
channel, event id, the key fields of the event, and the source file and record. Every engine and every path
(fast, rule-by-rule, Spark) produces the same ``Hit`` values, so their timelines can be compared for equality.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

#: Event fields shown in a hit when present, after the fields the rule itself reads (Sysmon / Security names).
KEY_FIELDS = (
    "Image", "CommandLine", "ParentImage", "ParentCommandLine", "OriginalFileName", "TargetFilename",
    "TargetObject", "Details", "ImageLoaded", "SourceImage", "TargetImage", "QueryName", "DestinationIp",
    "DestinationHostname", "DestinationPort", "PipeName", "ScriptBlockText", "NewProcessName", "ProcessName",
    "ServiceName", "ServiceFileName", "ImagePath", "TargetUserName", "SubjectUserName", "User", "ObjectName",
    "Payload", "ContextInfo", "Data",
)
#: How many key fields a hit keeps (the rule's own fields first), and how long a value may be.
MAX_KEY_FIELDS = 6
MAX_FIELD_CHARS = 2000
SYSTEM_FIELD_NAMES = frozenset({"EventID", "Channel", "Computer", "Provider_Name"})

LEVEL_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "informational": 4}

TIMELINE_COLUMNS = ("timestamp", "host", "rule", "level", "techniques", "channel", "event_id", "fields",
                    "source_file", "source_record", "rule_id", "route")


def key_fields(fields: Mapping[str, Any] | None, rule_fields: Iterable[str]) -> dict[str, str]:
    """The event's most telling fields: those the rule reads, then common ones; empty values left out."""
    if not fields:
        return {}
    chosen: dict[str, str] = {}
    for name in [*rule_fields, *KEY_FIELDS]:
        if name in chosen or name in SYSTEM_FIELD_NAMES:
            continue
        value = fields.get(name)
        if value is None or value == "" or value == "-":
            continue
        text = str(value)
        chosen[name] = text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + "…"
        if len(chosen) >= MAX_KEY_FIELDS:
            break
    return chosen


@dataclass(frozen=True, order=True)
class Hit:
    """One rule matching one event. Ordered by time, then host, rule, source: the timeline order."""

    sort_key: tuple[Any, ...] = field(init=False, repr=False, compare=True)
    timestamp: datetime | None = field(compare=False)
    host: str | None = field(compare=False)
    rule_title: str = field(compare=False)
    rule_id: str = field(compare=False)
    level: str = field(compare=False)
    techniques: tuple[str, ...] = field(compare=False)
    channel: str | None = field(compare=False)
    event_id: int | None = field(compare=False)
    fields: tuple[tuple[str, str], ...] = field(compare=False)
    source_file: str = field(compare=False)
    source_record: int | None = field(compare=False)
    route: str = field(compare=False)

    def __post_init__(self) -> None:
        # None timestamps sort last; the rest of the key makes the order total and engine independent.
        stamp = (0, self.timestamp) if self.timestamp is not None else (1, datetime.min)
        object.__setattr__(self, "sort_key", (stamp, self.host or "", self.rule_title, self.rule_id,
                                              self.source_file, self.source_record or 0, self.route))

    @property
    def identity(self) -> tuple[str, str, int | None]:
        """What makes a hit unique: the rule and the event (file and record)."""
        return (self.rule_id or self.rule_title, self.source_file, self.source_record)

    def as_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "host": self.host, "rule": self.rule_title, "level": self.level,
            "techniques": list(self.techniques), "channel": self.channel, "event_id": self.event_id,
            "fields": dict(self.fields), "source_file": self.source_file, "source_record": self.source_record,
            "rule_id": self.rule_id, "route": self.route,
        }


@dataclass
class Summary:
    """Hits counted by rule, level and technique, plus how many events and rules took part."""

    events: int = 0
    hits: int = 0
    by_rule: list[tuple[str, str, int]] = field(default_factory=list)  # (title, level, hits)
    by_level: dict[str, int] = field(default_factory=dict)
    by_technique: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"events": self.events, "hits": self.hits,
                "by_rule": [{"rule": t, "level": lv, "hits": n} for t, lv, n in self.by_rule],
                "by_level": self.by_level, "by_technique": self.by_technique}


def summarize(hits: Iterable[Hit], events: int) -> Summary:
    hit_list = list(hits)
    rules: Counter[tuple[str, str]] = Counter((h.rule_title, h.level) for h in hit_list)
    levels: Counter[str] = Counter(h.level for h in hit_list)
    techniques: Counter[str] = Counter(t for h in hit_list for t in h.techniques)
    by_rule = sorted(((title, level, count) for (title, level), count in rules.items()),
                     key=lambda item: (LEVEL_ORDER.get(item[1], 9), -item[2], item[0]))
    return Summary(events=events, hits=len(hit_list), by_rule=by_rule,
                   by_level=dict(sorted(levels.items(), key=lambda kv: LEVEL_ORDER.get(kv[0], 9))),
                   by_technique=dict(sorted(techniques.items(), key=lambda kv: (-kv[1], kv[0]))))


def dedupe_sorted(hits: Iterable[Hit]) -> list[Hit]:
    """One hit per (rule, event) — a rule reaching an event through two routes counts once — in timeline order."""
    best: dict[tuple[str, str, int | None], Hit] = {}
    for hit in hits:
        current = best.get(hit.identity)
        if current is None or hit.sort_key < current.sort_key:
            best[hit.identity] = hit
    return sorted(best.values())


def _cell(hit: Hit, column: str) -> Any:
    if column == "timestamp":
        return hit.timestamp.isoformat(sep=" ") if hit.timestamp else ""
    if column == "rule":
        return hit.rule_title
    if column == "techniques":
        return ",".join(hit.techniques)
    if column == "fields":
        return " ".join(f"{k}={v}" for k, v in hit.fields)
    return getattr(hit, column)


def iter_timeline_rows(hits: Iterable[Hit], columns: Iterable[str] = TIMELINE_COLUMNS) -> Iterator[list[Any]]:
    """One row of cells per hit, lazily (a streamed timeline never sits in memory as rows)."""
    cols = list(columns)
    for hit in hits:
        yield [_cell(hit, c) for c in cols]


def timeline_rows(hits: Iterable[Hit], columns: Iterable[str] = TIMELINE_COLUMNS) -> list[list[Any]]:
    return list(iter_timeline_rows(hits, columns))


def _csv_row(hit: Hit) -> list[Any]:
    """A hit as CSV cells in ``TIMELINE_COLUMNS`` order, None as '' (the cells of ``_cell``, without dispatch)."""
    return [hit.timestamp.isoformat(sep=" ") if hit.timestamp else "", _blank(hit.host), hit.rule_title,
            hit.level, ",".join(hit.techniques), _blank(hit.channel), _blank(hit.event_id),
            " ".join(f"{k}={v}" for k, v in hit.fields), hit.source_file, _blank(hit.source_record),
            hit.rule_id, hit.route]


def _blank(value: Any) -> Any:
    return "" if value is None else value


def write_csv(hits: Iterable[Hit], out: TextIO) -> None:
    """The timeline as CSV with a header row, streamed hit by hit."""
    writer = csv.writer(out)
    writer.writerow(TIMELINE_COLUMNS)
    writer.writerows(_csv_row(hit) for hit in hits)


def write_jsonl(hits: Iterable[Hit], out: TextIO) -> None:
    for hit in hits:
        out.write(json.dumps(hit.as_dict(), ensure_ascii=False) + "\n")


def render_csv(hits: Iterable[Hit]) -> str:
    buffer = io.StringIO()
    write_csv(hits, buffer)
    return buffer.getvalue()
