"""Benchmark: EVTX → populated DuckDB tables (records/s) against the raw ``evtx`` parse floor, and peak RSS.

The input is ``../shared/data/evtx-attack-samples`` replicated in memory (each pass re-reads every file's bytes
as a new source) up to ``--records`` (default 1M; ``--records 10000000`` for 10M). Each configuration runs in a
fresh subprocess so peak RSS is its own.

    .venv/bin/python bench/bench_ingest.py                  # 1M records, 1 and 2 threads (DuckDB and EVTX parser)
    .venv/bin/python bench/bench_ingest.py --records 10000000 --threads 2
    .venv/bin/python bench/bench_ingest.py --records 200000 --threads 1 --stages   # CPU-seconds per stage
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_corpus(shared: Path) -> list[tuple[str, bytes, int]]:
    import evtx

    corpus = []
    for path in sorted((shared / "evtx-attack-samples").rglob("*.evtx")):
        data = path.read_bytes()
        count = sum(1 for _ in evtx.PyEvtxParser(io.BytesIO(data), number_of_threads=1, validate_checksums=True,
                                                   skip_errors=True).records_json())
        if count:
            corpus.append((str(path), data, count))
    return corpus


def plan(corpus: list[tuple[str, bytes, int]], records: int) -> list[tuple[str, bytes]]:
    """Sources (label, bytes) repeating the corpus until ``records`` records are reached."""
    chosen: list[tuple[str, bytes]] = []
    total, copy = 0, 0
    while total < records:
        for label, data, count in corpus:
            chosen.append((f"{label}#copy{copy}", data))
            total += count
            if total >= records:
                break
        copy += 1
    return chosen


def run_floor(shared: Path, records: int) -> dict[str, float]:
    import warnings

    import evtx

    sources = plan(load_corpus(shared), records)
    cpu_before = cpu_now()
    started = time.perf_counter()
    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _, data in sources:
            for _record in evtx.PyEvtxParser(io.BytesIO(data), number_of_threads=1, validate_checksums=True,
                                             skip_errors=True).records_json():
                count += 1
    seconds = time.perf_counter() - started
    return {"records": count, "seconds": seconds, "rate": count / seconds, "cpu_before": cpu_before}


def time_stages(stages: dict[str, float]) -> None:
    """Wrap the pipeline's stages so each adds the CPU time of the thread running it to ``stages``.

    With one DuckDB thread, DuckDB works in the calling thread, so a statement's CPU is that thread's; the reader
    runs in the main thread and the loader (store write, commits) in its own.
    """
    import time as time_module
    from collections.abc import Callable, Iterator
    from typing import Any

    from assay.ingest import pipeline, writer

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time_module.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                stages[name] = stages.get(name, 0.0) + time_module.thread_time() - started
        return wrapper

    # The pipeline's module globals are swapped (the names it imported from readers and writer).
    pipeline_globals = vars(pipeline)
    read_source = pipeline_globals["read_source"]

    def timed_read(*args: Any, **kwargs: Any) -> Iterator[Any]:
        batches = read_source(*args, **kwargs)
        while True:
            started = time_module.thread_time()
            batch = next(batches, None)
            stages["read (EVTX parse, batches)"] = (stages.get("read (EVTX parse, batches)", 0.0)
                                                    + time_module.thread_time() - started)
            if batch is None:
                return
            yield batch

    def timed_mappings(engine: Any, mappings: Any, *args: Any, **kwargs: Any) -> dict[str, int]:
        added: dict[str, int] = {}
        for mapping in mappings:
            added |= timed(f"mapping {mapping.name}", writer.run_mappings)(engine, (mapping,), *args, **kwargs)
        return added

    pipeline_globals["read_source"] = timed_read
    writer.RawEventWriter.write = timed("store write (JSON pass, insert)", writer.RawEventWriter.write)  # type: ignore[method-assign]
    pipeline_globals["field_report"] = timed("field report", writer.field_report)
    pipeline_globals["run_mappings"] = timed_mappings
    pipeline_globals["events_without_mapping"] = timed("events without mapping", writer.events_without_mapping)


def run_ingest(shared: Path, records: int, threads: int, stages: dict[str, float] | None = None) -> dict[str, float]:
    from assay.engine import DuckDBEngine
    from assay.ingest.pipeline import DEFAULT_MEMORY_LIMIT, ingest_sources
    from assay.ingest.sources import EVTX, Source

    if stages is not None:
        time_stages(stages)

    sources = [Source(label, functools.partial(io.BytesIO, data), EVTX) for label, data in
               plan(load_corpus(shared), records)]
    with tempfile.TemporaryDirectory() as folder:
        engine = DuckDBEngine(Path(folder) / "bench.duckdb", threads=threads)
        engine.connection.execute("SET memory_limit = $1", [DEFAULT_MEMORY_LIMIT]).fetchall()
        cpu_before = cpu_now()
        started = time.perf_counter()
        summary = ingest_sources(sources, engine, reader_threads=threads)
        closing = cpu_now()
        engine.close()  # the final checkpoint is part of the load
        if stages is not None:
            stages["close (final checkpoint)"] = cpu_now() - closing
        seconds = time.perf_counter() - started
        database_mib = (Path(folder) / "bench.duckdb").stat().st_size / 2**20
    return {"records": summary.records_read, "seconds": seconds, "rate": summary.records_read / seconds,
            "database_mib": database_mib,
            "typed_rows": sum(n for t, n in summary.rows_per_table.items() if t != "RawEvents"),
            "bad": summary.bad_records, "cpu_before": cpu_before}


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(args: argparse.Namespace) -> None:
    shared = Path(args.shared)
    stages: dict[str, float] | None = {} if args.stages else None
    result = run_floor(shared, args.records) if args.mode == "floor" else run_ingest(shared, args.records,
                                                                                       args.threads, stages)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime - result.pop("cpu_before")
    result["cpu_rate"] = result["records"] / result["cpu_seconds"]
    if stages is not None:
        # What no wrapped stage took: commits between load transactions, gathering batches, summaries.
        stages["rest (commits, gathering, summary)"] = result["cpu_seconds"] - sum(stages.values())
        result["stages"] = stages  # type: ignore[assignment]
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2], help="DuckDB thread counts to run")
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--stages", action="store_true",
                        help="also print the CPU-seconds of each stage (read, store write, field report, each "
                             "mapping, commits, final checkpoint); meaningful with --threads 1")
    parser.add_argument("--mode", choices=["floor", "ingest"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        args.threads = args.threads[0]
        child(args)
        return
    if not (Path(args.shared) / "evtx-attack-samples").is_dir():
        sys.exit(f"shared data not found at {args.shared} (pass --shared)")

    def spawn(mode: str, threads: int = 1) -> dict[str, float]:
        command = [sys.executable, __file__, "--mode", mode, "--records", str(args.records),
                   "--threads", str(threads), "--shared", args.shared] + (["--stages"] if args.stages else [])
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return dict(json.loads(output.strip().splitlines()[-1]))

    # Wall-clock rates depend on what else the machine runs; records per CPU-second do not (on one thread they
    # are the one-core rate), so the share of the floor is given on both.
    floor = spawn("floor")
    print(f"evtx parse floor (1 thread):      {floor['records']:>10,.0f} records  wall {floor['rate']:>8,.0f} rec/s  "
          f"CPU {floor['cpu_rate']:>8,.0f} rec/CPU-s  peak RSS {floor['peak_rss_mib']:,.0f} MiB")
    for threads in args.threads:
        result = spawn("ingest", threads)
        print(f"ingest → DuckDB tables (threads={threads}): {result['records']:>10,.0f} records  "
              f"wall {result['rate']:>8,.0f} rec/s ({result['rate'] / floor['rate']:.0%} of floor)  "
              f"CPU {result['cpu_rate']:>8,.0f} rec/CPU-s ({result['cpu_rate'] / floor['cpu_rate']:.0%})  "
              f"{result['seconds']:.0f} s  typed rows {result['typed_rows']:,.0f}  "
              f"peak RSS {result['peak_rss_mib']:,.0f} MiB  database {result['database_mib']:,.0f} MiB")
        stages = result.get("stages")
        if isinstance(stages, dict):
            for name, seconds in sorted(stages.items(), key=lambda item: -item[1]):
                print(f"    {name:42s} {seconds:7.2f} CPU-s  {seconds / result['records'] * 1e6:6.1f} µs/record")


if __name__ == "__main__":
    main()
