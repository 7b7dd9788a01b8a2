#!/usr/bin/env python3
"""Write JSON Schemas of detection.yml and tests.yml (from the pydantic models) for editors.

    python scripts/gen_catalog_schema.py          # writes docs/schema/{detection,tests,fixtures}.schema.json

Point an editor's YAML language server at them, e.g. first line of detection.yml:
``# yaml-language-server: $schema=../../docs/schema/detection.schema.json``. A test fails when they are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from assay.catalog.models import Detection, Fixtures, ScenarioFile  # noqa: E402

OUT = ROOT / "docs" / "schema"


def schemas() -> dict[str, str]:
    result = {}
    for name, model in (("detection.schema.json", Detection), ("tests.schema.json", ScenarioFile),
                        ("fixtures.schema.json", Fixtures)):
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}
        result[name] = json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    return result


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in schemas().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
