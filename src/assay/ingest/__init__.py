"""Telemetry ingestion: readers (EVTX, JSON lines, OTRF, Defender exports) -> normalized DuckDB tables.

Entry point: :func:`ingest_paths` (also ``assay.ingest(paths, db=...)`` and ``assay ingest``). Mappings from source
event types to the typed tables are YAML files in ``mappings/``; see :mod:`assay.ingest.mapping`.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from assay.ingest.pipeline import IngestSummary, SourceSummary, ingest_paths

__all__ = ["IngestSummary", "SourceSummary", "ingest_paths"]


class _CallableIngestModule(types.ModuleType):
    """Importing ``assay.ingest`` makes it the ``ingest`` attribute of ``assay``, hiding ``assay.ingest()``;
    making the module callable keeps ``assay.ingest(paths, db=...)`` working either way."""

    def __call__(self, paths: str | Path | list[str | Path], db: str | Path | None = None,
                 **options: Any) -> IngestSummary:
        return ingest_paths(paths, db=db, **options)


sys.modules[__name__].__class__ = _CallableIngestModule
