"""Microsoft's KQL parser/binder as an oracle (development aid, opt-in).

Runs ``oracle/kusto_oracle.js`` under Node with ``@kusto/language-service-next`` and compares, query by query,
whether Microsoft's analyzer reports errors with whether Assay's ``kql.check`` raises. Set
``ASSAY_KUSTO_ORACLE=/path/to/node_modules`` (``npm install @kusto/language-service-next``) to run it; the
package is never a dependency of Assay.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from assay import kql
from assay.errors import AssayError

HERE = Path(__file__).parent
ORACLE = os.environ.get("ASSAY_KUSTO_ORACLE")

# Where the two disagree, with the reason; the test fails when this list is no longer exact.
KNOWN_DISAGREEMENTS = {
    "make-timespan-function-1": "Microsoft's analyzer rejects this documented example (the docs show its output)",
    "summarize-operator-6": "the analyzer takes count(x) for countif; the documented example runs in Kusto",
    "summarize-operator-9": "the analyzer takes count(x) for countif; the documented example runs in Kusto",
    "type error": "Assay refuses string == long rather than guess Kusto's run-time conversion (no wrong answers)",
}


def oracle_errors(queries: dict[str, str], tables: dict[str, list[tuple[str, str]]]) -> dict[str, list[str]]:
    assert ORACLE is not None
    schema_file = HERE / "oracle" / ".tables.json"
    schema_file.write_text(json.dumps(tables), encoding="utf-8")
    try:
        completed = subprocess.run(
            ["node", str(HERE / "oracle" / "kusto_oracle.js"), str(schema_file)],
            input="\n".join(json.dumps({"id": i, "text": t}) for i, t in queries.items()),
            capture_output=True, text=True, timeout=600, env={**os.environ, "NODE_PATH": ORACLE}, check=True)
    finally:
        schema_file.unlink(missing_ok=True)
    results = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
    return {r["id"]: [m for _, m in r["errors"]] for r in results}


@pytest.mark.skipif(not ORACLE or shutil.which("node") is None,
                    reason="oracle is opt-in: set ASSAY_KUSTO_ORACLE to a node_modules with @kusto/language-service-next")
def test_acceptance_agrees_with_microsofts_analyzer() -> None:
    tables = kql.table_schemas()
    cases = yaml.safe_load((HERE / "conformance" / "docs_cases.yml").read_text(encoding="utf-8"))["cases"]
    queries = {c["id"]: c["kql"] for c in cases}
    queries.update({
        "cmstp": (HERE.parents[1] / "detections" / "T1218.003-cmstp" / "sentinel.kql").read_text(encoding="utf-8"),
        "unknown column": "DeviceProcessEvents | where FileNme == 'x'",
        "unknown operator": "DeviceProcessEvents | summarise count()",
        "type error": "DeviceProcessEvents | where FileName == 4",
        "missing paren": "DeviceProcessEvents | where (FileName == 'x'",
        "unknown function": "DeviceProcessEvents | extend x = tolowercase(FileName)",
    })
    microsoft = oracle_errors(queries, {n: list(c) for n, c in tables.items()})
    disagreements: dict[str, str] = {}
    for query_id, text in queries.items():
        try:
            kql.check(text, tables=tables)
            ours = False
        except AssayError:
            ours = True
        theirs = bool(microsoft[query_id])
        if ours != theirs:
            disagreements[query_id] = (f"assay {'rejects' if ours else 'accepts'}, Microsoft "
                                       f"{microsoft[query_id] or 'accepts'}")
    unexpected = {k: v for k, v in disagreements.items() if k not in KNOWN_DISAGREEMENTS}
    assert unexpected == {}, "\n".join(f"{k}: {v}" for k, v in unexpected.items())
    assert set(disagreements) == set(KNOWN_DISAGREEMENTS), "a known disagreement went away: update the list"
