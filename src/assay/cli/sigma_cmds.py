"""CLI commands for the sigma stage: ``assay sigma eval`` (does my rule match this event?) and ``assay convert``."""

from __future__ import annotations

import sys

import click

from assay.cli.output import FORMAT_OPTION_HELP, emit_json, print_table
from assay.errors import UsageError


@click.group(name="sigma")
def sigma_group() -> None:
    """Sigma rules: evaluate on events, locally and exactly as the Sigma specification says."""


@sigma_group.command(name="eval")
@click.argument("rule", type=click.Path(exists=True, dir_okay=True))
@click.argument("events", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              help=FORMAT_OPTION_HELP)
@click.option("--explain", is_flag=True, help="For each event, name the first selection item that failed.")
def sigma_eval(rule: str, events: str, output_format: str, explain: bool) -> None:
    """Evaluate RULE on flat JSON-lines EVENTS whose field names are the rule's own (no mapping).

    \b
    Prints, per event (record = line number), whether the rule matched; with --explain, why not.
    Example:
      assay sigma eval detections/T1218.003-cmstp/rule.sigma.yml events.jsonl --explain
    """
    from assay.sigma.flat import eval_flat_events

    result = eval_flat_events(rule, events, explain=explain)
    if output_format == "json":
        emit_json(result.to_dict())
    else:
        columns = ["record", "matched"] + (["why"] if explain else [])
        rows = [[r.record, "yes" if r.matched else "no"] + ([r.explanation or ""] if explain else [])
                for r in result.results]
        print_table(columns, rows, title=result.title)
        click.echo(f"{len(result.matched_records)} of {len(result.results)} event(s) matched")
        if result.missing:
            click.echo(f"note: no event has field(s) {', '.join(result.missing)}", err=True)
    for bad in result.bad_records:
        click.echo(f"warning: {bad}", err=True)


@click.command(name="convert")
@click.argument("rule", required=False, type=click.Path(exists=True, dir_okay=True))
@click.option("--to", "targets", multiple=True, metavar="TARGET",
              help="Target platform (repeatable; default: every target). See --list.")
@click.option("--list", "list_only", is_flag=True, help="List the conversion targets and installed backends.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              help=FORMAT_OPTION_HELP)
def convert_command(rule: str | None, targets: tuple[str, ...], list_only: bool, output_format: str) -> None:
    """Convert a Sigma RULE (or a catalog detection folder) to other platforms' query languages.

    \b
    Each target reports a status: converted, converted-with-warnings (with the warnings, including known
    backend defects) or failed (with the backend's reason).
    Examples:
      assay convert --list
      assay convert detections/T1218.003-cmstp --to microsoft-xdr --to splunk
    Exit code 1 when every requested target failed.
    """
    from assay.sigma.conversion import convert_loaded, installed_backends, list_targets
    from assay.sigma.loading import load_rule

    if list_only:
        specs = list_targets()
        if output_format == "json":
            emit_json({"targets": [{"name": s.name, "description": s.description, "language": s.language,
                                    "backend": s.backend[1], "pipeline": s.pipeline[1] if s.pipeline else None}
                                   for s in specs],
                       "installed_backends": installed_backends()})
            return
        print_table(["target", "language", "backend", "pipeline", "description"],
                    [[s.name, s.language, s.backend[1], s.pipeline[1] if s.pipeline else "", s.description]
                     for s in specs], title="conversion targets")
        click.echo("installed pySigma backend packages: " + ", ".join(installed_backends()))
        return
    if rule is None:
        raise UsageError("give a RULE file or detection folder (or --list)", hint="assay convert --help")
    known = [s.name for s in list_targets()]
    for name in targets:
        if name not in known:
            from assay.errors import did_you_mean

            suggestion = did_you_mean(name, known)
            raise UsageError(f"unknown conversion target {name!r}",
                             hint=(f"did you mean {suggestion!r}? " if suggestion else "") + "see assay convert --list")
    loaded = load_rule(rule)
    names = list(targets) or known
    conversions = [convert_loaded(loaded, name) for name in names]
    if output_format == "json":
        emit_json({"rule": loaded.source, "title": loaded.title, "conversions": [c.to_dict() for c in conversions]})
    else:
        for conversion in conversions:
            click.echo(f"== {conversion.target}: {conversion.status}")
            for message in conversion.messages:
                click.echo(f"   {message}")
            if conversion.query:
                click.echo(conversion.query)
            click.echo("")
        print_table(["target", "status"], [[c.target, c.status] for c in conversions], title="summary")
    if all(c.status == "failed" for c in conversions):
        sys.exit(1)


COMMANDS: list[click.Command] = [sigma_group, convert_command]
