"""CLI commands for the hunt stage (registered by assay.cli.main): ``assay hunt``.

The timeline is streamed from the result's hit store (never held as a whole): files and pipes get every hit,
a terminal table shows the first ``MAX_TERMINAL_ROWS``.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TextIO

import click

from assay.cli.output import is_tty, print_table
from assay.errors import UsageError

TABLE_COLUMNS = ("timestamp", "host", "rule", "level", "techniques", "event_id", "fields", "source_file",
                 "source_record")
MAX_TABLE_FIELD_CHARS = 160
#: Hits shown in the rich table on a terminal; the rest are counted (use --out or --format csv for all).
MAX_TERMINAL_ROWS = 500
#: Files and folders not read listed in the text summary (JSON lists them all).
MAX_LISTED_NOT_READ = 20


class _Progress(AbstractContextManager["_Progress"]):
    """Rich progress bars on stderr when it is a terminal; nothing otherwise."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.tasks: dict[str, Any] = {}
        self.bar: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            # A cold compile of a large rule set takes a while on every core: show the rate and what is left.
            rate = TextColumn("{task.fields[rate]}")
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), rate,
                                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None:
            return
        if stage not in self.tasks:
            label = "compiling rules" if stage == "rules" else "hunting logs (work units)"
            self.tasks[stage] = self.bar.add_task(label, total=total, rate="")
        task = self.tasks[stage]
        self.bar.update(task, completed=done, total=total)
        speed = next((t.speed for t in self.bar.tasks if t.id == task), None)
        unit = "rules" if stage == "rules" else "units"
        self.bar.update(task, rate=f"{speed:,.0f} {unit}/s" if speed else "")


def _short(text: Any) -> Any:
    if isinstance(text, str) and len(text) > MAX_TABLE_FIELD_CHARS:
        return text[:MAX_TABLE_FIELD_CHARS] + "…"
    return text


def _plain_line(row: Iterable[Any]) -> str:
    return "\t".join("" if v is None else str(v).replace("\t", " ").replace("\n", " ") for v in row) + "\n"


def _write_timeline(result: Any, output_format: str, stream: TextIO, *, shorten: bool = False) -> None:
    """Stream the timeline from the hit store: CSV, JSON lines, or a plain tab-separated table."""
    from assay.hunt.timeline import iter_timeline_rows

    store = result.store
    if output_format == "csv":
        store.write_csv(stream)
    elif output_format == "jsonl":
        store.write_jsonl(stream)
    else:
        stream.write("\t".join(TABLE_COLUMNS) + "\n")
        for row in iter_timeline_rows(store.iter_hits(), TABLE_COLUMNS):
            stream.write(_plain_line([_short(v) for v in row] if shorten else row))


def _write_json_document(result: Any, stream: TextIO) -> None:
    """``json.dumps(result.as_dict(), indent=2)`` byte for byte, with the timeline streamed hit by hit."""
    import json

    from assay.cli.output import json_default

    def dumps(value: Any) -> str:
        return json.dumps(value, indent=2, default=json_default, ensure_ascii=False)

    header = dumps(result.header_dict())
    stream.write(header[:-2] + ',\n  "timeline": [')
    first = True
    for hit in result.store.iter_hits():
        stream.write(("\n" if first else ",\n") + textwrap.indent(dumps(hit.as_dict()), "    "))
        first = False
    stream.write("]\n}" if first else "\n  ]\n}")


def _print_summary(result: Any, err: bool) -> None:
    """Summary by rule, level and technique, then the rules not evaluated (stderr when stdout has data)."""
    echo = (lambda text: click.echo(text, err=True)) if err else click.echo
    summary = result.summary
    echo(f"{summary.events} events, {result.hit_count} hits from {len(summary.by_rule)} rules "
         f"({result.rules} rules, {result.targets} routes evaluated) in {result.seconds:.1f}s")
    if err:
        for title, level, count in summary.by_rule:
            echo(f"  {count:6d}  {level:13s} {title}")
    else:
        if summary.by_rule:
            print_table(("hits", "level", "rule"), [(n, lv, t) for t, lv, n in summary.by_rule], title="Hits by rule")
        if summary.by_level:
            print_table(("level", "hits"), list(summary.by_level.items()), title="Hits by level")
        if summary.by_technique:
            print_table(("technique", "hits"), list(summary.by_technique.items()), title="Hits by ATT&CK technique")
    if result.problems:
        echo(f"{len(result.problems)} rules not evaluated:")
        for problem in result.problems:
            title = f" ({problem.title})" if problem.title else ""
            echo(f"  {problem.source}{title}: {problem.kind}: {problem.reason}")
    if result.no_events:
        echo(f"{len(result.no_events)} rules had no event of their logsource in these logs "
             "(e.g. " + "; ".join(p.title or p.source for p in result.no_events[:3]) + ")")
    if result.missing_fields:
        echo(f"{len(result.missing_fields)} rule routes read fields their events do not have, e.g.:")
        for problem in result.missing_fields[:5]:
            echo(f"  {problem.title}: {problem.reason}")
    not_read = [item for item in result.skipped if not item.is_damage]  # damaged ones are bad records, below
    if not_read:
        echo(f"{len(not_read)} file(s) or folder(s) not read:")
        for item in not_read[:MAX_LISTED_NOT_READ]:
            echo(f"  {item.label}: {item.reason}")
        if len(not_read) > MAX_LISTED_NOT_READ:
            echo(f"  … {len(not_read) - MAX_LISTED_NOT_READ} more (see --format json)")
    if result.bad_records:
        echo(f"{result.bad_records} bad records skipped (damaged logs):")
        for bad in result.bad_record_list[:20]:
            echo(f"  {bad}")
    for note in result.notes:
        echo(f"note: {note}")


@click.command("hunt")
@click.argument("logs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--rules", "-r", "rule_paths", multiple=True, type=click.Path(path_type=Path),
              help="Sigma rule files or folders (e.g. a SigmaHQ rules/windows checkout) or catalog detection "
                   "folders; repeatable. Default: ./detections.")
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "jsonl", "json"]), default="table",
              show_default=True, help="Timeline format. 'json' prints the whole result (timeline, summary, "
                                      "rules not evaluated) as one document.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Write the timeline to this file (the summary still goes to the terminal).")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="duckdb: streaming fast path on this machine. spark: ingest to Parquet and run the same SQL "
                   "on Apache Spark (needs: pip install 'assay[spark]').")
@click.option("--spark-master", default=None, metavar="URL",
              help="Spark master for --engine spark (default local[*]; e.g. spark://host:7077).")
@click.option("--rule-by-rule", is_flag=True,
              help="Evaluate one SQL query per rule over all events (slow): the baseline the fast path equals.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: one per core).")
@click.option("--no-cache", is_flag=True, help="Recompile every rule instead of using the compiled-rule cache.")
def hunt_command(logs: tuple[Path, ...], rule_paths: tuple[Path, ...], output_format: str, out: Path | None,
                 engine: str, spark_master: str | None, rule_by_rule: bool, workers: int | None,
                 no_cache: bool) -> None:
    """Run every rule over LOGS (EVTX, JSON lines, OTRF, Defender exports, folders, zips) into a timeline.

    \b
    The timeline lists each hit in time order: timestamp, host, rule, level, ATT&CK techniques, the key fields
    of the event, and the source file and record. A summary by rule, level and technique follows, and the
    rules that could not be evaluated are listed with the reason. Compiled rules are cached
    ($ASSAY_CACHE_DIR, default ~/.cache/assay), so the second hunt with the same rules starts at once.

    \b
    Examples:
      assay hunt case/logs/ --rules sigma/rules/windows
      assay hunt case.zip --rules detections/ --format jsonl --out timeline.jsonl
      assay hunt case/ --rules detections/ --engine spark --spark-master spark://cluster:7077
    """
    from assay.hunt.run import hunt

    if not logs:
        raise UsageError("no logs to hunt", hint="name at least one file, folder, glob or zip: assay hunt LOGS...")
    if engine == "spark" and rule_by_rule:
        raise UsageError("--rule-by-rule runs on DuckDB; drop it or use --engine duckdb")
    paths: list[Path] = list(rule_paths)
    if not paths:
        default = Path("detections")
        if not default.is_dir():
            raise UsageError("no rules given and no ./detections catalog here",
                             hint="pass --rules DIR (Sigma rules or catalog detections)")
        paths = [default]
    mode = "spark" if engine == "spark" else ("reference" if rule_by_rule else "fast")
    with _Progress() as progress:
        result = hunt(list(logs), paths, mode=mode, workers=workers, spark_master=spark_master,
                      cache_dir=not no_cache, progress=progress if progress.enabled else None)
    with result:
        _report(result, output_format, out)
        broken = [p for p in result.problems if p.kind == "load"]
    if broken:
        # the other rules ran and their hits are above; a rule that does not load is an error to fix
        click.echo(f"error: {len(broken)} rule file(s) did not load (listed above with file:line:col); "
                   "the other rules ran", err=True)
        sys.exit(1)


def _report(result: Any, output_format: str, out: Path | None) -> None:
    """Write the timeline where asked (streamed from the hit store) and the summary to the terminal."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8", newline="") as stream:
            if output_format == "json":
                _write_json_document(result, stream)
            else:
                _write_timeline(result, output_format, stream)
        if output_format != "json":
            click.echo(f"timeline: {result.hit_count} hits written to {out}")
        _print_summary(result, err=False)
        return
    if output_format == "json":
        stdout = sys.stdout
        _write_json_document(result, stdout)
        stdout.write("\n")
        stdout.flush()
        return
    if output_format in ("csv", "jsonl"):
        _write_timeline(result, output_format, sys.stdout)
        _print_summary(result, err=True)
        return
    if not is_tty():
        _write_timeline(result, "table", sys.stdout, shorten=True)
        _print_summary(result, err=False)
        return
    from assay.hunt.timeline import iter_timeline_rows

    shown = result.store.head(MAX_TERMINAL_ROWS)
    rows = [[_short(v) for v in row] for row in iter_timeline_rows(shown, TABLE_COLUMNS)]
    print_table(TABLE_COLUMNS, rows, title="Timeline")
    if result.hit_count > len(shown):
        click.echo(f"(first {len(shown)} of {result.hit_count} hits; write them all with --out FILE "
                   "or --format csv|jsonl)")
    _print_summary(result, err=False)


COMMANDS: list[click.Command] = [hunt_command]
