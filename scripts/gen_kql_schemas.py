"""Generate ``src/assay/schema/kql_tables.json`` (every documented Sentinel / Azure Monitor / Defender XDR table)
from the reference data in ``../shared/data/kql-schemas`` (facts from Microsoft's docs: names, columns, types).

Usage: ``python scripts/gen_kql_schemas.py [--shared DIR] [--out FILE] [--check]``. ``--check`` exits 1 when the
committed file differs from what the shared data generates (``tests/schema/test_kql_tables.py`` does the same).

Merging rules (see docs/kql-support.md, "Tables"):
- A table documented both as a Defender XDR advanced-hunting table and as its Log Analytics copy gets the union:
  the Defender columns in Defender order, then the Sentinel-only ones. A type that differs takes ``dynamic`` when
  either form says dynamic, else the Defender type.
- Column names are case-sensitive in Kusto but not in DuckDB or Spark: a second column whose name differs only
  in case (``ISP`` next to ``Isp``) is dropped and listed under ``dropped``.
- Computed columns: ``TimeGenerated`` is ``Timestamp`` on tables that have a Defender ``Timestamp`` and no
  ``TimeGenerated`` of their own (so a query over either spelling runs), and ``Type`` is the table's name
  wherever the documentation lists a ``Type`` column. Both are DuckDB generated columns: never stored twice.
- Types the reference data keeps as written are mapped: ``enum`` -> string, ``nullable bool`` -> bool, an empty
  type -> string.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "assay" / "schema" / "kql_tables.json"
KUSTO_TYPES = {"string", "int", "long", "real", "bool", "datetime", "timespan", "dynamic", "guid", "decimal"}
ODD_TYPES = {"enum": "string", "nullable bool": "bool", "": "string"}


def shared_dir() -> Path | None:
    """``$ASSAY_SHARED_DATA/kql-schemas`` or ``../shared/data/kql-schemas`` next to the project, if present."""
    env = os.environ.get("ASSAY_SHARED_DATA")
    candidates = [Path(env) / "kql-schemas"] if env else []
    candidates.append(ROOT.parent / "shared" / "data" / "kql-schemas")
    for candidate in candidates:
        if (candidate / "azure-monitor.json").is_file() and (candidate / "defender-xdr.json").is_file():
            return candidate
    return None


def _kusto_type(raw: str, where: str) -> str:
    value = ODD_TYPES.get(raw, raw)
    if value not in KUSTO_TYPES:
        raise SystemExit(f"{where}: unknown Kusto type {raw!r}")
    return value


def _merge(name: str, forms: list[list[list[str]]], dropped: list[str]) -> list[list[str]]:
    """Columns of a table from one or more documented forms (first form first), deduplicated case-insensitively."""
    columns: list[list[str]] = []
    index: dict[str, int] = {}
    for form in forms:
        for column, raw_type in form:
            kusto_type = _kusto_type(raw_type, f"{name}.{column}")
            key = column.lower()
            if key in index:
                existing = columns[index[key]]
                if existing[0] != column:
                    dropped.append(f"{name}.{column} (same name as {existing[0]} but for case)")
                elif existing[1] != kusto_type and "dynamic" in (existing[1], kusto_type):
                    existing[1] = "dynamic"
                continue
            index[key] = len(columns)
            columns.append([column, kusto_type])
    return columns


def _computed(name: str, columns: list[list[str]], had_type: bool,
              first_form: list[list[str]]) -> tuple[list[list[str]], dict[str, str]]:
    """(stored columns, computed column -> SQL expression) for a table; ``first_form`` is the Defender form of a
    Defender table (its own ``TimeGenerated`` makes the alias unnecessary)."""
    first_names = {c[0] for c in first_form}
    lowered = {c[0].lower() for c in columns if c[0] not in ("TimeGenerated", "Type")}
    computed: dict[str, str] = {}
    stored = [c for c in columns if c[0] != "Type"]
    if had_type and "type" not in lowered:
        computed["Type"] = "'" + name.replace("'", "''") + "'"
    elif had_type:
        stored = columns
    timestamp = next((c for c in first_form if c[0] == "Timestamp"), None)
    if timestamp is not None and _kusto_type(timestamp[1], name) == "datetime" and "TimeGenerated" not in first_names:
        stored = [c for c in stored if c[0] != "TimeGenerated"]
        computed["TimeGenerated"] = '"Timestamp"'
    return stored, computed


def generate(shared: Path) -> dict[str, Any]:
    azure = json.loads((shared / "azure-monitor.json").read_text(encoding="utf-8"))
    defender = json.loads((shared / "defender-xdr.json").read_text(encoding="utf-8"))
    sentinel_forms: dict[str, list[list[str]]] = defender["sentinel"]["tables"]
    dropped: list[str] = []
    tables: dict[str, Any] = {}
    for name in sorted(set(azure["tables"]) | set(defender["tables"])):
        forms = []
        if name in defender["tables"]:
            forms.append(defender["tables"][name])
            source = "defender"
            sentinel = sentinel_forms.get(name) or azure["tables"].get(name)
            if sentinel is not None:
                forms.append(sentinel)
                source = "defender+sentinel"
        else:
            forms.append(azure["tables"][name])
            source = "azure-monitor"
        had_type = any(column == "Type" for form in forms for column, _ in form)
        columns = _merge(name, forms, dropped)
        stored, computed = _computed(name, columns, had_type, forms[0])
        entry: dict[str, Any] = {"source": source, "columns": stored}
        if computed:
            entry["computed"] = computed
        tables[name] = entry
    return {
        "generated_by": "scripts/gen_kql_schemas.py from shared/data/kql-schemas (facts from Microsoft's docs, "
                        "CC-BY-4.0 (c) Microsoft); do not edit by hand",
        "sources": {
            "azure-monitor": {"repo": azure["source"]["repo"], "commit": azure["source"]["commit"]},
            "defender-xdr": {"repo": defender["source"]["repo"],
                             "pages": {t: f["commit"] for t, f in sorted(defender["source"]["files"].items())}},
        },
        "dropped": dropped,
        "tables": tables,
    }


def render(data: dict[str, Any]) -> str:
    """JSON with one table per line: compact, and a diff shows which tables changed."""
    lines = ["{"]
    for key in ("generated_by", "sources", "dropped"):
        lines.append(f"{json.dumps(key)}: {json.dumps(data[key], ensure_ascii=False, sort_keys=True)},")
    lines.append('"tables": {')
    items = list(data["tables"].items())
    for position, (name, entry) in enumerate(items):
        comma = "," if position < len(items) - 1 else ""
        lines.append(f"{json.dumps(name)}: {json.dumps(entry, ensure_ascii=False, separators=(',', ':'))}{comma}")
    lines.append("}}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shared", type=Path, help="folder with azure-monitor.json and defender-xdr.json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 when --out differs from the generated text")
    args = parser.parse_args(argv)
    shared = args.shared or shared_dir()
    if shared is None:
        print("no shared/data/kql-schemas found: pass --shared DIR or set ASSAY_SHARED_DATA", file=sys.stderr)
        return 2
    text = render(generate(shared))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is out of date: run python scripts/gen_kql_schemas.py", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {len(generate(shared)['tables'])} tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
