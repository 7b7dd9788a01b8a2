"""Benchmark: the whole SigmaHQ Windows rule set over EVTX-ATTACK-SAMPLES replicated to ~1M (or 10M) events.

Prints one table: end-to-end events/s (EVTX in, CSV timeline out: the hunt, then the timeline streamed from its
hit store, both timed), the hunt alone, rules compiled/s (cold and from
the cache), peak RSS of the whole process tree, and, measured in the same run, the two baselines: the raw
``evtx`` parse rate (the floor: records as JSON text, nothing else) and one DuckDB query per rule target over
ingested events (measured on a slice and extrapolated linearly, as its cost is rules x events).

    .venv/bin/python bench/bench_hunt.py                    # ~1M events
    .venv/bin/python bench/bench_hunt.py --events 10000000  # ~10M events
    .venv/bin/python bench/bench_hunt.py --events 100000 --skip-cold-compile   # quick look
    .venv/bin/python bench/bench_hunt.py --events 10000000 --skip-cold-compile --skip-baselines
    .venv/bin/python bench/bench_hunt.py --single-file --skip-cold-compile --skip-baselines  # one 1M-event log

Hits go to the hunt's on-disk hit store (assay.hunt.store); the timeline is then streamed from it to a CSV file,
timed and counted in the peak RSS like the hunt itself.

Replication uses hard links (distinct paths, one copy in the page cache), so every copy is a distinct source
file in the timeline. Needs ../shared/data (or $ASSAY_SHARED_DATA).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def shared_data() -> Path:
    env = os.environ.get("ASSAY_SHARED_DATA")
    for candidate in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "data"]:
        if candidate.is_dir():
            return candidate
    sys.exit("shared data not found: set ASSAY_SHARED_DATA or put it at ../shared/data")


class PeakRss:
    """Samples the memory of this process and all its children; keeps the peaks.

    ``peak`` sums each process's RSS every 50 ms (cheap: ``/proc/PID/statm``): forked workers share the parent's
    pages (rules, plan) copy-on-write, so that sum counts shared pages once per process. ``peak_pss`` sums the
    proportional set sizes (a shared page split between the processes sharing it: the memory the process tree
    really holds) every second: reading them walks every page table (``smaps_rollup``), and sampling it every
    50 ms took ~12 CPU-s from a 1M-event hunt on two cores, about a fifth of its speed. Memory moves slowly
    (a worker's unit takes seconds), so the one-second envelope is the peak."""

    PSS_EVERY = 20  # samples (50 ms each)

    def __init__(self) -> None:
        self.peak = 0
        self.peak_pss = 0
        self._samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = 0
        with_pss = self._samples % self.PSS_EVERY == 0
        pss = 0
        for process in _process_tree():
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
                if with_pss:
                    pss += _pss(process)
        self._samples += 1
        if with_pss:
            self.peak_pss = max(self.peak_pss, pss)
        return int(total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self.peak = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._samples = 0
        self.peak_pss = max(self.peak_pss, sum(_pss(process) for process in _process_tree()))


def _process_tree() -> list[psutil.Process]:
    """This process and all its children (the hunt's workers)."""
    me = psutil.Process()
    processes = [me]
    with contextlib.suppress(psutil.Error):
        processes += me.children(recursive=True)
    return processes


def _pss(process: psutil.Process) -> int:
    try:
        return int(getattr(process.memory_full_info(), "pss", 0))
    except (psutil.Error, OSError):
        return 0


def replicate(corpus: Path, copies: int, into: Path) -> list[Path]:
    """``copies`` hard-linked copies of every .evtx file of the corpus, one folder per copy."""
    files = sorted(corpus.rglob("*.evtx"))
    for number in range(copies):
        folder = into / f"copy-{number:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for index, file in enumerate(files):
            target = folder / f"{index:03d}-{file.name}"
            if not target.exists():
                try:
                    os.link(file, target)
                except OSError:
                    shutil.copyfile(file, target)
    return files


def _renumbered(chunk: bytes, next_id: int) -> tuple[bytes, int]:
    """``chunk`` with its records numbered from ``next_id`` on, checksums recomputed (a real log's record ids are
    unique: the timeline names each event by file and record)."""
    data = bytearray(chunk)
    free = int.from_bytes(data[48:52], "little")
    offset, first = 512, next_id
    while offset + 24 <= free and data[offset:offset + 4] == b"\x2a\x2a\x00\x00":
        data[offset + 8:offset + 16] = next_id.to_bytes(8, "little")
        next_id += 1
        offset += int.from_bytes(data[offset + 4:offset + 8], "little")
    for field_offset in (8, 24):  # first record number and id, then last
        data[field_offset:field_offset + 8] = first.to_bytes(8, "little")
        data[field_offset + 8:field_offset + 16] = (next_id - 1).to_bytes(8, "little")
    data[52:56] = zlib.crc32(bytes(data[512:free])).to_bytes(4, "little")
    data[124:128] = zlib.crc32(bytes(data[:120]) + bytes(data[128:512])).to_bytes(4, "little")
    return bytes(data), next_id


def one_big_file(corpus: Path, events: int, into: Path) -> tuple[Path, int]:
    """One EVTX file of about ``events`` records: a file header, then every used chunk of the corpus, repeated
    with its records renumbered (each chunk carries its own checksums, and the parser reads every chunk it is
    given). Returns the path and the record count."""
    import evtx

    from assay.ingest.readers import EVTX_CHUNK_MAGIC, EVTX_CHUNK_SIZE, EVTX_FILE_HEADER_SIZE
    from assay.ingest.sources import EVTX_MAGIC

    header = b""
    chunks: list[bytes] = []
    for file in sorted(corpus.rglob("*.evtx")):
        data = file.read_bytes()
        if len(data) < EVTX_FILE_HEADER_SIZE or not data.startswith(EVTX_MAGIC):
            continue
        header = header or data[:EVTX_FILE_HEADER_SIZE]
        for offset in range(EVTX_FILE_HEADER_SIZE, len(data) - EVTX_CHUNK_SIZE + 1, EVTX_CHUNK_SIZE):
            chunk = data[offset:offset + EVTX_CHUNK_SIZE]
            first, last = int.from_bytes(chunk[8:16], "little"), int.from_bytes(chunk[16:24], "little")
            if chunk.startswith(EVTX_CHUNK_MAGIC) and 1 <= first <= last:  # a used chunk (slots may be empty)
                chunks.append(chunk)
    per_copy = sum(1 for _ in evtx.PyEvtxParser(io.BytesIO(header + b"".join(chunks)), number_of_threads=1,
                                                  validate_checksums=True, skip_errors=True).records_json())
    copies = max(1, math.ceil(events / per_copy))
    into.mkdir(parents=True, exist_ok=True)
    path = into / "Security-and-Sysmon.evtx"
    next_id = 1
    with path.open("wb") as out:
        out.write(header)
        for _ in range(copies):
            for chunk in chunks:
                renumbered, next_id = _renumbered(chunk, next_id)
                out.write(renumbered)
    return path, copies * per_copy


def count_records(files: list[Path]) -> int:
    import evtx

    total = 0
    for file in files:
        total += sum(1 for _ in evtx.PyEvtxParser(str(file), number_of_threads=1).records_json())
    return total


def parse_floor(files: list[Path], repeat: int) -> float:
    """Raw evtx parse rate on one thread, records/s (records as JSON text, nothing else done)."""
    import evtx

    started = time.perf_counter()
    records = 0
    for _ in range(repeat):
        for file in files:
            for _record in evtx.PyEvtxParser(str(file), number_of_threads=1).records_json():
                records += 1
    return records / (time.perf_counter() - started)


def rule_by_rule_baseline(corpus: Path, rule_set: object, max_targets: int | None) -> tuple[float, int, int, float]:
    """(seconds, events, targets, ingest seconds) of one DuckDB query per target over the ingested corpus."""
    from assay.engine import DuckDBEngine
    from assay.hunt.evaluate import enumerate_targets, evaluate_all
    from assay.ingest.pipeline import ingest_sources
    from assay.ingest.sources import discover

    refs = enumerate_targets(rule_set.rules)  # type: ignore[attr-defined]
    if max_targets is not None:
        refs = refs[:max_targets]
    sources, skipped = discover([corpus])
    with DuckDBEngine(None) as engine:
        started = time.perf_counter()
        summary = ingest_sources(sources, engine, skipped=skipped)
        ingest_seconds = time.perf_counter() - started
        started = time.perf_counter()
        evaluate_all(engine, refs)
        seconds = time.perf_counter() - started
    return seconds, summary.records_read, len(refs), ingest_seconds


class _Rows(list[tuple[str, str, str]]):
    """The table's rows; each is also printed as soon as it is measured (a long run shows progress)."""

    def append(self, row: tuple[str, str, str]) -> None:
        super().append(row)
        print(f"  {row[0]}: {row[1]} ({row[2]})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="target event count (default 1M)")
    parser.add_argument("--rules", type=Path, default=None, help="rule folder (default SigmaHQ rules/windows)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("--skip-cold-compile", action="store_true",
                        help="do not measure compiling without the cache (takes minutes)")
    parser.add_argument("--baseline-targets", type=int, default=None,
                        help="limit the rule-by-rule baseline to the first N targets (extrapolated to all)")
    parser.add_argument("--skip-baselines", action="store_true",
                        help="do not measure the raw parse floor nor the rule-by-rule baseline")
    parser.add_argument("--single-file", action="store_true",
                        help="hunt one big EVTX file (the corpus's chunks repeated) instead of many small files: "
                             "shows a single log split over the workers")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where to put the replicated corpus, the hit store and the timeline CSV")
    args = parser.parse_args()

    from assay.hunt.rules import load_hunt_rules
    from assay.hunt.run import hunt

    data = shared_data()
    corpus = data / "evtx-attack-samples"
    rules_dir = args.rules or data / "sigmahq" / "rules" / "windows"
    rows = _Rows()

    files = sorted(corpus.rglob("*.evtx"))
    corpus_records = count_records(files)
    copies = max(1, math.ceil(args.events / corpus_records))
    print(f"corpus: {corpus_records} records in {len(files)} files; {copies} copies -> "
          f"{copies * corpus_records:,} events", flush=True)

    # 1. rules compiled/s: cold (fresh cache, all cores) and warm (the cache every later hunt uses)
    if not args.skip_cold_compile:
        with tempfile.TemporaryDirectory(prefix="assay-bench-cache-") as cold_cache:
            cold = load_hunt_rules([rules_dir], cache_dir=Path(cold_cache), processes=args.workers)
        rows.append(("rules compiled/s, cold (pySigma + lowering, all cores)",
                     f"{cold.files / cold.seconds:,.0f}", f"{cold.files} files in {cold.seconds:.1f}s"))
    load_hunt_rules([rules_dir], processes=args.workers)  # fill the default cache
    warm = load_hunt_rules([rules_dir], processes=args.workers)
    rows.append(("rules loaded/s from the compiled-rule cache", f"{warm.files / warm.seconds:,.0f}",
                 f"{len(warm.rules)} rules, {warm.target_count} routes, {len(warm.problems)} not evaluable"))

    # 2. the floor: raw evtx parsing, one thread
    if not args.skip_baselines:
        floor = parse_floor(files, repeat=3)
        rows.append(("raw evtx parse floor, records/s per thread", f"{floor:,.0f}",
                     "records_json(), nothing else"))

    # 3. end to end: EVTX in, hits in the store, timeline streamed out to CSV
    work = Path(tempfile.mkdtemp(prefix="assay-bench-corpus-", dir=args.work_dir))
    try:
        logs = work / "logs"
        if args.single_file:
            big, big_records = one_big_file(corpus, args.events, logs)
            print(f"single file: {big_records:,} records, {big.stat().st_size / 2**20:,.0f} MiB", flush=True)
        else:
            replicate(corpus, copies, logs)
        with PeakRss() as rss:
            started = time.perf_counter()
            result = hunt([logs], warm, workers=args.workers, store_dir=work)
            seconds = time.perf_counter() - started
        with result, PeakRss() as write_rss:
            store_bytes = result.store.disk_bytes()
            started = time.perf_counter()
            with (work / "timeline.csv").open("w", encoding="utf-8", newline="") as out:
                result.store.write_csv(out)
            write_seconds = time.perf_counter() - started
        csv_bytes = (work / "timeline.csv").stat().st_size
        rows.append(("end to end, EVTX in, CSV timeline out, events/s", f"{result.events / (seconds + write_seconds):,.0f}",
                     f"{seconds + write_seconds:.1f}s: hunt {seconds:.1f}s + timeline {write_seconds:.1f}s"))
        rows.append(("hunt (EVTX in, hits stored, summary), events/s", f"{result.events / seconds:,.0f}",
                     f"{result.events:,} events, {result.hit_count:,} hits, {seconds:.1f}s, "
                     f"{result.candidates:,} candidate events, {result.pairs:,} candidate pairs"))
        rows.append(("peak RSS of the hunt (all processes)", f"{rss.peak / 2**20:,.0f} MiB",
                     f"workers={args.workers or os.cpu_count()}; hit store {store_bytes / 2**20:,.0f} MiB on disk; "
                     "pages shared by the forked workers counted once per process"))
        rows.append(("peak PSS of the hunt (all processes)", f"{rss.peak_pss / 2**20:,.0f} MiB",
                     "proportional set size: shared pages split between the processes sharing them"))
        rows.append(("timeline CSV streamed from the hit store, hits/s",
                     f"{result.hit_count / write_seconds:,.0f}" if write_seconds else "n/a",
                     f"{csv_bytes / 2**20:,.0f} MiB in {write_seconds:.1f}s; "
                     f"peak RSS while writing {write_rss.peak / 2**20:,.0f} MiB"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if args.skip_baselines:
        return _print_rows(rows)

    # 4. baseline: one query per rule target on DuckDB, over the corpus once, extrapolated
    base_seconds, base_events, base_targets, ingest_seconds = rule_by_rule_baseline(corpus, warm,
                                                                                    args.baseline_targets)
    scale = warm.target_count / max(base_targets, 1)
    per_event = base_seconds * scale / max(base_events, 1)
    rows.append(("baseline: one DuckDB query per rule, events/s",
                 f"{1 / per_event:,.0f}" if per_event else "n/a",
                 f"measured on {base_events:,} events x {base_targets} routes in {base_seconds:.1f}s"
                 + (f", extrapolated x{scale:.1f} to all routes" if scale > 1 else "")
                 + f"; evaluation only (ingest took {ingest_seconds:.1f}s more)"))

    return _print_rows(rows)


def _print_rows(rows: list[tuple[str, str, str]]) -> int:
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measure'.ljust(width)}  {'value':>14}  notes")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>14}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
