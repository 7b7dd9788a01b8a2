"""CLI commands for the ingest stage: ``assay ingest`` (telemetry → tables) and ``assay tables`` (what is there)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from assay.cli.output import FORMAT_OPTION_HELP, emit_json, is_tty, print_table

#: Unmapped fields shown per mapping in the text summary (JSON output lists them all).
MAX_UNMAPPED_SHOWN = 12
MAX_BAD_SHOWN = 20


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True)
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
              help="DuckDB file to fill (default: $ASSAY_DB or ./.assay/assay.duckdb; the summary says which).")
@click.option("--format", "report_format", type=click.Choice(["table", "json", "duckdb", "parquet"]),
              default="table", show_default=True,
              help=FORMAT_OPTION_HELP + " (The old spellings --format duckdb|parquet still work for this release, "
                   "with a notice: use --store.)")
@click.option("--store", "store_format", type=click.Choice(["duckdb", "parquet"]), default=None,
              help="Storage: 'duckdb' (default) fills --db; 'parquet' also writes one Parquet dataset per table "
                   "under --out.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for --store parquet (one sub-folder per table).")
@click.option("--strict", is_flag=True, help="Exit 1 when any record is bad (default: only when nothing was read).")
@click.option("--threads", type=click.IntRange(1, 256), help="DuckDB threads (default: all cores).")
@click.option("--format-output", "legacy_report_format", type=click.Choice(["table", "json"]), default=None,
              hidden=True, help="Deprecated spelling of --format table|json.")
@click.option("--table", "table_name", metavar="TABLE",
              help="Load PATHS (JSON lines, a JSON array or CSV whose keys are column names) as rows of TABLE: "
                   "any documented Sentinel/Defender table, or one declared with --schema.")
@click.option("--schema", "schema_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Schema file (YAML/JSON) declaring custom tables; also read: .assay/schemas/*.yml|json.")
def ingest_command(paths: tuple[str, ...], db: Path | None, report_format: str, store_format: str | None,
                   out: Path | None, strict: bool, threads: int | None, legacy_report_format: str | None,
                   table_name: str | None, schema_files: tuple[Path, ...]) -> None:
    """Normalize telemetry into DuckDB tables (RawEvents + DeviceProcessEvents, SecurityEvent…).

    PATHS are files, folders, globs or zips: EVTX, JSON lines or arrays (evtx JSON shape, Winlogbeat/ECS, OTRF
    Security-Datasets, flat Sigma-style fields) and Defender XDR advanced-hunting exports (CSV/JSON). Formats are
    recognised by content. Bad records are counted with file and offset/line; the run goes on.

    \b
    Examples:
      assay ingest logs/ --db case.duckdb
      assay ingest 'captures/**/*.evtx' export.csv --format json
      assay ingest dataset.zip --store parquet --out tables/
      assay ingest --table SigninLogs signins.jsonl --db case.duckdb
      assay ingest --table MyApp_CL --schema myapp.schema.yml rows.csv
    """
    if report_format in ("duckdb", "parquet"):
        # --format used to name the storage; it now names the report, as on every other command.
        click.echo(f"assay ingest: --format {report_format} is deprecated and will be removed in the next "
                   f"release; use --store {report_format}", err=True)
        if store_format is None:
            store_format = report_format
        report_format = "table"
    if legacy_report_format is not None:
        click.echo("assay ingest: --format-output is deprecated and will be removed in the next release; "
                   f"use --format {legacy_report_format}", err=True)
        report_format = legacy_report_format
    output_format = store_format or "duckdb"
    from assay.engine import default_db_path
    from assay.errors import UsageError
    from assay.ingest import ingest_paths

    if output_format == "parquet" and out is None:
        raise UsageError("--store parquet needs --out DIR", hint="e.g. --store parquet --out build/tables")
    database = db if db is not None else default_db_path()
    if db is None and report_format != "json":
        click.echo(f"database: {database} (default; choose another with --db)", err=True)
    if table_name is not None or schema_files:
        if table_name is None:
            raise UsageError("--schema declares tables for --table rows", hint="add --table NAME")
        _ingest_rows(paths, database, table_name, schema_files, output_format, out, threads, strict, report_format)
        return
    progress_callback = None
    progress_context: Any = None
    if is_tty() and sys.stderr.isatty() and report_format != "json":
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress_context = Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("sources · {task.fields[records]:,} records · {task.description}"),
                                    TimeElapsedColumn(), transient=True)
        task = progress_context.add_task("", total=None, records=0)

        def progress_callback(label: str, records: int, done: int, total: int) -> None:
            progress_context.update(task, total=total, completed=done, records=records,
                                    description=Path(label.split("!")[0]).name)

        progress_context.start()
    try:
        summary = ingest_paths(list(paths), db=database, output_format=output_format, out=out, threads=threads,
                               progress=progress_callback)
    finally:
        if progress_context is not None:
            progress_context.stop()
    if report_format == "json":
        emit_json(summary.as_dict())
    else:
        _print_summary(summary)
    if summary.nothing_read:
        reasons = [str(b) for b in summary.bad_record_list[:3]] + [f"{s.label}: {s.reason}"
                                                                  for s in summary.skipped[:3]]
        click.echo("error: no record could be read from " + ", ".join(paths)
                   + (" (" + "; ".join(reasons) + ")" if reasons else ""), err=True)
        sys.exit(1)
    if strict and summary.bad_records:
        click.echo(f"error: {summary.bad_records} bad record(s) and --strict was given", err=True)
        sys.exit(1)


def _ingest_rows(paths: tuple[str, ...], database: Path, table_name: str, schema_files: tuple[Path, ...],
                 output_format: str, out: Path | None, threads: int | None, strict: bool, report_format: str) -> None:
    """``--table``: rows in files go to one table as they are (see :mod:`assay.ingest.rows`)."""
    from assay.engine import DuckDBEngine
    from assay.errors import UsageError
    from assay.ingest.pipeline import write_parquet
    from assay.ingest.rows import load_rows, resolve_table
    from assay.schema.custom import load_schema_files, project_schema_files

    custom = load_schema_files([*project_schema_files(), *schema_files])
    table = resolve_table(table_name, custom)
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in
                            (".json", ".jsonl", ".ndjson", ".csv", ".tsv"))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{raw} is not a file or folder")
    with DuckDBEngine(database, threads=threads) as engine:
        summary = load_rows(engine, table, files)
        parquet_dir = str(write_parquet(engine, out)) if output_format == "parquet" and out is not None else None
    if report_format == "json":
        emit_json({"database": str(database), "parquet_dir": parquet_dir, **summary.as_dict()})
    else:
        click.echo(f"Loaded {summary.rows:,} row(s) into {summary.table} in {database} ({len(summary.bad)} bad)")
        if parquet_dir:
            click.echo(f"Parquet datasets: {parquet_dir}/<Table>/")
        if summary.bad:
            rows = [(b.source, b.location, b.reason) for b in summary.bad[:MAX_BAD_SHOWN]]
            print_table(["source", "where", "why"], rows, title="Bad rows")
        if summary.unmapped:
            kept = "kept in AdditionalFields" if table.column("AdditionalFields") is not None else "not loaded"
            print_table(["key", "rows"], sorted(summary.unmapped.items()), title=f"Keys that are not columns ({kept})")
    if not summary.rows and (summary.bad or not files):
        click.echo("error: no row could be loaded from " + ", ".join(paths), err=True)
        sys.exit(1)
    if strict and summary.bad:
        click.echo(f"error: {len(summary.bad)} bad row(s) and --strict was given", err=True)
        sys.exit(1)


def _print_summary(summary: Any) -> None:
    click.echo(f"Ingested {summary.records_read:,} records into {summary.database} in {summary.seconds:.2f} s"
               f" ({summary.bad_records} bad)")
    if summary.parquet_dir:
        click.echo(f"Parquet datasets: {summary.parquet_dir}/<Table>/")
    print_table(["table", "rows added"], [(t, f"{n:,}") for t, n in summary.rows_per_table.items()],
                title="Rows per table")
    print_table(["source", "format", "records", "bad"],
                [(s.label, s.format, f"{s.records:,}", s.bad) for s in summary.sources], title="Sources")
    if summary.skipped:
        print_table(["skipped", "reason"], [(s.label, s.reason) for s in summary.skipped], title="Not read")
    if summary.bad_record_list:
        rows = [(b.source, b.location, b.reason) for b in summary.bad_record_list[:MAX_BAD_SHOWN]]
        more = summary.bad_records - len(rows)
        print_table(["source", "where", "why"], rows,
                    title="Bad records" + (f" (first {len(rows)}; {more} more, see --format json)"
                                           if more > 0 else ""))
    if summary.unmapped_fields:
        unmapped_rows: list[tuple[str, str]] = []
        for mapping, fields in summary.unmapped_fields.items():
            shown = list(fields.items())[:MAX_UNMAPPED_SHOWN]
            text = ", ".join(f"{k} ({n})" for k, n in shown)
            if len(fields) > len(shown):
                text += f", … {len(fields) - len(shown)} more"
            unmapped_rows.append((mapping, text))
        print_table(["mapping", "fields kept in AdditionalFields/EventData (events)"], unmapped_rows,
                    title="Unmapped fields")
    if summary.events_without_mapping:
        print_table(["Channel", "EventID", "events"],
                    [(c or "", "" if e is None else e, f"{n:,}") for c, e, n in summary.events_without_mapping[:20]], title="Events kept in RawEvents only (no typed table)")


@click.command("tables")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
              help="DuckDB file (default: $ASSAY_DB or ./.assay/assay.duckdb).")
@click.option("--columns/--no-columns", default=False, help="List every column with its type.")
@click.option("--format", "report_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help=FORMAT_OPTION_HELP)
def tables_command(db: Path | None, columns: bool, report_format: str) -> None:
    """List the tables of an Assay database: row counts, and columns with their types."""
    from assay.engine import DuckDBEngine, default_db_path
    from assay.errors import UsageError

    database = db if db is not None else default_db_path()
    if not database.exists():
        raise UsageError(f"no database at {database}", hint="run 'assay ingest PATH --db FILE' first, or pass --db")
    with DuckDBEngine(database, read_only=True) as engine:
        listing: list[dict[str, Any]] = [{"table": name, "rows": engine.row_count(name),
                    "columns": [{"name": c, "type": t} for c, t in engine.table_columns(name)]}
                   for name in engine.table_names()]
    if report_format == "json":
        emit_json({"database": str(database), "tables": listing})
        return
    print_table(["table", "rows", "columns"], [(t["table"], f"{t['rows']:,}", len(t["columns"])) for t in listing],
                title=str(database))
    if columns:
        for entry in listing:
            print_table(["column", "type"], [(c["name"], c["type"]) for c in entry["columns"]], title=entry["table"])


COMMANDS: list[click.Command] = [ingest_command, tables_command]
