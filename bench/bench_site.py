"""Benchmark: build the static site for a catalog of N detections (copies of CMSTP spread over N techniques).

    .venv/bin/python bench/bench_site.py [--detections 100]

Prints the time of the pySigma conversions (ten targets per detection) and of rendering and writing the pages,
per detection and per page. Baseline: the first version of the builder (Jinja + Pygments, one page per detection ×
platform, full ATT&CK matrix on the index) on this 2-core machine.
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
    from assay.schema.attack import attack_data

    techniques = sorted(t.id for t in attack_data().techniques.values() if t.usable)
    for index in range(count):
        technique = techniques[(index * 7) % len(techniques)]
        folder = target / f"{technique}-bench-{index:04d}"
        shutil.copytree(CMSTP, folder)
        path = folder / "detection.yml"
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"^id: .*$", f"id: {uuid.uuid4()}", text, count=1, flags=re.MULTILINE)
        text = re.sub(r"^technique: .*$", f"technique: {technique}", text, count=1, flags=re.MULTILINE)
        path.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detections", type=int, default=100)
    args = parser.parse_args()
    from assay.catalog.loader import load_catalog
    from assay.site.builder import build_site, sigma_conversions

    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        make_catalog(root / "catalog", args.detections)
        catalog = load_catalog(root / "catalog")
        assert len(catalog.detections) == args.detections and not catalog.errors, catalog.errors[:3]
        sigma_conversions(catalog.detections[0])  # warm pySigma imports
        started = time.perf_counter()
        conversions = {loaded.id: sigma_conversions(loaded) for loaded in catalog.detections}
        convert_seconds = time.perf_counter() - started
        started = time.perf_counter()
        build = build_site(catalog, root / "site", conversions=lambda loaded: conversions[loaded.id])
        render_seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in (root / "site").rglob("*") if p.is_file())
    n = args.detections
    pages = build.detection_pages
    print(f"detections: {n}, detection pages: {pages}, files: {len(build.files)}, size: {size / 1e6:.1f} MB")
    print(f"conversions (10 targets): {convert_seconds:.2f} s  ({1000 * convert_seconds / n:.0f} ms/detection)")
    print(f"render + write:           {render_seconds:.2f} s  ({1000 * render_seconds / pages:.1f} ms/page, "
          f"{pages / render_seconds:.0f} pages/s)")
    print(f"total:                    {convert_seconds + render_seconds:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
