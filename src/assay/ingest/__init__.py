"""Telemetry ingestion: readers (EVTX, JSON lines, OTRF, Defender exports) -> normalized DuckDB tables."""
