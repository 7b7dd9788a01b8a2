"""Benchmark: scenario synthesis, the proof of the CMSTP detection, and the proof of the whole catalog
(`assay test detections/`), in scenarios per second.

    .venv/bin/python bench/bench_proof.py [--synth-rounds 50] [--skip-catalog]

Prints synthesis throughput (events/s over every CMSTP scenario with an activity), then the proof's wall and CPU
time, per scenario, and how the time splits between preparing telemetry (synthesize + ingest into fresh in-memory
DuckDBs) and running the forms. Baseline: the first runner compiled the Sigma rule through pySigma once per
database and rendered ECS by default: 12.6 s for three scenarios of the CMSTP rule (Sigma only); compiling once and
making ECS opt-in brought that to 6.6 s, with ingestion (a fixed cost per fresh database) the largest part left.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CMSTP = ROOT / "detections" / "T1218.003-cmstp"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synth-rounds", type=int, default=50)
    parser.add_argument("--skip-catalog", action="store_true", help="only CMSTP (skip the whole-catalog proof)")
    args = parser.parse_args()
    from assay.catalog.loader import load_detection
    from assay.verify.runner import run_paths
    from assay.verify.synth import synthesize

    loaded = load_detection(CMSTP)
    scenarios = [s for s in loaded.scenarios if s.activity is not None]
    started = time.perf_counter()
    events = 0
    for _ in range(args.synth_rounds):
        for scenario in scenarios:
            telemetry = synthesize(scenario)
            events += len(telemetry.sysmon) + len(telemetry.security) + len(telemetry.ecs) + sum(
                len(rows) for rows in telemetry.defender.values())
    synth_seconds = time.perf_counter() - started
    print(f"synthesis: {events} events in {synth_seconds:.2f} s = {events / synth_seconds:,.0f} events/s "
          f"({len(scenarios)} scenarios x {args.synth_rounds} rounds, every schema)")

    run_paths([CMSTP])  # warm imports (pySigma, sqlglot dialects, the KQL engine)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    report = run_paths([CMSTP])
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    detection = report.detections[0]
    forms_ms = sum(r.duration_ms or 0.0 for r in detection.results())
    count = len(detection.scenarios)
    print(f"proof of {detection.technique} ({count} scenarios, {report.summary.results} checks, "
          f"{detection.proof_status}): wall {wall:.2f} s, CPU {cpu:.2f} s, {wall / count:.2f} s/scenario")
    print(f"  running the forms: {forms_ms / 1000:.2f} s; preparing telemetry (synthesize + ingest) and "
          f"reporting: {wall - forms_ms / 1000:.2f} s")
    if args.skip_catalog:
        return 0 if report.summary.ok else 1
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    catalog = run_paths([ROOT / "detections"])
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    summary = catalog.summary
    print(f"proof of the catalog ({summary.detections} detections, {summary.scenarios} scenarios, "
          f"{summary.results} checks; {summary.passed} passed, {summary.failed} failed, {summary.errors} errors): "
          f"wall {wall:.1f} s, CPU {cpu:.1f} s = {summary.scenarios / wall:.1f} scenarios/s "
          f"({summary.scenarios / cpu:.1f} per CPU-second)")
    slowest = sorted(((sum(r.duration_ms or 0.0 for r in d.results()), d.technique, len(d.scenarios))
                      for d in catalog.detections), reverse=True)[:5]
    print("  slowest detections (time in forms): " + ", ".join(
        f"{technique} {ms / 1000:.1f} s/{count} scenarios" for ms, technique, count in slowest))
    return 0 if report.summary.ok and catalog.summary.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
