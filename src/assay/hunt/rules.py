"""The rules of a hunt: Sigma files or catalog detections, compiled once (cached on disk) into hunt targets.

Each rule file is loaded and compiled by the Sigma stage (``assay.sigma``) into one target per route; a target
keeps what the hunt needs in plain data: the DuckDB SQL of its route filter and condition, the Spark SQL of the
same tree, and the prefilter formula. Compiling SigmaHQ's ~2,400 Windows rules takes minutes (pySigma parses
YAML in pure Python), so results are cached per rule text and compiler version, and compiled on every core.
Rules that cannot run are kept as :class:`RuleProblem` entries with the reason, never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from assay.errors import SigmaError, UsageError
from assay.hunt.codecache import default_cache_dir
from assay.hunt.prefilter import Formula, formula_from_json, necessary_condition

#: In a catalog detection folder, the Sigma form of the detection.
DETECTION_RULE_FILE = "rule.sigma.yml"
RULE_SUFFIXES = (".yml", ".yaml")
LEVELS = ("informational", "low", "medium", "high", "critical")
CACHE_FORMAT = 2  # 2: problems of compiled rules carry file:line:col


@dataclass(frozen=True)
class HuntTarget:
    """One rule on one route: where it runs and its exact logic (SQL) plus its prefilter formula."""

    route: str
    table: str
    channels: tuple[str, ...]  # lower-cased route channels (empty: any)
    event_ids: tuple[int, ...]  # route event ids (empty: any)
    where_duckdb: str  # route filter AND condition, DuckDB dialect
    where_spark: str  # the same tree in Spark SQL
    fields: tuple[str, ...]  # fields the condition reads on this route
    unavailable: tuple[str, ...]  # Sigma fields this route cannot provide
    formula: Formula  # the prefilter's necessary condition (assay.hunt.prefilter)
    python: str | None  # the condition as Python (assay.hunt.pyeval), None when it must run on DuckDB


@dataclass(frozen=True)
class HuntRule:
    """A rule that compiled: identity and metadata for the timeline, and its targets."""

    id: str
    title: str
    level: str
    status: str
    techniques: tuple[str, ...]  # ATT&CK technique ids from the tags, e.g. T1218.003
    source: str
    targets: tuple[HuntTarget, ...]


@dataclass(frozen=True)
class RuleProblem:
    """A rule file that cannot be evaluated, and why (``kind``: load, correlation, unsupported, no-route)."""

    source: str
    title: str | None
    kind: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "title": self.title, "kind": self.kind, "reason": self.reason}


@dataclass
class RuleSet:
    """What loading the rules gave: rules that run, problems, and how long compiling took."""

    rules: list[HuntRule] = field(default_factory=list)
    problems: list[RuleProblem] = field(default_factory=list)
    files: int = 0
    compiled: int = 0  # files compiled in this run (the rest came from the cache)
    seconds: float = 0.0

    @property
    def target_count(self) -> int:
        return sum(len(rule.targets) for rule in self.rules)


# -- finding rule files ------------------------------------------------------------------------------------------
def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """Sigma rule files under the paths. A folder holding catalog detections yields their ``rule.sigma.yml``
    (not ``detection.yml`` or ``tests.yml``); any other folder yields every ``.yml``/``.yaml`` file below it."""
    found: list[Path] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            if (path / DETECTION_RULE_FILE).is_file():
                candidates: list[Path] = [path / DETECTION_RULE_FILE]
            else:
                detection_rules = sorted(path.rglob(DETECTION_RULE_FILE))
                if detection_rules:
                    candidates = detection_rules
                else:
                    candidates = sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())
        elif path.is_file():
            candidates = [path]
        else:
            raise UsageError(f"no such rule file or folder: {path}",
                             hint="pass Sigma rule files, folders of rules, or catalog detection folders")
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved not in seen:
                seen.add(resolved)
                found.append(candidate)
    return found


# -- compiling one rule file (runs in worker processes) ----------------------------------------------------------
def _techniques(tags: Iterable[Any]) -> tuple[str, ...]:
    techniques = []
    for tag in tags:
        namespace = str(getattr(tag, "namespace", "")).lower()
        name = str(getattr(tag, "name", ""))
        if namespace == "attack" and name[:1].lower() == "t" and name[1:2].isdigit():
            techniques.append(name.upper())
    return tuple(dict.fromkeys(techniques))


def compile_rule_file(path_text: str, text: str) -> dict[str, Any]:
    """One rule file → a JSON-able record: ``{"rule": …}`` or ``{"problem": …}`` (never raises for bad rules)."""
    from assay.sigma.compiler import compile_rule, route_filter
    from assay.sigma.loading import load_rule_text

    path = Path(path_text)
    try:
        loaded = load_rule_text(text, path)
    except SigmaError as error:
        return {"problem": {"source": path_text, "title": None, "kind": "load", "reason": str(error)}}
    except Exception as error:  # the loader locates every failure it knows; anything else still spares the hunt
        return {"problem": {"source": path_text, "title": None, "kind": "load",
                            "reason": f"{path_text}:1:1: rule does not load: {type(error).__name__}: {error}"}}
    title = loaded.title
    if loaded.is_correlation:
        return {"problem": {"source": path_text, "title": title, "kind": "correlation",
                            "reason": "correlation rules need event windows; run them with assay sigma eval"}}
    try:
        compiled = compile_rule(loaded)
    except SigmaError as error:
        kind = "no-route" if "no table holds logsource" in error.message else "unsupported"
        # the same location the other commands give (sigma eval, convert, lint)
        reason = f"{error.span}: {error.message}" if error.span is not None else error.message
        return {"problem": {"source": path_text, "title": title, "kind": kind, "reason": reason}}
    except Exception as error:  # a construct the lowering trips over: report it, keep hunting with the rest
        return {"problem": {"source": path_text, "title": title, "kind": "unsupported",
                            "reason": f"{type(error).__name__}: {error}"}}
    from sqlglot import exp

    from assay.engine.spark_engine import spark_like_semantics
    from assay.hunt.pyeval import python_source

    targets = []
    for target in compiled:
        route = target.route_spec
        row_filter = route_filter(route)
        # the compiled target is not used after this record: its condition becomes part of ``where`` uncopied
        where = (exp.and_(row_filter, exp.paren(target.condition, copy=False), copy=False)
                 if row_filter is not None else target.condition)
        targets.append({
            "route": target.route, "table": target.table,
            "channels": [c.lower() for c in route.channels], "event_ids": list(route.event_ids),
            "where_duckdb": where.sql(dialect="duckdb"),
            "where_spark": spark_like_semantics(where).sql(dialect="spark"),
            "condition_duckdb": target.condition.sql(dialect="duckdb"),
            "fields": list(target.fields), "unavailable": list(target.unavailable),
            # derived from the trees in hand (equal to deriving from the SQL text, as add_derived does for cached
            # records: checked over every SigmaHQ Windows rule), which spares two parses per target
            "formula": necessary_condition(target.condition),
            "python": python_source(_python_where(target.route, where, target.condition)),
        })
    rule = loaded.rule
    level = str(rule.level.name).lower() if rule.level is not None else "unknown"
    status = str(rule.status.name).lower() if rule.status is not None else ""
    record = {"rule": {"id": loaded.id, "title": title, "level": level, "status": status,
                       "techniques": list(_techniques(rule.tags or [])), "source": path_text, "targets": targets,
                       "derived": derived_fingerprint()}}
    return record


@cache
def derived_fingerprint() -> str:
    """A hash of the code deriving prefilter formulas and Python predicates from a target's SQL."""
    import inspect

    import assay.hunt.prefilter as prefilter_module
    import assay.hunt.pyeval as pyeval_module
    from assay.hunt.events import duck_lower

    digest = hashlib.sha256(inspect.getsource(duck_lower).encode() + inspect.getsource(_python_where).encode())
    for module in (prefilter_module, pyeval_module):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:16]


def add_derived(record: dict[str, Any]) -> bool:
    """Fill in (or refresh) each target's formula and Python source; True when something was recomputed."""
    import sqlglot
    from sqlglot import exp

    from assay.hunt.pyeval import python_source

    rule = record.get("rule")
    if rule is None or rule.get("derived") == derived_fingerprint():
        return False
    for target in rule["targets"]:
        condition_sql, where_sql = target["condition_duckdb"], target["where_duckdb"]
        try:
            where = sqlglot.parse_one(where_sql, read="duckdb")
        except (sqlglot.errors.ParseError, RecursionError):
            where = None
        # ``route filter AND (condition)``: the condition is the parenthesised last operand, so one parse gives
        # both trees (parsing is most of a rule's compile time)
        if (where is not None and where_sql.endswith(f" AND ({condition_sql})") and isinstance(where, exp.And)
                and isinstance(where.expression, exp.Paren)):
            condition = where.expression.this
        elif where is not None and where_sql == condition_sql:
            condition = where
        else:
            condition = sqlglot.parse_one(condition_sql, read="duckdb")
        target["formula"] = necessary_condition(condition)
        target["python"] = python_source(_python_where(target["route"], where if where is not None else where_sql,
                                                       condition))
    rule["derived"] = derived_fingerprint()
    return True


def _python_where(route: str, where: Any, condition: Any) -> Any:
    """What a target's Python predicate checks: its route filter and condition, except on the route over every
    Windows event log record, whose filter only keeps Defender export rows out: the fast path, which evaluates the
    Python form, reads event log records only, so there the condition alone decides."""
    from assay.sigma.routes import WINDOWS_ROUTE

    return condition if route == WINDOWS_ROUTE.name else where


def _rule_from_record(record: dict[str, Any], source: str) -> HuntRule | RuleProblem:
    if "problem" in record:
        problem = record["problem"]
        return RuleProblem(source=source, title=problem["title"], kind=problem["kind"], reason=problem["reason"])
    data = record["rule"]
    targets = tuple(HuntTarget(
        route=t["route"], table=t["table"], channels=tuple(t["channels"]), event_ids=tuple(t["event_ids"]),
        where_duckdb=t["where_duckdb"], where_spark=t["where_spark"], fields=tuple(t["fields"]),
        unavailable=tuple(t["unavailable"]), formula=formula_from_json(t["formula"]), python=t["python"])
        for t in data["targets"])
    return HuntRule(id=data["id"], title=data["title"], level=data["level"], status=data["status"],
                    techniques=tuple(data["techniques"]), source=source, targets=targets)


# -- cache -------------------------------------------------------------------------------------------------------
@cache
def compiler_fingerprint() -> str:
    """A hash of the code that shapes a compiled rule, so a changed compiler never serves stale results."""
    import assay.engine.spark_engine as spark_module
    import assay.sigma as sigma_package

    digest = hashlib.sha256(f"format {CACHE_FORMAT}".encode())
    sigma_dir = Path(sigma_package.__file__).parent
    # The shape of a cache record is versioned by CACHE_FORMAT; what derives from the SQL by derived_fingerprint.
    files = [*sorted(sigma_dir.glob("*.py")), Path(spark_module.__file__)]
    for file in files:
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    try:
        from importlib.metadata import version

        digest.update(version("pysigma").encode() + version("sqlglot").encode())
    except Exception:  # metadata missing in odd installs: the source hash still guards the format
        pass
    return digest.hexdigest()[:16]


def _cache_key(text: str) -> str:
    return hashlib.sha256((compiler_fingerprint() + "\0" + text).encode("utf-8", "surrogatepass")).hexdigest()


def _cache_read(cache_dir: Path | None, key: str) -> dict[str, Any] | None:
    if cache_dir is None:
        return None
    try:
        data: dict[str, Any] = json.loads((cache_dir / key[:2] / f"{key}.json").read_text(encoding="utf-8"))
        return data
    except (OSError, ValueError):
        return None


def _cache_write(cache_dir: Path | None, key: str, record: dict[str, Any]) -> None:
    if cache_dir is None:
        return
    folder = cache_dir / key[:2]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{key}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(record), encoding="utf-8")
        temporary.replace(folder / f"{key}.json")  # atomic: concurrent hunts never read half a file
    except OSError:
        pass  # a read-only cache only costs time


def _compile_job(job: tuple[str, Any]) -> dict[str, Any]:
    """A pool job: ("compile", (path, text)) compiles a rule file; ("derive", record) refreshes derived data."""
    kind, payload = job
    if kind == "derive":
        add_derived(payload)
        record: dict[str, Any] = payload
        return record
    return compile_rule_file(payload[0], payload[1])


#: progress(rule files done, rule files in total)
RuleProgress = Callable[[int, int], None]


def load_hunt_rules(paths: Iterable[str | Path], *, cache_dir: Path | bool | None = True, processes: int | None = None,
                    progress: RuleProgress | None = None) -> RuleSet:
    """Load and compile every rule under ``paths`` (cached; uncached ones compiled on ``processes`` cores)."""
    started = time.perf_counter()
    directory: Path | None
    if cache_dir is True:
        directory = default_cache_dir() / "hunt-rules"
    elif cache_dir is False:
        directory = None
    else:
        directory = cache_dir
    files = rule_files(paths)
    result = RuleSet(files=len(files))
    records: list[dict[str, Any] | None] = [None] * len(files)
    keys: list[str] = [""] * len(files)
    jobs: list[tuple[int, tuple[str, Any]]] = []
    for index, file in enumerate(files):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            records[index] = {"problem": {"source": str(file), "title": None, "kind": "load",
                                          "reason": f"cannot read rule file: {error}"}}
            continue
        keys[index] = _cache_key(text)
        cached = _cache_read(directory, keys[index])
        if cached is not None and not _needs_derive(cached):
            records[index] = cached
        elif cached is not None:
            # the hunt's own code changed: recompute formulas and Python from the cached SQL (no pySigma)
            jobs.append((index, ("derive", cached)))
        else:
            jobs.append((index, ("compile", (str(file), text))))
    done = len(files) - len(jobs)
    if progress is not None:
        progress(done, len(files))
    for index, record in _run_jobs(jobs, processes):
        records[index] = record
        _cache_write(directory, keys[index], record)
        done += 1
        if progress is not None:
            progress(done, len(files))
    result.compiled = sum(1 for _, (kind, _payload) in jobs if kind == "compile")
    for file, maybe_record in zip(files, records, strict=True):
        assert maybe_record is not None
        item = _rule_from_record(maybe_record, str(file))
        if isinstance(item, HuntRule):
            result.rules.append(item)
        else:
            result.problems.append(item)
    result.seconds = time.perf_counter() - started
    return result


def _needs_derive(record: dict[str, Any]) -> bool:
    rule = record.get("rule")
    return rule is not None and rule.get("derived") != derived_fingerprint()


def _run_jobs(jobs: list[tuple[int, tuple[str, Any]]], processes: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
    workers = processes or os.cpu_count() or 1
    if len(jobs) < 8 or workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for index, job in jobs:
            yield index, _compile_job(job)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(processes=min(workers, len(jobs))) as pool:
        results = pool.imap(_compile_job, [job for _, job in jobs], chunksize=4)
        for (index, _job), record in zip(jobs, results, strict=True):
            yield index, record
