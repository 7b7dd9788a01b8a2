"""Benchmark: load and lint a catalog of N detections (copies of the CMSTP detection with fresh ids).

    .venv/bin/python bench/bench_catalog.py [--detections 100]

Prints load and lint time per detection. Baseline: the first version parsed YAML with ruamel.yaml's round-trip
loader at about 1 s per detection folder on this 2-core machine; the libyaml composer is the fast path.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CMSTP = ROOT / "detections" / "T1218.003-cmstp"


def make_catalog(target: Path, count: int) -> None:
    for index in range(count):
        folder = target / f"T1218.003-cmstp-{index:04d}"
        shutil.copytree(CMSTP, folder)
        for name in ("detection.yml", "rule.sigma.yml"):
            path = folder / name
            text = path.read_text(encoding="utf-8")
            text = re.sub(r"^id: .*$", f"id: {uuid.uuid4()}", text, count=1, flags=re.MULTILINE)
            path.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detections", type=int, default=100)
    args = parser.parse_args()
    from assay.catalog import clear_cache, lint_catalog, load_catalog

    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        make_catalog(root, args.detections)
        started = time.perf_counter()
        catalog = load_catalog(root)
        load_seconds = time.perf_counter() - started
        assert len(catalog.detections) == args.detections and not catalog.errors, catalog.errors[:3]
        started = time.perf_counter()
        load_catalog(root)
        cached_seconds = time.perf_counter() - started
        clear_cache()
        lint_catalog(root)  # warm pySigma imports
        clear_cache()
        started = time.perf_counter()
        report = lint_catalog(root)  # no shared data next to a temp folder: provenance file checks skip
        lint_seconds = time.perf_counter() - started
    n = args.detections
    print(f"detections: {n}")
    print(f"load (cold):   {load_seconds:.2f} s  ({1000 * load_seconds / n:.1f} ms/detection)")
    print(f"load (cached): {cached_seconds:.3f} s")
    print(f"lint (warm imports, no cache): {lint_seconds:.2f} s  ({1000 * lint_seconds / n:.1f} ms/detection), "
          f"{len(report.errors)} errors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
