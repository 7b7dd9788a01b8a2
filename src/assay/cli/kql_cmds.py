"""CLI commands for the kql stage: ``assay kql QUERY|FILE`` runs a query, ``assay kql check FILE...`` validates.

Thin layer over :mod:`assay.kql`; errors are AssayErrors rendered by the main group (line:col and a caret).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from assay.cli.output import emit_json, json_default, print_table, render_error
from assay.errors import AssayError, KqlError, UsageError

SCHEMA_OPTION_HELP = ("Schema file (YAML/JSON) declaring custom tables, e.g. MyApp_CL; repeatable. "
                      "Files in .assay/schemas/ are read too.")


def _custom_tables(schema_files: tuple[Path, ...]) -> dict[str, Any]:
    """Tables declared in ``--schema`` files and the project's ``.assay/schemas/`` (TableSchema by name)."""
    from assay.schema.custom import load_schema_files, project_schema_files

    return load_schema_files([*project_schema_files(), *schema_files])


def _table_schemas(db_path: Path | None, custom: dict[str, Any] | None = None) -> Any:
    """The known tables, those in the DuckDB file at ``db_path`` (opened read-only) and ``custom`` ones (a
    declared table replaces a documented one of the same name, not one the database holds)."""
    from assay import kql

    engine = None
    in_database: set[str] = set()
    if db_path is not None:
        if not db_path.exists():
            raise UsageError(f"database {db_path} does not exist")
        from assay.engine import DuckDBEngine

        engine = DuckDBEngine(db_path, read_only=True)
    try:
        tables = kql.table_schemas(engine)
        if engine is not None:
            in_database = set(engine.table_names())
    finally:
        if engine is not None:
            engine.close()
    for name, table in (custom or {}).items():
        if name not in in_database:
            tables[name] = list(table.kql_columns)
    return tables


def _read_query(query: str) -> tuple[str, str | None]:
    """QUERY is a file when it names an existing file (or ends in .kql), else KQL text."""
    candidate = Path(query)
    looks_like_file = query.endswith((".kql", ".csl", ".kusto")) and "\n" not in query and "|" not in query
    try:
        exists = candidate.is_file()
    except OSError:
        exists = False
    if exists:
        try:
            return candidate.read_text(encoding="utf-8-sig"), str(candidate)
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read {candidate}: {error}") from error
    if looks_like_file:
        raise UsageError(f"query file {query} does not exist", hint="pass the KQL text or an existing .kql file")
    return query, None


def _offline_options(command: Any) -> Any:
    """``--watchlist NAME=FILE`` and ``--externaldata URL=FILE``: local files standing in for workspace data."""
    command = click.option(
        "--externaldata", "externaldata", multiple=True, metavar="URL=FILE",
        help="Read FILE where the query's externaldata names URL (format from the query's with(format=...): "
             "csv, tsv, json, multijson, txt). Repeatable. Assay never fetches URLs.")(command)
    return click.option(
        "--watchlist", "watchlists", multiple=True, metavar="NAME=FILE",
        help="Read FILE (CSV with a header line) for _GetWatchlist('NAME'). Repeatable.")(command)


def _offline_maps(watchlists: tuple[str, ...], externaldata: tuple[str, ...]) -> tuple[dict[str, Path],
                                                                                      dict[str, Path]]:
    from assay.kql.offline import parse_mapping

    maps: list[dict[str, Path]] = []
    for values, flag in ((watchlists, "--watchlist"), (externaldata, "--externaldata")):
        try:
            mapping = parse_mapping(values, flag)
        except ValueError as error:
            raise UsageError(str(error), hint=f"e.g. {flag} {'HighValueAssets=assets.csv' if flag == '--watchlist' else 'https://example.com/iocs.csv=iocs.csv'}") from None
        for key, path in mapping.items():
            if not path.is_file():
                raise UsageError(f"{flag} {key}: {path} is not a file")
        maps.append(mapping)
    return maps[0], maps[1]


class KqlGroup(click.Group):
    """``assay kql QUERY`` runs a query; ``assay kql check FILE...`` validates: QUERY falls through to ``run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("kql", cls=KqlGroup)
def kql_group() -> None:
    """Run Kusto (KQL) queries locally on DuckDB (or Spark), or check them without running.

    \b
    Examples:
      assay kql detections/T1218.003-cmstp/sentinel.kql --db case.duckdb
      assay kql 'print now(), ago(1d)' --now 2024-05-01T00:00:00Z
      assay kql 'DeviceProcessEvents | take 5' --sql spark
      assay kql 'SigninLogs | summarize count() by ResultType' --engine spark --parquet tables/
      assay kql 'MyApp_CL | take 5' --schema myapp.schema.yml
      assay kql check detections/*/sentinel.kql
      assay kql support --out docs/kql-support.md
    """


@kql_group.command("run")
@click.argument("query")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="DuckDB file with ingested tables (default: $ASSAY_DB or .assay/assay.duckdb if present).")
@click.option("--now", "now", help="Fix now() (and ago()) to this ISO 8601 time, for reproducible results.")
@click.option("--format", "output_format", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format.")
@click.option("--sql", "sql_dialect", type=click.Choice(["duckdb", "spark"]),
              help="Print the compiled SQL for this engine instead of running the query.")
@click.option("--schema", "schema_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help=SCHEMA_OPTION_HELP)
@click.option("--engine", "engine_name", type=click.Choice(["duckdb", "spark"]), default="duckdb",
              show_default=True, help="Run on DuckDB (--db) or on Spark over Parquet tables (--parquet).")
@click.option("--parquet", "parquet_dir", type=click.Path(file_okay=False, path_type=Path),
              help="For --engine spark: folder of Parquet tables written by `assay ingest --store parquet --out`.")
@click.option("--spark-master", "spark_master",
              help="For --engine spark: Spark master URL (default: $ASSAY_SPARK_MASTER or local[*]).")
@_offline_options
def run_command(query: str, db_path: Path | None, now: str | None, output_format: str,
                sql_dialect: str | None, schema_files: tuple[Path, ...], engine_name: str,
                parquet_dir: Path | None, spark_master: str | None, watchlists: tuple[str, ...] = (),
                externaldata: tuple[str, ...] = ()) -> None:
    """Run QUERY (KQL text or a .kql file) and print its rows."""
    from assay import kql
    from assay.engine import DuckDBEngine, default_db_path

    text, file = _read_query(query)
    watchlist_map, external_map = _offline_maps(watchlists, externaldata)
    custom = _custom_tables(schema_files)
    if sql_dialect:
        tables = _table_schemas(db_path, custom)
        compiled = kql.compile(text, tables=tables, now=now, dialect=sql_dialect, file=file,
                               watchlists=watchlist_map, externaldata=external_map)
        click.echo(compiled.sql)
        return
    if engine_name == "spark":
        if db_path is not None:
            raise UsageError("--db is for the DuckDB engine", hint="with --engine spark, pass --parquet DIR")
        if watchlist_map or external_map:
            raise UsageError("--watchlist and --externaldata are for the DuckDB engine",
                             hint="run the query without --engine spark, or load the file as a table")
        result = _run_on_spark(text, file, now, parquet_dir, spark_master, custom)
    else:
        if parquet_dir is not None or spark_master is not None:
            raise UsageError("--parquet and --spark-master are for --engine spark")
        if db_path is None:
            default = default_db_path()
            db_path = default if default.exists() else None
        if db_path is not None and not db_path.exists():
            raise UsageError(f"database {db_path} does not exist", hint="create it with `assay ingest ... --db FILE`")
        with DuckDBEngine(db_path, read_only=db_path is not None) as engine:
            engine.ensure_tables(list(custom), custom)  # declared tables the database lacks: empty
            result = kql.run(text, db=engine, now=now, file=file, watchlists=watchlist_map,
                             externaldata=external_map)
    names = list(result.column_names)
    if output_format == "json":
        emit_json({"columns": [{"name": n, "type": t} for n, t in result.columns],
                   "rows": result.as_dicts(), "now": result.now, "sql": result.sql})
    elif output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for row in result.rows:
            writer.writerow([_csv_value(v) for v in row])
        click.echo(buffer.getvalue(), nl=False)
    else:
        print_table(names, [[_display(v) for v in row] for row in result.rows])
        click.echo(f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})", err=True)


def _run_on_spark(text: str, file: str | None, now: str | None, parquet_dir: Path | None, master: str | None,
                  custom: dict[str, Any]) -> Any:
    from assay.engine.spark_engine import SparkEngine
    from assay.kql.on_spark import run_on_spark

    if parquet_dir is not None and not parquet_dir.is_dir():
        raise UsageError(f"Parquet folder {parquet_dir} does not exist",
                         hint="write it with: assay ingest LOGS --format parquet --out DIR")
    from assay import kql

    tables = {name: table.kql_columns for name, table in custom.items()}
    # bind first: a located error must not wait for the JVM to start
    kql.check(text, file=file, tables={**kql.table_schemas(None), **{n: list(c) for n, c in tables.items()}})
    with SparkEngine(master) as engine:
        return run_on_spark(text, engine, parquet_dir, now=now, file=file, tables=tables)


def _display(value: Any) -> Any:
    """A value as Kusto shows it: ISO 8601 datetimes with Z, timespans as [d.]hh:mm:ss[.fffffff], JSON."""
    if isinstance(value, dict | list):
        return json.dumps(value, default=json_default, ensure_ascii=False)
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds" if value.microsecond else "seconds") + "Z"
    if isinstance(value, timedelta):
        return format_timespan(value)
    return value


def format_timespan(value: timedelta) -> str:
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, remainder = divmod(value.seconds, 3600)
    minutes, seconds = divmod(remainder, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if value.microseconds:
        text += f".{value.microseconds * 10:07d}"
    return f"{sign}{value.days}.{text}" if value.days else f"{sign}{text}"


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    return _display(value)


@kql_group.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also accept the tables found in this DuckDB file.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("--schema", "schema_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help=SCHEMA_OPTION_HELP)
@_offline_options
def check_command(files: tuple[Path, ...], db_path: Path | None, output_format: str,
                  schema_files: tuple[Path, ...], watchlists: tuple[str, ...] = (),
                  externaldata: tuple[str, ...] = ()) -> None:
    """Check the syntax and schema of KQL FILES without running them (exit 1 if any fails)."""
    from assay import kql

    watchlist_map, external_map = _offline_maps(watchlists, externaldata)
    tables = _table_schemas(db_path, _custom_tables(schema_files))
    results: list[dict[str, Any]] = []
    failed = 0
    for path in files:
        if not path.is_file():
            raise UsageError(f"{path} is not a file")
        text = path.read_text(encoding="utf-8-sig")
        try:
            kql.check(text, file=str(path), tables=tables, watchlists=watchlist_map, externaldata=external_map)
            results.append({"file": str(path), "ok": True})
        except KqlError as error:
            failed += 1
            results.append({"file": str(path), "ok": False, "error": error.message,
                            "line": error.span.line if error.span else None,
                            "col": error.span.col if error.span else None, "hint": error.hint,
                            "kind": type(error).__name__})
            if output_format == "table":
                click.echo(render_error(error), err=True)
        except AssayError as error:
            failed += 1
            results.append({"file": str(path), "ok": False, "error": error.message})
            if output_format == "table":
                click.echo(render_error(error), err=True)
    if output_format == "json":
        emit_json({"checked": len(files), "failed": failed, "results": results})
    else:
        click.echo(f"{len(files) - failed} of {len(files)} KQL file(s) OK")
    if failed:
        raise SystemExit(1)


@kql_group.command("support")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the page to this file (default: print it).")
def support_command(out_path: Path | None) -> None:
    """Print the KQL support matrix (operators, functions, semantics) generated from the code."""
    from assay.kql.support import render_markdown

    text = render_markdown()
    if out_path is None:
        click.echo(text, nl=False)
        return
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out_path}")


COMMANDS: list[click.Command] = [kql_group]
