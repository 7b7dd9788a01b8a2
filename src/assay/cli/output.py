"""Output helpers shared by every command: tables and colour only on a TTY, JSON for machines, error rendering."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import click

from assay.errors import AssayError

FORMAT_OPTION_HELP = "Output format: 'table' for people (rich on a TTY, plain otherwise), 'json' for machines."


def is_tty() -> bool:
    return sys.stdout.isatty()


def json_default(value: Any) -> Any:
    """JSON encoding for the values engines return (datetimes, decimals, timedeltas, sets, bytes)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=json_default, ensure_ascii=False))


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """A table: rich box drawing on a TTY, tab-separated plain text otherwise (greppable, stable)."""
    rows = [list(r) for r in rows]
    if is_tty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for column in columns:
            table.add_column(str(column), overflow="fold")
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        Console().print(table)
        return
    if title:
        click.echo(f"# {title}")
    click.echo("\t".join(str(c) for c in columns))
    for row in rows:
        click.echo("\t".join("" if v is None else str(v).replace("\t", " ").replace("\n", " ") for v in row))


def render_error(error: AssayError) -> str:
    """The text of an error for a terminal: 'file:line:col: error: message', the source line and a caret."""
    location = f"{error.span}: " if error.span else ""
    lines = [f"{location}error: {error.message}"]
    caret = error.render_caret()
    if caret:
        lines.append(caret)
    if error.hint:
        lines.append(f"hint: {error.hint}")
    return "\n".join(lines)


def fail(error: AssayError) -> None:
    """Print an error on stderr and exit with its code (1 for errors, 2 for usage)."""
    click.echo(render_error(error), err=True)
    sys.exit(error.exit_code)
