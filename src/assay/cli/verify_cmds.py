"""CLI commands for the verify stage: ``assay test``, ``assay coverage``, ``assay atomics import``."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from assay.cli.output import emit_json, print_table
from assay.errors import UsageError

DEFAULT_PROOF_DIR = Path("build") / "proof"
REPORT_NAME = "report.json"
JUNIT_NAME = "junit.xml"
STATUS_MARK = {"pass": "ok", "fail": "FAIL", "skip": "skip", "error": "ERROR"}


def _parse_now(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise UsageError(f"--now {value!r} is not an ISO 8601 date-time",
                         hint="e.g. --now 2026-01-15T12:00:00Z") from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _form_cell(results: list[Any]) -> str:
    """One form's outcome on a scenario: its verdict and status, routes summarised."""
    if not results:
        return "-"
    verdicts = {r.verdict for r in results if r.verdict and r.status != "skip"}
    failing = [r for r in results if r.status in ("fail", "error")]
    passed = [r for r in results if r.status == "pass"]
    skipped = [r for r in results if r.status == "skip"]
    verdict = "/".join(sorted(verdicts)) if verdicts else "-"
    if failing:
        names = ", ".join((r.route or r.form) for r in failing[:3])
        return f"{verdict} {STATUS_MARK[failing[0].status]}" + (f" ({names})" if len(results) > 1 else "")
    if not passed:
        return "skip"
    routes = f" {len(passed)}/{len(results)}" if len(results) > 1 else ""
    return f"{verdict} ok{routes}" + (" +skip" if skipped else "")


def print_proof_report(report: Any, verbose: bool = False) -> None:
    """The proof as people read it: a table per detection, then failures and agreement findings."""
    for detection in report.detections:
        forms = detection.forms or ["sigma", "kql"]
        rows = []
        for scenario in detection.scenarios:
            # Local-engine converted forms are held to the Sigma expectation: keyed by their own name.
            expected = {(r.form if r.form in ("converted:sqlite", "converted:spark-sql", "converted:elastic-eql")
                         else r.base_form): r.expected for r in scenario.results}
            if len(set(expected.values())) > 1:
                shown = ", ".join(f"{form} {outcome}" for form, outcome in expected.items())
            else:
                shown = next(iter(expected.values()), "-")
            row = [scenario.id, scenario.kind, shown]
            row += [_form_cell([r for r in scenario.results if r.form == form]) for form in forms]
            finding = next((f for f in detection.agreement if f.scenario == scenario.id), None)
            row.append({"fail": "DISAGREE", "warn": "disagree (warn)", "known": "known difference",
                        "agree": "agree (stale declaration)"}.get(finding.status, "") if finding else "agree")
            rows.append(row)
        print_table(["scenario", "kind", "expected", *forms, "agreement"], rows,
                    title=f"{detection.technique} {detection.title} — {detection.proof_status}")
        for message in detection.errors:
            click.echo(f"  error: {message}")
        for scenario in detection.scenarios:
            for note in scenario.telemetry_notes:
                click.echo(f"  note {scenario.id}: {note}")
            for result in scenario.results:
                if result.status in ("fail", "error") or (verbose and result.status == "skip"):
                    click.echo(f"  {STATUS_MARK[result.status]} {scenario.id} [{result.key}]: {result.reason}")
                    if result.status != "skip":
                        for row in result.evidence[:2]:
                            click.echo("      evidence: " + json.dumps(row.values, ensure_ascii=False, default=str))
        for finding in detection.agreement:
            if finding.status == "agree" and not verbose:
                continue
            verdicts = ", ".join(f"{k}={v}" for k, v in finding.verdicts.items())
            label = {"fail": "DISAGREE", "warn": "disagree", "known": "known difference", "agree": "stale"}
            click.echo(f"  {label[finding.status]} {finding.scenario}: {verdicts}")
            if finding.operator:
                click.echo(f"      operator: {finding.operator}")
            if finding.explanation:
                click.echo(f"      {finding.explanation}")
            if finding.declared_reason and verbose:
                click.echo(f"      declared: {finding.declared_reason}")
    summary = report.summary
    click.echo(f"{summary.detections} detection(s), {summary.scenarios} scenario(s), {summary.results} check(s): "
               f"{summary.passed} passed, {summary.failed} failed, {summary.errors} error(s), "
               f"{summary.skipped} skipped; agreement: {summary.disagreements} undeclared disagreement(s), "
               f"{summary.known_differences} known difference(s)")


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--form", "forms", multiple=True, type=click.Choice(["sigma", "kql", "converted"]),
              help="Run only these forms (repeatable). Default: every form the detection has.")
@click.option("--format", "output_format", type=click.Choice(["table", "json", "junit", "sarif"]), default="table",
              show_default=True, help="What to print: a table for people, the JSON report, or JUnit XML.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=DEFAULT_PROOF_DIR, show_default=True,
              help=f"Folder for {REPORT_NAME} (read by the site and `assay coverage`) and {JUNIT_NAME}.")
@click.option("--agreement", type=click.Choice(["fail", "warn"]), default="fail", show_default=True,
              help="Undeclared disagreements between forms fail the run, or only warn.")
@click.option("--now", "now_text", metavar="ISO",
              help="Fixed 'now' for the KQL's ago() (default: each scenario's start + 1 hour).")
@click.option("--shared-data", type=click.Path(path_type=Path, file_okay=False),
              help="Folder with the real recordings (default: $ASSAY_SHARED_DATA or ../shared/data).")
@click.option("--telemetry", "telemetry", multiple=True,
              type=click.Choice(["sysmon", "security", "windows", "defender", "ecs"]),
              help="Schemas the Sigma rule runs on (repeatable). Default: sysmon, security, windows (System, "
                   "PowerShell, Task Scheduler channels), defender; add ecs to also prove it through Winlogbeat "
                   "documents.")
@click.option("--scenario", "scenario_ids", multiple=True, metavar="ID",
              help="Run only this scenario (repeatable); the detections without it are left out.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=None,
              help="Detections proven in parallel worker processes (default: one per core; 1 runs in this "
                   "process). A single detection's scenarios run in this many threads.")
@click.option("--converted", "converted", multiple=True, metavar="TARGET",
              help="Converted forms to execute (repeatable): microsoft-xdr (our KQL engine), sqlite (sqlite3), "
                   "spark-sql (local PySpark), elastic-eql (the optional eql package), or all. "
                   "Default: microsoft-xdr and sqlite.")
@click.option("--baseline", type=click.Path(path_type=Path, dir_okay=False),
              help="A previous report.json: list the checks that regressed or got fixed since.")
@click.option("-v", "--verbose", is_flag=True, help="Also list skipped checks and declared differences.")
def prove_command(paths: tuple[Path, ...], forms: tuple[str, ...], output_format: str, out_dir: Path,
                  agreement: str, now_text: str | None, shared_data: Path | None, telemetry: tuple[str, ...],
                  scenario_ids: tuple[str, ...], jobs: int | None, converted: tuple[str, ...],
                  baseline: Path | None, verbose: bool) -> None:
    """Prove detections: run every form on every scenario and check the forms agree.

    \b
    For each detection under PATHS (default: detections/), each scenario of its tests.yml is synthesized as
    Sysmon, Security, other Windows channels and Defender XDR events (ECS too with --telemetry ecs) or its real
    recording is loaded, each schema is ingested into a fresh in-memory DuckDB, and it is judged in every form:
    the Sigma rule (or correlation rule) on every route it applies to, the native KQL with the detection's alert
    predicate, and the KQL pySigma's Kusto backend converted the rule to.
    Writes OUT/report.json and OUT/junit.xml. Exit 1 on any failure or undeclared disagreement.
    """
    from assay.verify.junit import junit_xml
    from assay.verify.report import compare_reports, load_report, save_report
    from assay.verify.runner import (
        CONVERTED_TARGETS,
        DEFAULT_CONVERTED_TARGETS,
        DEFAULT_SIGMA_TELEMETRY,
        RunOptions,
        run_paths,
        skipped_targets,
    )

    targets = list(paths) or [Path("detections")]
    for target in targets:
        if not target.exists():
            raise UsageError(f"no such file or folder: {target}",
                             hint="pass a detection folder or a folder of detections (default: detections/)")
    targets_wanted = _converted_targets(converted, tuple(CONVERTED_TARGETS), DEFAULT_CONVERTED_TARGETS)
    for name, reason in skipped_targets(targets_wanted).items():
        click.echo(f"note: converted:{name} is not executed here: {reason}", err=True)
    options = RunOptions(
        forms=tuple(forms) if forms else ("sigma", "kql", "converted"),  # type: ignore[arg-type]
        agreement="warn" if agreement == "warn" else "fail", now=_parse_now(now_text),
        shared_data=shared_data, sigma_telemetry=tuple(telemetry) or DEFAULT_SIGMA_TELEMETRY,
        scenarios=tuple(scenario_ids) or None, jobs=jobs if jobs is not None else min(os.cpu_count() or 1, 32),
        converted_targets=targets_wanted)
    if shared_data is not None and not shared_data.is_dir():
        raise UsageError(f"--shared-data {shared_data} is not a folder")
    progress = None
    if sys.stderr.isatty():
        done = [0]

        def progress(detection_id: str, scenario: Any) -> None:
            # One overwritten line on a terminal, so a long proof visibly moves; nothing when piped.
            done[0] += 1
            click.echo(f"\r\033[K{done[0]} scenario(s) proven; last: {scenario.id} ({scenario.status})",
                       err=True, nl=False)

    # Read the baseline first: it may be the very report this run overwrites.
    previous = load_report(baseline) if baseline is not None else None
    report = run_paths(targets, options, on_scenario=progress)
    if progress is not None:
        click.echo("\r\033[K", err=True, nl=False)
    report_path = save_report(report, out_dir / REPORT_NAME)
    junit_path = out_dir / JUNIT_NAME
    junit_path.write_text(junit_xml(report), encoding="utf-8")
    if output_format == "json":
        click.echo(report.model_dump_json(indent=2))
    elif output_format == "junit":
        click.echo(junit_xml(report), nl=False)
    elif output_format == "sarif":
        from assay.catalog import load_catalog
        from assay.verify.sarif import proof_sarif

        loaded = {d.id: d for d in load_catalog(targets).detections}
        emit_json(proof_sarif(report, loaded))
    else:
        print_proof_report(report, verbose)
        if previous is not None:
            changes = compare_reports(previous, report)
            regressions = [c for c in changes if c.regression]
            click.echo(f"since {baseline}: {len(regressions)} regression(s), "
                       f"{sum(1 for c in changes if c.before in ('fail', 'error') and c.after == 'pass')} fixed, "
                       f"{len(changes)} change(s) in all")
            for change in changes:
                marker = "REGRESSION" if change.regression else "changed"
                click.echo(f"  {marker} {change.scenario} [{change.key}]: {change.before or 'absent'} -> "
                           f"{change.after or 'absent'}")
        click.echo(f"report: {report_path}  junit: {junit_path}")
    summary = report.summary
    failed = summary.failed or summary.errors or (summary.disagreements and agreement == "fail")
    if failed:
        raise SystemExit(1)


def _converted_targets(given: tuple[str, ...], known: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
    """--converted values: known target names or ``all``; none given means the default set."""
    if not given:
        return default
    chosen: list[str] = []
    for value in given:
        names = known if value == "all" else tuple(v.strip() for v in value.split(",") if v.strip())
        for name in names:
            if name not in known:
                from assay.errors import did_you_mean

                suggestion = did_you_mean(name, list(known))
                raise UsageError(f"--converted {name!r} is not a converted form Assay executes",
                                 hint=(f"did you mean {suggestion!r}? " if suggestion else "")
                                 + f"choose from {', '.join(known)} or all")
            if name not in chosen:
                chosen.append(name)
    return tuple(chosen)


@click.command("coverage")
@click.argument("catalog_paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=DEFAULT_PROOF_DIR / REPORT_NAME,
              show_default=True, help="The proof report written by `assay test`.")
@click.option("--navigator", "navigator_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write an ATT&CK Navigator layer (JSON, layer format 4.5) scored by proof status.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("--have", "have_text", metavar="SOURCES",
              help="The telemetry you collect, comma-separated: sysmon, security, defender, ecs. Lists which "
                   "detections (and which of their forms) can run on it, and why the others cannot.")
def coverage_command(catalog_paths: tuple[Path, ...], report_path: Path, navigator_path: Path | None,
                     output_format: str, have_text: str | None) -> None:
    """ATT&CK coverage by tactic, scored by proof status (proven / partial / untested / failing).

    \b
    Reads the proof report (run `assay test` first) and, when CATALOG_PATHS are given (default: detections/ if
    it exists), counts catalog detections missing from the report as untested. Tactics are listed in ATT&CK
    matrix order from the packaged ATT&CK data.
    With --have, answers instead: which detections can run on the telemetry you have?
      assay coverage --have sysmon,security
    """
    from assay.catalog.loader import load_catalog
    from assay.verify.coverage import coverage_by_tactic, detection_statuses, navigator_layer
    from assay.verify.report import load_report

    if have_text is not None:
        _coverage_for_sources(catalog_paths, have_text, output_format)
        return

    # The default report may not exist yet (coverage then counts everything untested); a named one must.
    explicit = report_path != DEFAULT_PROOF_DIR / REPORT_NAME
    report = load_report(report_path) if report_path.exists() or explicit else None
    roots = list(catalog_paths) or ([Path("detections")] if Path("detections").is_dir() else [])
    catalog = load_catalog(roots).detections if roots else []
    if report is None and not catalog:
        raise UsageError(f"no proof report at {report_path} and no catalog to read",
                         hint="run `assay test detections/` first, or pass --report FILE")
    detections = detection_statuses(report, catalog)
    rows = coverage_by_tactic(detections)
    if navigator_path is not None:
        layer = navigator_layer(report, catalog)
        navigator_path.parent.mkdir(parents=True, exist_ok=True)
        navigator_path.write_text(json.dumps(layer, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if output_format == "json":
        emit_json({"report": str(report_path) if report else None,
                   "detections": [vars(d) | {"forms": list(d.forms)} for d in detections],
                   "tactics": [row.as_dict() for row in rows],
                   "navigator": str(navigator_path) if navigator_path else None})
        return
    print_table(["tactic", "name", "techniques", "covered", "proven", "partial", "untested", "failing"],
                [[r.id, r.name, r.techniques_total, len(r.techniques), r.count("proven"), r.count("partial"),
                  r.count("untested"), r.count("failing")] for r in rows],
                title="ATT&CK coverage by tactic (techniques with a detection, by proof status)")
    print_table(["detection", "technique", "title", "proof", "forms"],
                [[d.id[:8], d.technique, d.title, d.status, ", ".join(d.forms)] for d in detections],
                title="Detections")
    if navigator_path is not None:
        click.echo(f"navigator layer: {navigator_path}")
    if report is None:
        click.echo(f"note: no proof report at {report_path}; every detection counted as untested")


def _coverage_for_sources(catalog_paths: tuple[Path, ...], have_text: str, output_format: str) -> None:
    """``assay coverage --have``: each detection's forms against the telemetry the user has."""
    from assay.catalog.loader import load_catalog
    from assay.verify.coverage import DATA_SOURCES, data_source_coverage, parse_have

    have = parse_have(have_text)
    roots = list(catalog_paths) or [Path("detections")]
    for root in roots:
        if not root.exists():
            raise UsageError(f"no such file or folder: {root}", hint="pass the catalog folder (default: detections/)")
    catalog = load_catalog(roots)
    rows = data_source_coverage(catalog.detections, have)
    if output_format == "json":
        emit_json({"have": sorted(have), "detections": [row.as_dict() for row in rows],
                   "counts": {status: sum(1 for r in rows if r.status == status)
                              for status in ("runs", "partly", "cannot run")}})
        return
    print_table(["detection", "technique", "title", "on your data", "forms that run", "forms that cannot, and why"],
                [[row.id[:8], row.technique, row.title, row.status,
                  ", ".join(n.form for n in row.forms if n.runs) or "-",
                  "; ".join(f"{n.form}: {n.why}" for n in row.forms if not n.runs) or "-"] for row in rows],
                title=f"Detections on {', '.join(sorted(have))} ({', '.join(DATA_SOURCES[s] for s in sorted(have))})")
    counts = {status: sum(1 for r in rows if r.status == status) for status in ("runs", "partly", "cannot run")}
    click.echo(f"{len(rows)} detection(s): {counts['runs']} run in every form, {counts['partly']} in some forms, "
               f"{counts['cannot run']} cannot run on {', '.join(sorted(have))}")
    for error in catalog.errors:
        click.echo(f"error: {error} (not counted)", err=True)


@click.group("atomics")
def atomics_group() -> None:
    """Atomic Red Team: turn atomic tests into scenario stubs."""


@atomics_group.command("import")
@click.argument("atomics_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--technique", "-t", required=True, help="ATT&CK technique id, e.g. T1218.003.")
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the stubs to this file (default: print them).")
@click.option("--all-platforms", is_flag=True, help="Include tests for Linux and macOS too.")
def atomics_import(atomics_dir: Path, technique: str, out_path: Path | None, all_platforms: bool) -> None:
    """Write tests.yml scenario stubs from the atomic tests of one technique.

    \b
    Each stub carries the test's GUID and name, its command with the default input arguments substituted,
    the executor as parent process (command_prompt -> cmd.exe, powershell -> powershell.exe) and the
    elevation requirement as integrity level. Complete the stubs, then merge them into tests.yml.
    """
    from assay.verify.atomics import import_atomics

    if not atomics_dir.is_dir():
        raise UsageError(f"{atomics_dir} is not a folder", hint="pass the Atomic Red Team atomics folder")
    text = import_atomics(atomics_dir, technique, windows_only=not all_platforms)
    if out_path is None:
        click.echo(text, nl=False)
        return
    if out_path.exists():
        raise UsageError(f"{out_path} exists; not overwriting it", hint="choose another --out or delete the file")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    click.echo(f"wrote {text.count(chr(10) + '- id: ')} scenario stub(s) to {out_path}")


@click.command("new")
@click.argument("technique")
@click.option("--into", "catalog", type=click.Path(path_type=Path, file_okay=False), default=Path("detections"),
              show_default=True, help="The catalog folder to create the detection in.")
@click.option("--slug", help="Folder name after the technique id (default: from the technique's name).")
@click.option("--atomics", "atomics_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Atomic Red Team atomics folder (default: ../shared/data/atomic-red-team/atomics when present).")
@click.option("--author", default="Assay detection engineering", show_default=True, help="The author field.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
def new_command(technique: str, catalog: Path, slug: str | None, atomics_dir: Path | None, author: str,
                output_format: str) -> None:
    """Scaffold a detection folder for TECHNIQUE (e.g. T1003.001) from ATT&CK and its atomic tests.

    \b
    Writes <catalog>/<technique>-<slug>/ with detection.yml (names and tactics from ATT&CK, TODO prose),
    rule.sigma.yml and sentinel.kql to sharpen, and tests.yml: one attack scenario per Windows atomic test,
    the host and user as shared fixtures, and a benign scenario for the first false positive.
    """
    from assay.verify.runner import find_shared_data
    from assay.verify.scaffold import scaffold_detection

    if atomics_dir is None:
        shared = find_shared_data(catalog)
        candidate = shared / "atomic-red-team" / "atomics" if shared else None
        atomics_dir = candidate if candidate is not None and candidate.is_dir() else None
    folder = scaffold_detection(technique, catalog, slug=slug, atomics_dir=atomics_dir, author=author)
    scenarios = (folder / "tests.yml").read_text(encoding="utf-8").count("\n- id: ")
    if output_format == "json":
        emit_json({"folder": str(folder), "scenarios": scenarios,
                   "atomics": str(atomics_dir) if atomics_dir else None})
        return
    click.echo(f"created {folder} ({scenarios} scenario(s){'' if atomics_dir else '; no atomics folder found'})")
    click.echo(f"next: replace the TODOs, then `assay lint {folder}` and `assay test {folder}`")


COMMANDS: list[click.Command] = [prove_command, coverage_command, atomics_group, new_command]

