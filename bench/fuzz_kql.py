"""Fuzz campaign for the KQL front end: mutated real-style queries must give rows or a located Assay error.

    .venv/bin/python bench/fuzz_kql.py [--cases 12000] [--seed 16] [--timeout 5] [--show 5] [--json]

Each case mutates one seed query from tests/kql/data/fuzz_seeds.kql (delete, duplicate, swap or replace tokens,
swap literal types, splice pieces of two seeds, append an operator, insert Unicode spaces) and runs it through
parse, check and run on an in-memory DuckDB. Findings, deduplicated by kind and message shape:

- crash:      a Python exception that is not an AssayError escaped (always a bug)
- unlocated:  an AssayError without a line:col in the query
- runtime:    kql check accepted the query and DuckDB then rejected it (a gap in check; the error is located)
- timeout:    the case ran longer than --timeout seconds (interrupted)

Prints cases per outcome, each finding's count and an example query, and the cases per second.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from assay import kql
from assay.engine import DuckDBEngine
from assay.errors import AssayError, EngineError
from assay.kql.lexer import TokenKind, tokenize

SEEDS = Path(__file__).resolve().parents[1] / "tests" / "kql" / "data" / "fuzz_seeds.kql"
NOW = "2024-05-02T00:00:00Z"

EXTRA_TOKENS = [
    "|", "(", ")", "[", "]", ",", ";", ".", "==", "!=", "=~", "has", "!has", "in", "!in", "has_any", "between",
    "..", "and", "or", "not", "*", "/", "%", "-", "+", "0", "-1", "9223372036854775807", "1e308", "0.0", "1h",
    "-1d", "0s", '""', '"x"', "@'C:\\\\'", "''", "datetime(2024-13-45)", "datetime(null)", "dynamic([])",
    "dynamic({})", "dynamic([[1],[2,[3]]])", "null", "true", "toscalar(", "toint(", "todatetime(", "tostring(",
    "parse_json(", "extract(", "@'(['", "@'(?i)a'", "bin(", "ago(", "now()", "count()", "dcount(", "make_set(",
    "arg_max(", "iff(", "case(", "strcat(", "split(", "array_length(", "bag_keys(", "range(", "hash(",
    "series_stats(", "materialize(", "_GetWatchlist('x')", "externaldata", "typeof(", "\u00a0", "\u200b",
]

OPERATOR_SNIPPETS = [
    "| take 0", "| count", "| summarize count()", "| summarize n = count() by bin(TimeGenerated, 1h)",
    "| distinct *", "| project-away TimeGenerated", "| extend z = 1 / 0", "| extend z = todatetime('x')",
    "| mv-expand x = dynamic([1, 2])", "| sort by 1 asc", "| top 3 by strlen(tostring(1))",
    "| where isnull(1)", "| evaluate bag_unpack(dynamic({'a': 1}))", "| getschema", "| serialize",
    "| make-series count() on TimeGenerated step 1h", "| search \"a\"", "| as T | union T",
    "| join kind=leftanti (print x = 1) on $left.x == $right.x", "| extend r = range(1, 3)",
]


@dataclass
class Campaign:
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def note(self, kind: str, shape: str, query: str) -> None:
        examples = self.findings.setdefault((kind, shape), [])
        examples.append(query)


def load_seeds() -> list[str]:
    text = "\n".join(line for line in SEEDS.read_text(encoding="utf-8").splitlines() if not line.startswith("//"))
    return [block.strip() for block in text.split("\n----\n") if block.strip()]


def pieces(query: str) -> list[str]:
    """The query as token texts with the whitespace before each, so a mutation keeps the rest verbatim."""
    try:
        tokens = tokenize(query)
    except AssayError:
        return [query]
    result: list[str] = []
    previous = 0
    for token in tokens:
        if token.kind is TokenKind.EOF:
            break
        result.append(query[previous:token.end])
        previous = token.end
    result.append(query[previous:])
    return result


def mutate(rng: random.Random, seeds: list[str]) -> str:
    query = rng.choice(seeds)
    parts = pieces(query)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if len(parts) < 2:
            break
        index = rng.randrange(len(parts) - 1)
        kind = rng.choices(range(9), weights=(1, 1, 1, 2, 1, 0.5, 1, 3, 3))[0]
        if kind == 0:
            del parts[index]
        elif kind == 1:
            parts.insert(index, parts[index])
        elif kind == 2 and index + 1 < len(parts) - 1:
            parts[index], parts[index + 1] = parts[index + 1], parts[index]
        elif kind == 3:
            parts[index] = " " + rng.choice(EXTRA_TOKENS)
        elif kind == 4:
            parts.insert(index, " " + rng.choice(EXTRA_TOKENS))
        elif kind == 5:
            parts = parts[:index + 1]
        elif kind == 6:
            other = pieces(rng.choice(seeds))
            start = rng.randrange(len(other))
            parts[index:index + rng.randrange(1, 6)] = other[start:start + rng.randrange(1, 12)]
        elif kind == 7:
            parts.append("\n" + rng.choice(OPERATOR_SNIPPETS))
        else:
            literal = re.sub(r"\d+", lambda m: rng.choice(("0", "-1", m.group(0) * 3, "99999999999999999999")),
                             parts[index])
            parts[index] = literal if literal != parts[index] else parts[index].replace('"', "'")
    return "".join(parts)


def shape(message: str) -> str:
    """A message with its numbers, quoted values and positions blanked, so one bug is one finding."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message.split("\n")[0])
    return re.sub(r"\d+", "N", text)[:160]


def run_case(query: str, engine: DuckDBEngine, campaign: Campaign, timeout: float) -> None:
    timer = threading.Timer(timeout, engine.connection.interrupt)
    timer.start()
    started = time.perf_counter()
    stage = "check"
    try:
        kql.check(query)
        stage = "run"
        kql.run(query, db=engine, now=NOW)
        campaign.outcomes["rows"] += 1
    except EngineError as error:
        if time.perf_counter() - started >= timeout:
            campaign.outcomes["timeout"] += 1
            campaign.note("timeout", "interrupted", query)
        elif error.span is None or error.span.line is None:
            campaign.outcomes["unlocated"] += 1
            campaign.note("unlocated", shape(error.message), query)
        else:
            campaign.outcomes["runtime"] += 1
            campaign.note("runtime", shape(error.message.split(": ", 1)[-1]), query)
    except AssayError as error:
        if error.span is None or error.span.line is None or error.span.col is None:
            campaign.outcomes["unlocated"] += 1
            campaign.note("unlocated", f"{type(error).__name__}: {shape(error.message)}", query)
        else:
            campaign.outcomes[f"located error ({stage})"] += 1
    except Exception as error:
        campaign.outcomes["crash"] += 1
        where = traceback.extract_tb(error.__traceback__)[-1]
        campaign.note("crash", f"{type(error).__name__} at {Path(where.filename).name}:{where.lineno}: "
                               f"{shape(str(error))}", query)
    finally:
        timer.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=12000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--show", type=int, default=5, help="example queries shown per finding")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    seeds = load_seeds()
    campaign = Campaign()
    started = time.perf_counter()
    with DuckDBEngine(None) as engine:
        for _ in range(args.cases):
            run_case(mutate(rng, seeds), engine, campaign, args.timeout)
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({"cases": args.cases, "seconds": round(elapsed, 1), "outcomes": dict(campaign.outcomes),
                          "findings": [{"kind": k, "shape": s, "count": len(q), "example": q[0]}
                                       for (k, s), q in sorted(campaign.findings.items())]}, indent=2))
        return
    print(f"{args.cases} cases in {elapsed:.1f} s ({args.cases / elapsed:.0f} cases/s), seed {args.seed}")
    for outcome, count in campaign.outcomes.most_common():
        print(f"  {outcome:28} {count:6}")
    print(f"{len(campaign.findings)} distinct findings")
    for (kind, message_shape), queries in sorted(campaign.findings.items(), key=lambda item: -len(item[1])):
        print(f"\n[{kind}] x{len(queries)}: {message_shape}")
        for query in queries[:args.show]:
            print("    " + query.replace("\n", "\n    ")[:600])


if __name__ == "__main__":
    main()
