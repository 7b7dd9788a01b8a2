"""Telemetry ingestion: readers (EVTX, JSON lines, OTRF, Defender exports) -> normalized DuckDB tables.

Entry point: :func:`ingest_paths` (also ``assay.ingest(paths, db=...)`` and ``assay ingest``). Mappings from source
event types to the typed tables are YAML files in ``mappings/``; see :mod:`assay.ingest.mapping`.
"""

from assay.ingest.pipeline import IngestSummary, SourceSummary, ingest_paths

__all__ = ["IngestSummary", "SourceSummary", "ingest_paths"]
