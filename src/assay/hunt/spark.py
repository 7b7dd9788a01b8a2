"""Hunting on Apache Spark: ingest to Parquet, then run every target's compiled SQL (Spark dialect) there.

The logs are ingested once (``assay ingest --store parquet`` does the same) and the canonical tables are
registered as views; targets run in groups, each group as one scan that evaluates its targets' conditions per
row and returns (event, target) pairs, never whole rows. The evidence for the hits comes from the same Parquet
data, so the timeline equals the DuckDB one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assay.engine import DuckDBEngine
from assay.engine.spark_engine import SparkEngine
from assay.hunt.evaluate import EVIDENCE_COLUMNS, TargetRef, make_hit
from assay.hunt.timeline import Hit
from assay.ingest.readers import BadRecord
from assay.ingest.sources import Skipped, Source
from assay.schema import RAW_EVENTS, canonical_tables

if TYPE_CHECKING:
    from assay.hunt.run import HuntProgress, HuntResult

#: Targets evaluated per Spark scan (keeps generated code under the JVM's method size limits).
SPARK_TARGETS_PER_SCAN = 40


def _scan_sql(group: Sequence[TargetRef], table: str) -> str:
    cases = ", ".join(f"CASE WHEN ({ref.target.where_spark}) THEN {ref.number} END" for ref in group)
    source = f"`{table}`"
    restriction = ""
    if table != RAW_EVENTS:
        restriction = (f" WHERE AssayEventId IN (SELECT AssayEventId FROM `{RAW_EVENTS}` "
                       "WHERE SourceFormat LIKE 'defender-%')")
    return (f"SELECT AssayEventId, Target FROM (SELECT AssayEventId, "
            f"explode(filter(array({cases}), x -> x IS NOT NULL)) AS Target FROM {source}{restriction})")


def spark_matches(engine: SparkEngine, refs: Sequence[TargetRef]) -> list[tuple[int, int]]:
    """(target number, AssayEventId) for every target, evaluated on the registered views."""
    matches: list[tuple[int, int]] = []
    by_table: dict[str, list[TargetRef]] = {}
    for ref in refs:
        by_table.setdefault(ref.target.table, []).append(ref)
    for table, table_refs in by_table.items():
        for start in range(0, len(table_refs), SPARK_TARGETS_PER_SCAN):
            group = table_refs[start:start + SPARK_TARGETS_PER_SCAN]
            for event_id, target in engine.run(_scan_sql(group, table), read="spark").rows:
                matches.append((int(target), int(event_id)))
    return matches


def spark_hits(engine: SparkEngine, matches: Sequence[tuple[int, int]], refs: Sequence[TargetRef]) -> list[Hit]:
    if not matches:
        return []
    wanted = sorted({event for _, event in matches})
    events: dict[int, tuple[Any, ...]] = {}
    for start in range(0, len(wanted), 5000):
        ids = ", ".join(str(i) for i in wanted[start:start + 5000])
        rows = engine.run(f"SELECT {', '.join(EVIDENCE_COLUMNS)} FROM `{RAW_EVENTS}` "
                          f"WHERE AssayEventId IN ({ids})", read="spark").rows
        events.update({int(row[0]): row for row in rows})
    by_number = {ref.number: ref for ref in refs}
    return [make_hit(by_number[number], events[event]) for number, event in matches if event in events]


def hunt_on_spark(result: HuntResult, refs: list[TargetRef], sources: list[Source], skipped: list[Skipped], *,
                  master: str | None, work_dir: Path | None, progress: HuntProgress | None) -> None:
    """Ingest ``sources`` to Parquet under ``work_dir`` (a temporary folder by default), hunt on Spark, and
    add the hits to ``result.store``."""
    from assay.hunt.run import _add_bad
    from assay.ingest.pipeline import ingest_sources, write_parquet

    engine = SparkEngine(master)  # fails early, with the install hint, when Spark is missing
    with tempfile.TemporaryDirectory(prefix="assay-hunt-") as temporary:
        folder = Path(work_dir) if work_dir is not None else Path(temporary)
        with DuckDBEngine(None) as duck:
            summary = ingest_sources(sources, duck, skipped=[s for s in skipped if not s.is_damage])
            result.events += summary.records_read
            _add_bad(result, summary.bad_record_list, summary.bad_records - len(summary.bad_record_list))
            write_parquet(duck, folder)
        for table in canonical_tables():
            engine.register_parquet(table, folder / table)
        matches = spark_matches(engine, refs)
        if progress is not None:
            progress("events", 1, 1)
        result.store.add_hits(spark_hits(engine, matches, refs))
    result.notes.append(f"Spark master: {engine.master}")


__all__ = ["BadRecord", "hunt_on_spark", "spark_hits", "spark_matches"]
