"""Converted forms on real engines against the Sigma rule, over SigmaHQ's regression samples (real EVTX).

    .venv/bin/python bench/bench_converted_agreement.py [--spark] [--limit N] [--show 20]

For every SigmaHQ rule with a regression sample (../shared/data/sigmahq), the rule's own sample is ingested; the
Sigma form (Assay's evaluator, the reference the test suite pins) must fire on it. The rule is converted by
pySigma's SQLite backend (run on sqlite3) and, with --spark, its Databricks backend (run on local PySpark); each
converted form runs on a ``logs`` table of the sample's events. Prints, per engine: conversions, agreements,
disagreements (with the rule and the converted query), errors, and the time per rule. Not a unit test: the numbers
describe the backends, and they move when the backends do.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _cases(sigmahq: Path) -> list[tuple[str, str, Path]]:
    cases = []
    for info in sorted((sigmahq / "regression_data").rglob("info.yml")):
        document = yaml.safe_load(info.read_text(encoding="utf-8"))
        rule = document["rule_metadata"][0]
        for test in document.get("regression_tests_info") or []:
            if test.get("type") == "evtx":
                cases.append((str(rule["id"]), str(rule.get("title", "")), sigmahq / test["path"]))
    return cases


def _rule_index(sigmahq: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for folder in ("rules", "rules-emerging-threats", "rules-threat-hunting"):
        for path in (sigmahq / folder).rglob("*.yml"):
            found = re.search(r"^id:\s*(\S+)", path.read_text(encoding="utf-8"), re.MULTILINE)
            if found:
                index[found.group(1)] = path
    return index


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spark", action="store_true", help="also run the Spark SQL form (starts a JVM)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N samples")
    parser.add_argument("--show", type=int, default=20, help="disagreements listed per engine")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from assay.engine import DuckDBEngine
    from assay.errors import AssayError
    from assay.ingest.pipeline import ingest_paths
    from assay.sigma import convert, evaluate, load_rule
    from assay.verify.converted import event_records, run_spark, run_sqlite
    from assay.verify.runner import find_shared_data

    shared = find_shared_data(ROOT)
    if shared is None or not (shared / "sigmahq").is_dir():
        print("shared reference data not found (../shared/data or $ASSAY_SHARED_DATA): nothing to measure")
        return 0
    sigmahq = shared / "sigmahq"
    cases = _cases(sigmahq)[: args.limit or None]
    index = _rule_index(sigmahq)
    engines = ["sqlite", *(["spark-sql"] if args.spark else [])]
    session = None
    if args.spark:
        from assay.engine.spark_engine import SparkEngine

        session = SparkEngine("local[1]").session
    tally: dict[str, Counter[str]] = {name: Counter() for name in engines}
    disagreements: dict[str, list[str]] = {name: [] for name in engines}
    seconds: Counter[str] = Counter()
    sigma_fired = 0
    for rule_id, title, sample in cases:
        rule_path = index.get(rule_id)
        if rule_path is None:
            continue
        database = DuckDBEngine()
        ingest_paths([sample], engine=database)
        rule = load_rule(rule_path)
        sigma = bool(evaluate(rule, database).event_ids)
        sigma_fired += sigma
        records = event_records(database)
        database.close()
        for name in engines:
            conversion = convert(rule, name)
            if conversion.query is None:
                tally[name]["not converted"] += 1
                continue
            started = time.perf_counter()
            try:
                result = (run_sqlite(conversion.query, records) if name == "sqlite"
                          else run_spark(conversion.query, records, session))
            except AssayError as error:
                tally[name]["error"] += 1
                disagreements[name].append(f"ERROR {rule_id[:8]} {title}: {str(error)[:160]}")
                continue
            finally:
                seconds[name] += time.perf_counter() - started
            fired = bool(result.rows)
            if fired == sigma:
                tally[name]["agree"] += 1
            else:
                tally[name]["disagree"] += 1
                disagreements[name].append(
                    f"{rule_id[:8]} {title}: sigma {'fires' if sigma else 'quiet'}, {name} "
                    f"{'fires' if fired else 'quiet'} | {conversion.query[:220]}")
    print(f"{len(cases)} regression samples; the Sigma form fired on {sigma_fired}")
    for name in engines:
        runs = sum(tally[name][k] for k in ("agree", "disagree", "error"))
        print(f"{name}: {dict(tally[name])}; {seconds[name] / max(runs, 1) * 1000:.1f} ms per rule on the engine")
        for line in disagreements[name][: args.show]:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
