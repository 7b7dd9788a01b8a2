"""CLI commands for the site stage: ``assay site build`` and ``assay site serve`` (registered by assay.cli.main)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from assay.cli.output import FORMAT_OPTION_HELP, emit_json

DEFAULT_OUT = "build/site"
#: Where ``assay test`` saves its JSON report; ``site build`` uses it when --report is not given.
DEFAULT_REPORT = "build/proof/report.json"


@click.group(name="site")
def site_group() -> None:
    """The static detection site: a page per detection and platform, an ATT&CK matrix by proof status."""


@site_group.command(name="build")
@click.option("--catalog", "catalog_path", default="detections", show_default=True,
              type=click.Path(exists=True, file_okay=False), help="The detection catalog folder.")
@click.option("--out", "out", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Output folder (created; must be empty or a previous site build).")
@click.option("--report", "report_path", type=click.Path(exists=True, dir_okay=False),
              help=f"Proof report JSON from `assay test` (default: {DEFAULT_REPORT} when it exists).")
@click.option("--no-report", is_flag=True, help="Ignore any proof report: every result shows as not yet run.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              help=FORMAT_OPTION_HELP)
def site_build(catalog_path: str, out: str, report_path: str | None, no_report: bool, output_format: str) -> None:
    """Build the static site for the whole catalog into --out.

    \b
    Pages: index.html (ATT&CK matrix coloured by proof status, search, filters), one page per detection and
    platform (native KQL, the Sigma rule, every pySigma conversion), per-platform lists, and an ATT&CK Navigator
    layer. No CDN and no external fonts or scripts: open index.html from disk, or preview it with `assay site serve`.
    Examples:
      assay test detections/ && assay site build --out build/site
      assay site build --report build/proof/report.json --out public/
    Exit code 1 when a detection could not be loaded (the others are still published).
    """
    from assay.catalog.loader import load_catalog
    from assay.errors import SiteError, SourceSpan
    from assay.site.builder import build_site
    from assay.verify.report import load_report

    if report_path and no_report:
        from assay.errors import UsageError

        raise UsageError("--report and --no-report contradict each other", hint="give one of them")
    chosen_report = None if no_report else report_path or (DEFAULT_REPORT if Path(DEFAULT_REPORT).is_file() else None)
    report = load_report(chosen_report) if chosen_report else None
    catalog = load_catalog(catalog_path)
    if not catalog.detections:
        raise SiteError("no detection could be loaded: nothing to publish", SourceSpan(catalog_path),
                        hint="run `assay lint " + catalog_path + "` to see why")
    build = build_site(catalog, out, report=report)
    if output_format == "json":
        emit_json({"out": str(build.out), "index": str(build.index), "detections": build.detections,
                   "detection_pages": build.detection_pages, "files": list(build.files),
                   "report": chosen_report, "report_run": build.report_run, "proof_status": build.statuses,
                   "warnings": list(build.warnings), "catalog_errors": [str(e) for e in catalog.errors]})
    else:
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(build.statuses.items()))
        click.echo(f"Built {build.detection_pages} page(s) for {build.detections} detection(s) ({statuses}) "
                   f"in {out}")
        if chosen_report:
            click.echo(f"Proof results from {chosen_report} (run {build.report_run:%Y-%m-%d %H:%M} UTC)"
                       if build.report_run else f"Proof results from {chosen_report}")
        else:
            click.echo("No proof report: results show as not yet run (run `assay test detections/` first)")
        click.echo(f"Open {build.index}  or preview: assay site serve --out {out}")
    for warning in build.warnings:
        click.echo(f"warning: {warning}", err=True)
    for error in catalog.errors:
        click.echo(f"error: {error} (left out of the site)", err=True)
    if catalog.errors:
        sys.exit(1)


@site_group.command(name="serve")
@click.option("--out", "out", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="The built site folder.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--log/--no-log", default=False, help="Log each request.")
def site_serve(out: str, port: int, log: bool) -> None:
    """Preview the built site on http://127.0.0.1:PORT/ (localhost only; Ctrl+C stops it).

    \b
    Example:
      assay site build --out build/site && assay site serve --out build/site --port 8000
    """
    from assay.site.serve import make_server, server_url

    server = make_server(out, port, quiet=not log)
    click.echo(f"Serving {out} on {server_url(server)}  (Ctrl+C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.server_close()


COMMANDS: list[click.Command] = [site_group]
