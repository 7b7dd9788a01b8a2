"""CLI commands for the catalog stage: ``assay lint``, ``assay show``, ``assay list`` (registered by assay.cli.main)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from assay.cli.output import emit_json, is_tty, print_table

DEFAULT_CATALOG = "detections"
SEVERITY_CHOICES = ("informational", "low", "medium", "high", "critical")


def _catalog_path(path: str | None) -> Path:
    chosen = Path(path or DEFAULT_CATALOG)
    if not chosen.exists():
        raise click.BadParameter(f"{chosen} does not exist (run from the project folder or pass --catalog PATH)",
                                 param_hint="'--catalog'")
    return chosen


def _load(path: Path) -> Any:
    from assay.catalog import load_catalog

    catalog = load_catalog(path)
    if catalog.errors:
        click.echo(f"warning: {len(catalog.errors)} problem(s) loading {path}; run 'assay lint {path}' for "
                   "details", err=True)
    return catalog


# ----------------------------------------------------------------------------------------------------------- lint


@click.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["text", "json", "sarif"]), default="text",
              show_default=True,
              help="'text': one 'file:line:col: severity: message' per issue; 'json' for machines; 'sarif' (SARIF "
                   "2.1.0) for code-scanning views.")
@click.option("--attack-version", default=None, metavar="VERSION",
              help="ATT&CK version to check ids against (default: $ASSAY_ATTACK_VERSION or the packaged default).")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1 on any issue).")
def lint_command(paths: tuple[Path, ...], output_format: str, attack_version: str | None, strict: bool) -> None:
    """Validate detections: schema, ATT&CK ids, Sigma (offline), KQL, scenarios, ids and references.

    PATHS are detection folders or folders of detections (default: detections/). Exit 0 when clean, 1 when any
    error is found (or any warning with --strict), 2 on usage errors.
    """
    from assay.catalog.lint import lint_catalog

    targets = list(paths) or [_catalog_path(None)]
    report = lint_catalog(targets, attack_version=attack_version)
    cwd = Path.cwd()
    failed = bool(report.errors) or (strict and bool(report.warnings))
    if output_format == "sarif":
        from assay.verify.sarif import lint_sarif

        emit_json(lint_sarif(report, cwd))
    elif output_format == "json":
        emit_json({
            "ok": not failed,
            "detections": report.detections_checked,
            "errors": len(report.errors),
            "warnings": len(report.warnings),
            "issues": [issue.to_json(cwd) for issue in report.issues],
            "skipped_checks": report.skipped_checks,
        })
    else:
        colour = is_tty()
        for issue in report.issues:
            severity = click.style(issue.severity, fg="red" if issue.severity == "error" else "yellow",
                                   bold=True) if colour else issue.severity
            click.echo(f"{issue.location(cwd)}: {severity}: {issue.message} [{issue.code}]")
            source_line = issue.span.source_line()
            if source_line is not None and issue.span.col is not None:
                click.echo(f"    {source_line}")
                click.echo(f"    {' ' * (max(issue.span.col, 1) - 1)}^")
            if issue.hint:
                click.echo(f"    hint: {issue.hint}")
        for check, reason in report.skipped_checks.items():
            click.echo(f"skipped: {check}: {reason}", err=True)
        summary = (f"{report.detections_checked} detection(s) checked: {len(report.errors)} error(s), "
                   f"{len(report.warnings)} warning(s)")
        click.echo(click.style(summary, fg="red" if failed else "green") if colour else summary)
    if failed:
        sys.exit(1)


# ----------------------------------------------------------------------------------------------------------- init


@click.command("init")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--package", default=None, metavar="SPEC",
              help="What the CI files pip-install (default: assay==<this version>), e.g. a wheel URL.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="'json': the files written, for scripts.")
def init_command(directory: Path, package: str | None, output_format: str) -> None:
    """Start a detections repository in DIRECTORY.

    \b
    Writes an example detection (detections/T1202-indirect-command-execution, its scenarios proven), CI for GitHub
    Actions (.github/workflows/assay.yml) and GitLab CI (.gitlab-ci.yml) running `assay lint` and `assay test`
    with JUnit, a .pre-commit-config.yaml and a README. Never overwrites a file. Then:
      cd DIRECTORY && assay test detections/
    """
    from assay.catalog.init_repo import init_repository

    result = init_repository(directory, package=package)
    if output_format == "json":
        emit_json({"root": str(result.root), "files": [str(p) for p in result.files]})
        return
    for path in result.files:
        click.echo(f"wrote {path}")
    click.echo(f"next: cd {result.root} && assay test detections/")


# ----------------------------------------------------------------------------------------------------------- show


def _did_you_mean_reference(reference: str, catalog: Any) -> str | None:
    from assay.errors import did_you_mean

    candidates = [d.id for d in catalog.detections] + [d.detection.technique for d in catalog.detections] + [
        d.path.name for d in catalog.detections]
    return did_you_mean(reference, candidates)


@click.command("show")
@click.argument("reference", metavar="ID|TECHNIQUE")
@click.option("--catalog", "catalog_path", default=None, metavar="PATH",
              help="Catalog folder (default: detections/).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="'text': every section of the detection page (rich on a TTY); 'json' for machines.")
@click.option("--attack-version", default=None, metavar="VERSION", help="ATT&CK version for derived names.")
def show_command(reference: str, catalog_path: str | None, output_format: str, attack_version: str | None) -> None:
    """Show a detection with every section: ATT&CK, query, false positives, playbook, hunting, scenarios...

    ID|TECHNIQUE is a detection id (or an 8+ character prefix), an ATT&CK technique id (T1218.003; a parent
    technique such as T1218 shows all its sub-techniques' detections) or a detection folder name.
    """
    from assay.catalog.view import detection_document
    from assay.errors import CatalogError
    from assay.schema.attack import attack_data

    catalog = _load(_catalog_path(catalog_path))
    matches = catalog.find(reference)
    if not matches:
        suggestion = _did_you_mean_reference(reference, catalog)
        raise CatalogError(f"no detection matches {reference!r} in {catalog.root}",
                           hint=f"did you mean {suggestion}?" if suggestion else "run 'assay list' to see ids")
    attack = attack_data(attack_version)
    if output_format == "json":
        documents = [detection_document(loaded, attack) for loaded in matches]
        emit_json(documents[0] if len(documents) == 1 else documents)
        return
    from assay.cli.catalog_render import render_detection

    for index, loaded in enumerate(matches):
        if index:
            click.echo()
        render_detection(detection_document(loaded, attack), rich=is_tty())


# ----------------------------------------------------------------------------------------------------------- list


@click.command("list")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--technique", default=None, metavar="TID", help="Only this technique (T1218 includes sub-techniques).")
@click.option("--severity", "severities", multiple=True, type=click.Choice(SEVERITY_CHOICES),
              help="Only these severities (repeatable).")
@click.option("--tactic", default=None, metavar="TACTIC",
              help="Only techniques of this tactic: id (TA0005), short name (defense-evasion) or name.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="'table' for people (rich on a TTY, tab-separated otherwise), 'json'.")
@click.option("--attack-version", default=None, metavar="VERSION", help="ATT&CK version for derived names.")
def list_command(path: Path | None, technique: str | None, severities: tuple[str, ...], tactic: str | None,
                 output_format: str, attack_version: str | None) -> None:
    """List detections: id, technique, title, severity, forms and scenarios, with filters.

    PATH is the catalog folder (default: detections/).
    """
    from assay.catalog.view import summary_row
    from assay.errors import UsageError
    from assay.schema.attack import attack_data

    catalog = _load(path or _catalog_path(None))
    attack = attack_data(attack_version)
    detections = list(catalog.detections)
    if technique:
        wanted = technique.upper()
        detections = [d for d in detections if d.detection.technique == wanted
                      or d.detection.technique.startswith(wanted + ".")]
    if severities:
        detections = [d for d in detections if d.detection.severity in severities]
    if tactic:
        found = attack.tactic(tactic)
        if found is None:
            from assay.errors import did_you_mean

            names = [t.shortname for t in attack.tactics] + [t.id for t in attack.tactics]
            suggestion = did_you_mean(tactic, names)
            raise UsageError(f"unknown ATT&CK tactic {tactic!r} in ATT&CK v{attack.version}",
                             hint=f"did you mean {suggestion}?" if suggestion else
                             f"tactics: {', '.join(t.shortname for t in attack.tactics)}")
        detections = [d for d in detections if (t := attack.technique(d.detection.technique)) is not None
                      and found.shortname in t.tactics]
    rows = [summary_row(d, attack) for d in sorted(detections, key=lambda d: (d.detection.technique, d.id))]
    if output_format == "json":
        emit_json(rows)
        return
    print_table(
        ["id", "technique", "title", "severity", "forms", "scenarios"],
        [[row["id"], f"{row['technique']} {row['technique_name'] or ''}".strip(), row["title"], row["severity"],
          ",".join(row["forms"]),
          f"{row['scenarios']['total']} ({row['scenarios']['attack']} attack, {row['scenarios']['benign']} benign)"]
         for row in rows],
        title=f"{len(rows)} detection(s)" if is_tty() else None,
    )


COMMANDS: list[click.Command] = [init_command, lint_command, show_command, list_command]
