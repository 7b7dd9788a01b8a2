"""Hits as columns: the compact form the fast path's workers return and the hit store spills.

A worker of the fast path can produce hundreds of thousands of hits per million events (the attack corpus hits on
~18% of its records). Python :class:`~assay.hunt.timeline.Hit` objects cost ~1 KB each and are slow to pickle, so
workers hand back Arrow tables in :data:`HIT_ROW_SCHEMA` instead: one row per (target, event), rule metadata left
out (``target`` indexes the plan's targets; the reader joins title, level, techniques and route back).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import pyarrow as pa

from assay.hunt.timeline import Hit

#: One hit per row. ``fields`` is a JSON object of the hit's key fields, in display order.
HIT_ROW_SCHEMA = pa.schema([
    pa.field("target", pa.int32(), nullable=False),
    pa.field("timestamp", pa.timestamp("us")),
    pa.field("host", pa.string()),
    pa.field("channel", pa.string()),
    pa.field("event_id", pa.int32()),
    pa.field("fields", pa.string()),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_record", pa.int64()),
])


class RefLike(Protocol):
    """What hit rows need of a target reference (:class:`assay.hunt.evaluate.TargetRef` is one)."""

    @property
    def rule(self) -> Any: ...

    @property
    def target(self) -> Any: ...


def empty_hit_rows() -> pa.Table:
    return HIT_ROW_SCHEMA.empty_table()


def hits_from_rows(table: pa.Table, refs: Sequence[RefLike]) -> Iterator[Hit]:
    """:class:`Hit` objects back from hit rows (``refs`` are the targets ``target`` indexes)."""
    for row in table.to_pylist():
        ref = refs[row["target"]]
        rule, target = ref.rule, ref.target
        fields = tuple((str(k), str(v)) for k, v in json.loads(row["fields"]).items()) if row["fields"] else ()
        yield Hit(timestamp=row["timestamp"], host=row["host"], rule_title=rule.title, rule_id=rule.id,
                  level=rule.level, techniques=tuple(rule.techniques), channel=row["channel"],
                  event_id=row["event_id"], fields=fields, source_file=row["source_file"],
                  source_record=row["source_record"], route=target.route)
