"""Collect self-contained KQL examples and their documented output from MicrosoftDocs/dataexplorer-docs.

Usage: python tests/kql/conformance/extract_from_docs.py DOCS_DIR --commit SHA > tests/kql/conformance/docs_cases.yml

An example qualifies when its query binds without any table (print, datatable, range, let ...) and the page
shows an output table right after it, or when a reference table pairs an expression with its result. The
expected output is the docs' own table text, cell for cell. Some doc tables are illustrative (made-up values,
random functions, now()-dependent, typos): ``exclusions.yml`` names each with its reason.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

from assay import kql
from assay.errors import AssayError

CODE_BLOCK = re.compile(r"```kusto\s*\n(.*?)```", re.DOTALL)
TABLE_LINE = re.compile(r"^\s*\|.*\|\s*$")


def split_row(line: str) -> list[str]:
    text = line.strip()
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    cells = re.split(r"(?<!\\)\|", text)
    return [cell.strip().replace("\\|", "|") for cell in cells]


def first_table(text: str) -> tuple[list[str], list[list[str]]] | None:
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if "```" in line:
            return None  # another code block before any table
        if TABLE_LINE.match(line) and index + 1 < len(lines) and re.match(r"^\s*\|[\s:|-]+\|\s*$",
                                                                           lines[index + 1]):
            header = split_row(line)
            rows = []
            for row_line in lines[index + 2:]:
                if not TABLE_LINE.match(row_line):
                    break
                rows.append(split_row(row_line))
            return header, rows
    return None


def candidates(docs: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    query_dir = docs / "data-explorer" / "kusto" / "query"
    for page in sorted(query_dir.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for number, match in enumerate(CODE_BLOCK.finditer(text), start=1):
            query = match.group(1).strip()
            after = text[match.end():match.end() + 4000]
            table = first_table(after)
            if table is None:
                continue
            try:
                kql.check(query, tables={})
            except AssayError:
                continue
            header, rows = table
            found.append({
                "id": f"{page.stem}-{number}",
                "doc": f"data-explorer/kusto/query/{page.name}",
                "kql": query,
                "columns": header,
                "rows": rows,
                "ordered": bool(re.search(r"\b(sort|order|top|serialize)\b", query)),
            })
    return found


def expression_tables(docs: Path) -> list[dict[str, Any]]:
    """Reference tables that pair an expression with its result: "Example (yields `true`)" columns (string
    operators) and "Operation | Result" tables (numerical and logical operators)."""
    found: list[dict[str, Any]] = []
    query_dir = docs / "data-explorer" / "kusto" / "query"
    for page in sorted(query_dir.glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines[:-1]):
            if not TABLE_LINE.match(line):
                continue
            header = [h.lower() for h in split_row(line)]
            yields_true = next((i for i, h in enumerate(header) if "yields" in h and "true" in h), None)
            operation = header.index("operation") if "operation" in header and "result" in header else None
            if yields_true is None and operation is None:
                continue
            for number, row_line in enumerate(lines[index + 2:], start=1):
                if not TABLE_LINE.match(row_line):
                    break
                cells = split_row(row_line)
                if yields_true is not None:
                    expression, result = cells[yields_true], "true"
                else:
                    assert operation is not None
                    expression, result = cells[operation], cells[header.index("result")]
                expression = " ".join(part.strip("`") for part in expression.strip().split("` `")).strip("`")
                query = f"print r = {expression}"
                try:
                    kql.check(query, tables={})
                except AssayError:
                    continue
                found.append({
                    "id": f"{page.stem}-table{index + 1}-row{number}",
                    "doc": f"data-explorer/kusto/query/{page.name}",
                    "kql": query,
                    "columns": ["r"],
                    "rows": [[result.strip("`")]],
                    "ordered": False,
                })
    return found


def main() -> None:
    docs = Path(sys.argv[1])
    commit = sys.argv[sys.argv.index("--commit") + 1] if "--commit" in sys.argv else "unknown"
    cases: list[dict[str, Any]] = []
    seen: set[str] = set()
    for case in candidates(docs) + expression_tables(docs):
        if case["kql"] in seen:  # the same example appears on several pages
            continue
        seen.add(case["kql"])
        cases.append(case)
    sys.stdout.write("# GENERATED by tests/kql/conformance/extract_from_docs.py from MicrosoftDocs/dataexplorer-docs;\n"
                     "# do not edit by hand: exclusions and known deviations live in exclusions.yml.\n")
    yaml.safe_dump({"source": "https://github.com/MicrosoftDocs/dataexplorer-docs", "commit": commit,
                    "cases": cases}, sys.stdout, sort_keys=False, allow_unicode=True, width=120)


if __name__ == "__main__":
    main()
