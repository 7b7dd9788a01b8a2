#!/usr/bin/env python3
"""Generate Assay's compact, packaged ATT&CK Enterprise table from ATT&CK data (run by hand, never at run time).

Input: either the ATT&CK facts file in ``../shared/data/attack/`` (``enterprise-attack-vX.json``: tactics,
techniques, detection strategies) or an original STIX 2.1 bundle from mitre/cti or mitre-attack/attack-stix-data.
Output: ``src/assay/schema/attack/enterprise-v<version>.json``, one technique per line so reviews show real diffs.

    python scripts/gen_attack.py ../shared/data/attack/enterprise-attack-v18.1.json
    python scripts/gen_attack.py enterprise-attack-19.0.json --version 19.0
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "src" / "assay" / "schema" / "attack"


def _attack_external_id(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    for ref in obj.get("external_references", []):
        if ref.get("source_name") == "mitre-attack":
            return ref.get("external_id"), ref.get("url")
    return None, None


def from_facts(data: dict[str, Any]) -> dict[str, Any]:
    """The shared facts file (already flat) → the packaged table."""
    strategies: dict[str, list[str]] = {}
    for strategy in data.get("detection_strategies", []):
        for technique_id in strategy["techniques"]:
            strategies.setdefault(technique_id, []).append(strategy["id"])
    techniques = []
    for technique in data["techniques"]:
        techniques.append({
            "id": technique["id"],
            "name": technique["name"],
            "tactics": technique.get("tactics", []),
            "platforms": technique.get("platforms", []),
            "url": technique["url"],
            "deprecated": bool(technique.get("deprecated")),
            "revoked": bool(technique.get("revoked")),
            "revoked_by": technique.get("revoked_by"),
            "detection_strategies": sorted(strategies.get(technique["id"], [])),
        })
    return {
        "source": data.get("source", "mitre/cti enterprise-attack"),
        "tactics": data["tactics"],
        "techniques": techniques,
        "detection_strategies": [
            {"id": s["id"], "name": s["name"], "url": s["url"]} for s in data.get("detection_strategies", [])
        ],
    }


def from_stix(bundle: dict[str, Any]) -> dict[str, Any]:
    """An original STIX 2.1 bundle → the packaged table (tactic order from the matrix object)."""
    objects = bundle["objects"]
    by_stix_id = {obj["id"]: obj for obj in objects}
    tactics_by_ref: dict[str, dict[str, Any]] = {}
    for obj in objects:
        if obj["type"] == "x-mitre-tactic":
            external_id, url = _attack_external_id(obj)
            tactics_by_ref[obj["id"]] = {"id": external_id, "shortname": obj["x_mitre_shortname"],
                                         "name": obj["name"], "url": url}
    matrix = next(obj for obj in objects if obj["type"] == "x-mitre-matrix")
    tactics = [tactics_by_ref[ref] for ref in matrix["tactic_refs"]]
    revoked_by: dict[str, str] = {}
    detects: dict[str, list[str]] = {}
    for obj in objects:
        if obj["type"] != "relationship":
            continue
        if obj["relationship_type"] == "revoked-by":
            target = by_stix_id.get(obj["target_ref"])
            if target:
                revoked_by[obj["source_ref"]] = _attack_external_id(target)[0] or ""
        elif obj["relationship_type"] == "detects":
            source, target = by_stix_id.get(obj["source_ref"]), by_stix_id.get(obj["target_ref"])
            if source and target and source["type"] == "x-mitre-detection-strategy":
                detects.setdefault(_attack_external_id(target)[0] or "", []).append(
                    _attack_external_id(source)[0] or "")
    techniques = []
    strategies = []
    for obj in objects:
        if obj["type"] == "x-mitre-detection-strategy":
            external_id, url = _attack_external_id(obj)
            strategies.append({"id": external_id, "name": obj["name"], "url": url})
        if obj["type"] != "attack-pattern":
            continue
        external_id, url = _attack_external_id(obj)
        if not external_id:
            continue
        techniques.append({
            "id": external_id,
            "name": obj["name"],
            "tactics": [phase["phase_name"] for phase in obj.get("kill_chain_phases", [])
                        if phase.get("kill_chain_name") == "mitre-attack"],
            "platforms": obj.get("x_mitre_platforms", []),
            "url": url,
            "deprecated": bool(obj.get("x_mitre_deprecated")),
            "revoked": bool(obj.get("revoked")),
            "revoked_by": revoked_by.get(obj["id"]),
            "detection_strategies": sorted(detects.get(external_id, [])),
        })
    return {"source": "mitre/cti enterprise-attack (STIX)", "tactics": tactics, "techniques": techniques,
            "detection_strategies": sorted(strategies, key=lambda s: s["id"])}


def guess_version(path: Path, data: dict[str, Any]) -> str:
    text = str(data.get("version", "")) + " " + path.name
    match = re.search(r"v?(\d+\.\d+)", text)
    if not match:
        raise SystemExit(f"{path}: cannot tell the ATT&CK version; pass --version")
    return match.group(1)


def render(table: dict[str, Any]) -> str:
    """Stable JSON: top-level keys in order, one technique/tactic/strategy per line."""
    lines = ["{"]
    keys = list(table)
    for index, key in enumerate(keys):
        value = table[key]
        comma = "," if index < len(keys) - 1 else ""
        if isinstance(value, list):
            lines.append(f"  {json.dumps(key)}: [")
            for item_index, item in enumerate(value):
                item_comma = "," if item_index < len(value) - 1 else ""
                lines.append(f"    {json.dumps(item, ensure_ascii=False)}{item_comma}")
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="ATT&CK facts JSON or STIX 2.1 bundle")
    parser.add_argument("--version", help="ATT&CK version, e.g. 18.1 (guessed from the file otherwise)")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    data = json.loads(args.input.read_text(encoding="utf-8"))
    table = from_stix(data) if data.get("type") == "bundle" else from_facts(data)
    version = args.version or guess_version(args.input, data)
    techniques = sorted(table["techniques"], key=lambda t: t["id"])
    output = {"domain": "enterprise-attack", "version": version, "source": table["source"],
              "tactics": table["tactics"], "techniques": techniques,
              "detection_strategies": table["detection_strategies"]}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    target = args.out_dir / f"enterprise-v{version}.json"
    target.write_text(render(output), encoding="utf-8")
    print(f"wrote {target}: {len(output['tactics'])} tactics, {len(techniques)} techniques, "
          f"{len(output['detection_strategies'])} detection strategies", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
