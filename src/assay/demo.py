"""``make demo``: the main job on the bundled data, step by step, saying what each step did.

Each stage adds its step here as it lands; the demo stays runnable at every commit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[2]


def step_catalog(out: Path) -> None:
    """Lint the catalog, then show the CMSTP detection (the full page goes to ``<out>/T1218.003-cmstp.txt``)."""
    from assay.catalog import lint_catalog, load_catalog
    from assay.catalog.view import attack_context, detection_document
    from assay.cli.catalog_render import render_plain
    from assay.schema.attack import attack_data

    report = lint_catalog(ROOT / "detections")
    click.echo(f"[catalog] assay lint detections/: {report.detections_checked} detection(s), "
               f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    for issue in report.errors[:5]:
        click.echo(f"[catalog]   {issue.location(ROOT)}: {issue.message}")
    attack = attack_data()
    loaded = load_catalog(ROOT / "detections").find("T1218.003")[0]
    context = attack_context(loaded, attack)
    page = out / "T1218.003-cmstp.txt"
    page.write_text(render_plain(detection_document(loaded, attack)), encoding="utf-8")
    kinds = [s.kind for s in loaded.scenarios]
    click.echo(f"[catalog] assay show T1218.003: {loaded.detection.title} | "
               f"{', '.join(t.name for t in context.tactics)} > {context.technique_label} > "
               f"{context.subtechnique_label} | severity {loaded.detection.severity} | forms "
               f"{', '.join(loaded.forms)} | {kinds.count('attack')} attack + {kinds.count('benign')} benign "
               f"scenarios -> {page}")


def step_ingest(out: Path) -> Path:
    """Ingest the bundled sample ``samples/cmstp-case`` into ``<out>/demo.duckdb`` and print the summary."""
    from assay.ingest import ingest_paths

    database = out / "demo.duckdb"
    # A fresh database each run, so rerunning the demo does not double the rows.
    for stale in (database, database.with_name(database.name + ".wal")):
        stale.unlink(missing_ok=True)
    summary = ingest_paths([ROOT / "samples" / "cmstp-case"], db=database)
    click.echo(f"[ingest] {summary.records_read} records from {len(summary.sources)} files "
               f"({summary.bad_records} bad) -> {database}")
    for table, rows in summary.rows_per_table.items():
        click.echo(f"[ingest]   {table:<22} {rows:>6} rows")
    return database


def step_sigma(out: Path) -> None:
    """Run the CMSTP Sigma rule on ``<out>/demo.duckdb`` (from the ingest step): hits per route with their
    evidence, then the conversion status for every target platform."""
    from assay.engine import DuckDBEngine
    from assay.sigma import convert_all, evaluate, load_rule

    rule = load_rule(ROOT / "detections" / "T1218.003-cmstp")
    with DuckDBEngine(out / "demo.duckdb", read_only=True) as engine:
        outcome = evaluate(rule, engine)
        click.echo(f"[sigma] {rule.title}: {len(outcome.event_ids)} event(s) matched")
        for route in outcome.routes:
            click.echo(f"[sigma]   {route.route:<20} {route.message}")
        if outcome.event_ids:
            ids = ", ".join(str(i) for i in outcome.event_ids)
            rows = engine.run('SELECT "AssayEventId", "SourceFile", "SourceRecord", '
                              'coalesce("Fields"[\'CommandLine\'], "Fields"[\'ProcessCommandLine\']) '
                              f'FROM "RawEvents" WHERE "AssayEventId" IN ({ids}) ORDER BY 1').rows
            for event_id, source, record, command_line in rows:
                click.echo(f"[sigma]   event {event_id} {Path(str(source)).name}#{record}: {command_line}")
    statuses = ", ".join(f"{c.target} {c.status}" for c in convert_all(rule))
    click.echo(f"[sigma] assay convert: {statuses}")


def step_kql(out: Path) -> None:
    """Run the CMSTP ``sentinel.kql``, unchanged, on ``<out>/demo.duckdb`` and print its rows with the flag columns.
    ``now()`` is set just after the newest event, so the query's ``ago(24h)`` window covers the recorded sample."""
    import datetime as dt

    from assay import kql
    from assay.engine import DuckDBEngine

    query_path = ROOT / "detections" / "T1218.003-cmstp" / "sentinel.kql"
    with DuckDBEngine(out / "demo.duckdb", read_only=True) as engine:
        latest = engine.run('SELECT max("Timestamp") FROM "DeviceProcessEvents"').rows[0][0]
        now = (latest or dt.datetime(2024, 1, 1)) + dt.timedelta(minutes=1)
        result = kql.run(query_path.read_text(encoding="utf-8"), db=engine, now=now, file=str(query_path))
    click.echo(f"[kql] {query_path.relative_to(ROOT)} (now() = {now:%Y-%m-%d %H:%M}): {len(result.rows)} row(s)")
    names = result.column_names
    flags = [n for n, t in result.columns if t == "bool"]
    for row in result.rows:
        values = dict(zip(names, row, strict=True))
        raised = ", ".join(f for f in flags if values[f]) or "no flags"
        click.echo(f"[kql]   {values['Timestamp']:%Y-%m-%d %H:%M:%S} {values['DeviceName']}: "
                   f"{str(values['ProcessCommandLine'])[:90]} -> {raised}")


def step_hunt(out: Path) -> None:
    """Hunt ``samples/cmstp-case`` with the catalog's Sigma rules plus, when ``../shared/data`` is present, the
    SigmaHQ Windows rules about CMSTP; print the timeline and summary, write ``<out>/hunt-timeline.jsonl``."""
    from assay.hunt.run import hunt
    from assay.hunt.timeline import write_jsonl

    rules: list[Path] = [ROOT / "detections"]
    sigmahq = ROOT.parent / "shared" / "data" / "sigmahq" / "rules" / "windows"
    if sigmahq.is_dir():
        # All ~2,400 SigmaHQ rules compile in minutes on a cold cache; the demo takes those naming CMSTP.
        rules += sorted(p for p in sigmahq.rglob("*.yml") if "cmstp" in p.read_text(encoding="utf-8").lower())
    result = hunt([ROOT / "samples" / "cmstp-case"], rules)
    timeline = out / "hunt-timeline.jsonl"
    with timeline.open("w", encoding="utf-8") as stream:
        write_jsonl(result.hits, stream)
    click.echo(f"[hunt] assay hunt samples/cmstp-case: {result.events} events x {result.rules} rules "
               f"({len(rules) - 1} from SigmaHQ) -> {len(result.hits)} hits in {result.seconds:.1f}s -> {timeline}")
    for hit in result.hits[:12]:
        command_line = dict(hit.fields).get("CommandLine") or dict(hit.fields).get("ProcessCommandLine") or ""
        click.echo(f"[hunt]   {hit.timestamp:%Y-%m-%d %H:%M:%S} {hit.host} [{hit.level}] {hit.rule_title}: "
                   f"{command_line[:70]} ({Path(hit.source_file).name}#{hit.source_record})")
    for title, level, count in result.summary.by_rule:
        click.echo(f"[hunt]   summary: {count:3d} x {level:<8} {title}")
    if result.problems:
        click.echo(f"[hunt]   {len(result.problems)} rule(s) not evaluated, e.g. {result.problems[0].reason}")


def step_proof(out: Path) -> Path:
    """Prove the catalog (``assay test detections/``): print the table, write ``<out>/proof/report.json``,
    ``junit.xml`` and an ATT&CK Navigator layer scored by proof status."""
    import json

    from assay.catalog.loader import load_catalog
    from assay.cli.verify_cmds import print_proof_report
    from assay.verify.coverage import navigator_layer
    from assay.verify.junit import junit_xml
    from assay.verify.report import save_report
    from assay.verify.runner import run_paths

    proof_dir = out / "proof"
    report = run_paths([ROOT / "detections"])
    report_path = save_report(report, proof_dir / "report.json")
    (proof_dir / "junit.xml").write_text(junit_xml(report), encoding="utf-8")
    layer = proof_dir / "navigator-layer.json"
    layer.write_text(json.dumps(navigator_layer(report, load_catalog(ROOT / "detections").detections), indent=2)
                     + "\n", encoding="utf-8")
    click.echo("[proof] assay test detections/: every form of every detection on every scenario")
    print_proof_report(report)
    proven = ", ".join(f"{count} {status}" for status, count in sorted(report.summary.proof.items()))
    click.echo(f"[proof] {proven} -> {report_path}, {proof_dir / 'junit.xml'}, {layer}")
    return report_path


def step_site(out: Path, report: Path | None = None) -> Path:
    """Build the static site into ``<out>/site`` with the proof report (``report``, else ``<out>/proof/report.json``
    or ``build/proof/report.json`` when present) and print where to open it. The demo's last step."""
    from assay.catalog.loader import load_catalog
    from assay.site.builder import build_site

    if report is None:
        report = next((candidate for candidate in (out / "proof" / "report.json",
                                                   ROOT / "build" / "proof" / "report.json")
                       if candidate.is_file()), None)
    site = out / "site"
    build = build_site(load_catalog(ROOT / "detections"), site, report=report)
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(build.statuses.items()))
    proof = f"proof from {report}" if report else "no proof report: results show as not yet run"
    click.echo(f"[site] {build.detection_pages} pages for {build.detections} detection(s) ({statuses}; {proof})")
    for warning in build.warnings:
        click.echo(f"[site]   warning: {warning}")
    click.echo(f"[site] open {build.index.as_uri()}")
    click.echo(f"[site]   or preview it: .venv/bin/assay site serve --out {site} --port 8000")
    return build.index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assay.demo")
    parser.add_argument("--out", default="build/demo", help="folder for the demo's outputs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    click.echo("Assay demo")
    step_catalog(out)
    step_ingest(out)
    step_sigma(out)
    step_kql(out)
    step_hunt(out)
    step_site(out, step_proof(out))  # keep last: the demo ends by saying where to open the site
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
