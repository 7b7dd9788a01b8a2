"""Engine open cost: a fresh process's first DuckDBEngine (schemas loaded, tables created) and then the median of
many more opens (what hunt workers and test scenarios pay), in memory.

    PYTHONPATH=src python bench/bench_engine_open.py [--opens 200]

Baseline (main before kql_tables.json, 2 shared cores): see docs/kql-support.md "Tables".
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--opens", type=int, default=200)
    args = parser.parse_args()
    start = time.perf_counter()
    from assay.engine import DuckDBEngine

    imported = time.perf_counter()
    first = DuckDBEngine(None)
    opened = time.perf_counter()
    tables = len(first.table_names())
    first.close()
    times = []
    for _ in range(args.opens):
        begin = time.perf_counter()
        engine = DuckDBEngine(None)
        times.append(time.perf_counter() - begin)
        engine.close()
    times.sort()
    print(f"import assay.engine: {(imported - start) * 1000:.1f} ms")
    print(f"first open (schemas loaded + {tables} tables created): {(opened - imported) * 1000:.1f} ms")
    print(f"next {args.opens} opens: median {statistics.median(times) * 1000:.2f} ms, "
          f"p95 {times[int(len(times) * 0.95) - 1] * 1000:.2f} ms")


if __name__ == "__main__":
    main()
