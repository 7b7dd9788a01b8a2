"""Evaluate a detection's Sigma correlation rule on each scenario's synthesized telemetry (the runner can't yet)."""
import sys
from pathlib import Path
from assay.catalog import load_detection
from assay.sigma import load_rule, evaluate
from assay.verify.runner import scenario_data, find_shared_data

folder, full_rule = Path(sys.argv[1]), Path(sys.argv[2])
loaded = load_detection(folder)
rule = load_rule(full_rule)
shared = find_shared_data()
bad = 0
for sc in loaded.scenarios:
    exp = sc.expected.outcome("sigma")
    with scenario_data(sc, ["sysmon", "security", "defender"], shared) as data:
        if data.skip_reason:
            print(sc.id, "SKIP", data.skip_reason); continue
        for schema, engine in data.engines.items():
            ev = evaluate(rule, engine)
            routes = [(r.route, r.status, r.rows_in_route, r.missing) for r in ev.routes]
            fired = bool(ev.correlation_hits)
            verdict = "fires" if fired else "does-not-fire"
            ok = verdict == exp
            hits = [(h.group, h.start, h.end, h.value) for h in ev.correlation_hits]
            bad += not ok
            print(f"{sc.id:45s} {schema:9s} expected={exp:14s} got={verdict:14s} {'ok' if ok else 'FAIL'} {routes} {hits}")
print("failures:", bad)
