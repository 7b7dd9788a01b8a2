"""``make demo``: the main job on the bundled data, step by step, saying what each step did.

Each stage adds its step here as it lands; the demo stays runnable at every commit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assay.demo")
    parser.add_argument("--out", default="build/demo", help="folder for the demo's outputs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    click.echo("Assay demo: nothing implemented yet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
