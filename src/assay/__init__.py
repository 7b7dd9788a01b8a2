"""Assay: a detection-engineering workbench. Detections as code, run locally, proven by tests.

The library is the product; the ``assay`` CLI is a thin layer over it. Nothing here does work at import time.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def ingest(paths: Any, db: Any = None, **options: Any) -> Any:
    """Ingest telemetry files into normalized DuckDB tables; see :func:`assay.ingest.ingest_paths`."""
    from assay.ingest import ingest_paths

    return ingest_paths(paths, db=db, **options)
