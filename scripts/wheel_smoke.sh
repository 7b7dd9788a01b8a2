#!/usr/bin/env bash
# Build Assay's wheel, install it into a fresh virtualenv, and run the main commands from a folder outside the
# checkout: packaged ATT&CK data, table schemas, ingest mappings, site assets and `assay init` templates must all
# come from the wheel. Used by CI (`make wheel-test`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"${PIP:-$ROOT/.venv/bin/pip}" wheel --quiet --no-deps --wheel-dir "$WORK/dist" "$ROOT"
WHEEL="$(ls "$WORK"/dist/assay-*.whl)"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet "$WHEEL"
ASSAY="$WORK/venv/bin/assay"
cd "$WORK"
mkdir case && cp -r "$ROOT/samples/cmstp-case/." case/
export ASSAY_CACHE_DIR="$WORK/cache"
"$ASSAY" --version
"$ASSAY" init repo
(cd repo && "$ASSAY" lint detections/ && "$ASSAY" test detections/ --format junit > junit.xml)
"$ASSAY" hunt case --rules repo/detections --format json > hunt.json
"$ASSAY" ingest case --db case.duckdb --format json > ingest.json
"$ASSAY" kql 'DeviceProcessEvents | where FileName =~ "cmstp.exe" | count' --db case.duckdb --format json > kql.json
"$ASSAY" site build --catalog repo/detections --out site --report repo/build/proof/report.json
test -f site/index.html
"$PYTHON" - "$WORK" <<'PY'
import json, sys, pathlib
work = pathlib.Path(sys.argv[1])
hunt = json.loads((work / "hunt.json").read_text())
kql = json.loads((work / "kql.json").read_text())
ingest = json.loads((work / "ingest.json").read_text())
assert ingest["records_read"] > 0, ingest
print(f"wheel smoke: ingest {ingest['records_read']} records; kql rows {kql.get('rows')}; "
      f"hunt keys {sorted(hunt)[:6]}")
PY
echo "wheel smoke: OK ($WHEEL)"
