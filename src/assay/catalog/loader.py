"""Load detection folders into models, keeping YAML line marks so every error names file:line:col.

YAML is composed safely (libyaml through PyYAML when available, ruamel.yaml's safe composer otherwise; only core
schema tags, no arbitrary objects) and turned into plain data plus a table of node positions. Pydantic validation errors are mapped back to those positions; unknown
keys get a "did you mean" naming the closest valid key. Each folder is loaded once per process (cached by path and
file modification times).
"""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from assay.catalog.models import (
    FIXTURES_CONTEXT,
    Detection,
    Fixtures,
    LoadedDetection,
    ScenarioFile,
    YamlMarks,
    YamlPath,
)
from assay.errors import CatalogError, SourceSpan, did_you_mean

DETECTION_FILE = "detection.yml"
SIGMA_FILE = "rule.sigma.yml"
KQL_FILE = "sentinel.kql"
TESTS_FILE = "tests.yml"
#: Shared fixtures (hosts, users, process templates) for every detection beside the ``_shared`` folder.
SHARED_FIXTURES = Path("_shared") / "fixtures.yml"

ModelT = TypeVar("ModelT", bound=BaseModel)


class CatalogLoadError(CatalogError):
    """One or more errors loading a detection folder; ``errors`` lists each with its own span."""

    def __init__(self, errors: list[CatalogError]) -> None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first.message + more, first.span, first.hint)
        self.errors = errors


# --------------------------------------------------------------------------------------------------------------
# YAML with marks
# --------------------------------------------------------------------------------------------------------------


def _span_of_mark(path: Path, text: str, mark: Any) -> SourceSpan:
    if mark is None:
        return SourceSpan(str(path), None, None, text)
    return SourceSpan(str(path), int(mark.line) + 1, int(mark.column) + 1, text)


#: The only tags a catalog file may use: the YAML core schema's own (implicit resolution or explicit !!str etc.).
_SAFE_TAGS = {f"tag:yaml.org,2002:{name}" for name in
              ("str", "int", "float", "bool", "null", "timestamp", "map", "seq")}


def _compose(text: str) -> tuple[Any, Callable[[Any], Any]]:
    """YAML text → node tree (with start marks) and a safe scalar constructor.

    libyaml's C composer through PyYAML when it is there (about 40x faster than ruamel's pure-Python round-trip
    loader on our files, which matters once a catalog holds hundreds of detections); ruamel.yaml's safe composer
    otherwise. Both produce the same node shapes, and only the core-schema tags are ever constructed.
    """
    try:
        import yaml as pyyaml

        if getattr(pyyaml, "__with_libyaml__", False):
            node = pyyaml.compose(text, Loader=pyyaml.CSafeLoader)
            constructor = pyyaml.constructor.SafeConstructor()
            return node, constructor.construct_object
    except ImportError:
        pass
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    node = yaml.compose(text)
    return node, yaml.constructor.construct_object


def _is_kind(node: Any, kind: str) -> bool:
    return type(node).__name__ == kind  # PyYAML and ruamel node classes share names, not a base class


#: Aliases are expanded into plain values; this bounds the expansion (a "billion laughs" file stops here).
MAX_YAML_VALUES = 200_000


class _Budget:
    def __init__(self) -> None:
        self.values = 0
        self.open: set[int] = set()  # nodes being expanded: an alias back into one of them is a cycle


def _plain(node: Any, path: YamlPath, marks: YamlMarks, construct: Callable[[Any], Any],
           budget: _Budget | None = None) -> Any:
    """A composed node → plain Python values, recording where every node (and key) starts."""
    budget = budget or _Budget()
    budget.values += 1
    if budget.values > MAX_YAML_VALUES:
        raise CatalogError(f"more than {MAX_YAML_VALUES} values after expanding aliases", marks.span(path),
                           hint="catalog files are small; look for aliases nested inside aliases")
    if id(node) in budget.open:
        raise CatalogError("a YAML alias refers to a node that contains it (a cycle)", marks.span(path))
    if node.tag not in _SAFE_TAGS:
        raise CatalogError(f"YAML tag {node.tag!r} is not allowed", marks.span(path),
                           hint="remove the tag; catalog files hold plain YAML values only")
    if _is_kind(node, "MappingNode") or _is_kind(node, "SequenceNode"):
        budget.open.add(id(node))
        try:
            return _plain_collection(node, path, marks, construct, budget)
        finally:
            budget.open.discard(id(node))
    try:
        value = construct(node)
    except (ValueError, TypeError, OverflowError) as error:  # e.g. a date that does not exist: 2026-02-30
        raise CatalogError(f"value cannot be read: {error}",
                           SourceSpan(marks.file, node.start_mark.line + 1, node.start_mark.column + 1, marks.text),
                           hint="quote it if it is text") from None
    if isinstance(value, dt.datetime):  # ruamel's TimeStamp subclass → a plain datetime
        return dt.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                           value.microsecond, tzinfo=value.tzinfo)
    if isinstance(value, str | bool | int | float | dt.date) or value is None:
        return str(value) if isinstance(value, str) else value
    raise CatalogError(f"unsupported YAML value of type {type(value).__name__}", marks.span(path))


def _plain_collection(node: Any, path: YamlPath, marks: YamlMarks, construct: Callable[[Any], Any],
                      budget: _Budget) -> Any:
    if _is_kind(node, "MappingNode"):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_at = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise CatalogError("YAML merge keys (<<) are not supported", SourceSpan(marks.file, *key_at,
                                   marks.text), hint="repeat the keys, or anchor and alias the whole mapping")
            key = construct(key_node) if _is_kind(key_node, "ScalarNode") else None
            if not isinstance(key, str):
                # Keys are names in every catalog file; 'on: …' or '1: …' parse as bool/int and would confuse.
                raise CatalogError(f"key {key!r} is not a string", SourceSpan(marks.file, *key_at, marks.text),
                                   hint="quote the key")
            child: YamlPath = (*path, key)
            if key in result:
                first = marks.keys[child]
                raise CatalogError(f"duplicate key {key!r} (first at line {first[0]})",
                                   SourceSpan(marks.file, *key_at, marks.text), hint="keep one of the two")
            marks.keys[child] = key_at
            marks.nodes[child] = (value_node.start_mark.line + 1, value_node.start_mark.column + 1)
            result[key] = _plain(value_node, child, marks, construct, budget)
        return result
    items = []
    for index, item in enumerate(node.value):
        child = (*path, index)
        marks.nodes[child] = (item.start_mark.line + 1, item.start_mark.column + 1)
        items.append(_plain(item, child, marks, construct, budget))
    return items


def _problem_of(error: Any) -> str:
    problem = str(getattr(error, "problem", None) or "malformed YAML").strip()
    context = str(getattr(error, "context", None) or "").strip()
    if context:
        problem = f"{context}: {problem}"
    return problem.split("\n")[0]


def load_yaml(path: Path, text: str | None = None) -> tuple[Any, YamlMarks]:
    """Parse a YAML file into plain data and its marks; malformed YAML raises CatalogError at file:line:col."""
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise CatalogError(f"not UTF-8 text: {error.reason} at byte {error.start}",
                               SourceSpan(str(path))) from error
        except OSError as error:
            raise CatalogError(f"cannot read: {error.strerror}", SourceSpan(str(path))) from error
    marks = YamlMarks(str(path), text)
    try:
        node, construct = _compose(text)
    except Exception as error:  # PyYAML's or ruamel's YAMLError: both carry problem_mark
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        raise CatalogError(f"malformed YAML: {_problem_of(error)}", _span_of_mark(path, text, mark),
                           hint="fix the YAML syntax at this position") from None
    if node is None:
        marks.nodes[()] = (1, 1)
        return None, marks
    # The document's own position: its first node (not line 1, which may be a comment).
    marks.nodes[()] = (node.start_mark.line + 1, node.start_mark.column + 1)
    return _plain(node, (), marks, construct), marks


# --------------------------------------------------------------------------------------------------------------
# Pydantic errors → file:line:col
# --------------------------------------------------------------------------------------------------------------


def _data_path(data: Any, loc: tuple[int | str, ...]) -> YamlPath:
    """Pydantic's loc follows the data, plus union-member tags ('literal[...]', 'tuple[...]'): keep the data part."""
    path: list[str | int] = []
    current = data
    for part in loc:
        in_mapping = isinstance(current, dict) and isinstance(part, str) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_mapping or in_list:
            current = current[part]
            path.append(part)
        elif isinstance(current, dict) and isinstance(part, str) and part not in current:
            # A missing or unknown key under a mapping: the key itself, for spans and messages.
            path.append(part)
            break
    return tuple(path)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin is not None or isinstance(annotation, types.UnionType):
        for argument in typing.get_args(annotation):
            found.extend(_models_in(argument))
    return found


def _model_at(root: type[BaseModel], path: YamlPath) -> type[BaseModel] | None:
    """The model class a mapping at ``path`` is validated against (to list its valid keys)."""
    model: type[BaseModel] | None = root
    for part in path:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        candidates = _models_in(info.annotation)
        model = candidates[0] if candidates else None
    return model


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 60 else text[:57] + '...'}"


def _field_name(path: YamlPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "document"


def validation_errors(error: ValidationError, model: type[BaseModel], data: Any,
                      marks: YamlMarks) -> list[CatalogError]:
    """One CatalogError per pydantic error, each at the YAML node it is about."""
    results: list[CatalogError] = []
    seen: set[tuple[YamlPath, str]] = set()
    items = [(item, _data_path(data, tuple(item["loc"]))) for item in error.errors(include_url=False)]
    paths = [path for _, path in items]
    unknown_keys = {(path[:-1], str(path[-1])) for item, path in items if item["type"] == "extra_forbidden"}
    for item, path in items:
        kind = item["type"]
        if kind == "literal_error" and any(len(other) > len(path) and other[:len(path)] == path for other in paths):
            continue  # a union ('all' or a list): the list branch's deeper error says what is wrong
        if kind == "missing" and any(
            parent == path[:-1] and did_you_mean(str(path[-1]), [key]) for parent, key in unknown_keys
        ):
            continue  # 'severty' is unknown and 'severity' missing: the unknown key's "did you mean" says it all
        if (path, kind) in seen:
            continue  # a union reports once per member; one message per node is enough
        seen.add((path, kind))
        name = _field_name(path)
        if kind == "extra_forbidden":
            parent = _model_at(model, path[:-1])
            valid = [k for k in (parent.model_fields if parent else {}) if k not in _present(data, path[:-1])]
            suggestion = did_you_mean(str(path[-1]), valid) if valid else None
            hint = f"did you mean {suggestion!r}?" if suggestion else (
                f"valid keys here: {', '.join(sorted(parent.model_fields))}" if parent else None)
            results.append(CatalogError(f"unknown key {path[-1]!r}", marks.span(path, key=True), hint=hint))
        elif kind == "missing":
            results.append(CatalogError(f"missing required key {path[-1]!r}" + (
                f" in {_field_name(path[:-1])}" if len(path) > 1 else ""), marks.span(path[:-1]),
                hint=f"add '{path[-1]}:'"))
        else:
            message = item["msg"].removeprefix("Value error, ")
            value = item.get("input")
            got = f" (got {_describe(value)})" if kind.endswith("_type") or kind.startswith("literal") else ""
            results.append(CatalogError(f"{name}: {message}{got}", marks.span(path)))
    return results


def _present(data: Any, path: YamlPath) -> set[str]:
    current = data
    for part in path:
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            return set()
    return set(current) if isinstance(current, dict) else set()


def validate(model: type[ModelT], data: Any, marks: YamlMarks, context: dict[str, Any] | None = None) -> ModelT:
    """Validate plain data against a model; errors come back as CatalogLoadError with file:line:col each."""
    if not isinstance(data, dict):
        raise CatalogError(f"expected a mapping at the top of the file, got {_describe(data)}", marks.span(()),
                           hint=f"start the file with keys such as {', '.join(list(model.model_fields)[:3])}")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as error:
        raise CatalogLoadError(validation_errors(error, model, data, marks)) from None


# --------------------------------------------------------------------------------------------------------------
# Detection folders and catalogs
# --------------------------------------------------------------------------------------------------------------


_FIXTURES_CACHE: dict[Path, tuple[tuple[int, int], Fixtures]] = {}


def shared_fixtures_path(folder: Path) -> Path | None:
    """The ``_shared/fixtures.yml`` a detection folder sees: beside it, or beside one of its two parents."""
    for base in (folder.parent, folder.parent.parent, folder.parent.parent.parent):
        candidate = base / SHARED_FIXTURES
        if candidate.is_file():
            return candidate
    return None


def shared_fixtures(folder: Path) -> Fixtures:
    """The shared fixtures for a detection folder (empty when there is no ``_shared/fixtures.yml``)."""
    path = shared_fixtures_path(folder)
    if path is None:
        return Fixtures()
    stat = path.stat()
    state = (stat.st_mtime_ns, stat.st_size)
    cached = _FIXTURES_CACHE.get(path)
    if cached is not None and cached[0] == state:
        return cached[1]
    data, marks = load_yaml(path)
    fixtures = validate(Fixtures, data if data is not None else {}, marks)
    _FIXTURES_CACHE[path] = (state, fixtures)
    return fixtures


def _file_state(folder: Path) -> tuple[tuple[str, int, int], ...]:
    state = []
    for name in (DETECTION_FILE, SIGMA_FILE, KQL_FILE, TESTS_FILE):
        candidate = folder / name
        try:
            stat = candidate.stat()
            state.append((name, stat.st_mtime_ns, stat.st_size))
        except OSError:
            state.append((name, 0, -1))
    fixtures = shared_fixtures_path(folder)
    if fixtures is not None:
        stat = fixtures.stat()
        state.append((str(fixtures), stat.st_mtime_ns, stat.st_size))
    return tuple(state)


_CACHE: dict[Path, tuple[tuple[tuple[str, int, int], ...], LoadedDetection]] = {}


def clear_cache() -> None:
    """Forget every loaded detection (tests that rewrite files in place use it)."""
    _CACHE.clear()
    _FIXTURES_CACHE.clear()


def load_detection(folder: str | Path) -> LoadedDetection:
    """Load one detection folder; raises CatalogLoadError listing every problem with its file:line:col."""
    folder = Path(folder).resolve()
    state = _file_state(folder)
    cached = _CACHE.get(folder)
    if cached is not None and cached[0] == state:
        return cached[1]
    loaded = _load_detection_uncached(folder)
    _CACHE[folder] = (state, loaded)
    return loaded


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CatalogError(f"not UTF-8 text: {error.reason} at byte {error.start}", SourceSpan(str(path))) from None
    except OSError as error:
        raise CatalogError(f"cannot read: {error.strerror}", SourceSpan(str(path))) from None


def _load_detection_uncached(folder: Path) -> LoadedDetection:
    detection_path = folder / DETECTION_FILE
    if not detection_path.is_file():
        raise CatalogLoadError([CatalogError(f"no {DETECTION_FILE} in this folder", SourceSpan(str(folder)),
                                             hint="a detection folder holds detection.yml, rule.sigma.yml, "
                                                  "sentinel.kql and tests.yml")])
    errors: list[CatalogError] = []
    marks: dict[str, YamlMarks] = {}
    detection: Detection | None = None
    try:
        data, marks["detection"] = load_yaml(detection_path)
        detection = validate(Detection, data, marks["detection"])
    except CatalogLoadError as error:
        errors.extend(error.errors)
    except CatalogError as error:
        errors.append(error)

    scenarios: tuple[Any, ...] = ()
    tests_path: Path | None = folder / TESTS_FILE
    assert tests_path is not None
    if tests_path.is_file():
        try:
            data, marks["tests"] = load_yaml(tests_path)
            context = {FIXTURES_CONTEXT: shared_fixtures(folder)}
            scenarios = validate(ScenarioFile, data, marks["tests"], context).scenarios
        except CatalogLoadError as error:
            errors.extend(error.errors)
        except CatalogError as error:
            errors.append(error)
    else:
        tests_path = None

    sigma_path: Path | None = folder / SIGMA_FILE
    sigma_text: str | None = None
    assert sigma_path is not None
    if sigma_path.is_file():
        try:
            sigma_text = _read_text(sigma_path)
            # Marks only: the rule's own validity is pySigma's call (lint), with our positions for its errors. A
            # correlation file holds several documents: the marks cover the first (its lines keep their numbers).
            first_document = re.split(r"(?m)^---[ \t]*$", sigma_text, maxsplit=1)[0]
            _, marks["sigma"] = load_yaml(sigma_path, first_document)
        except CatalogError as error:
            errors.append(error)
    else:
        sigma_path = None

    kql_path: Path | None = folder / KQL_FILE
    kql_text: str | None = None
    assert kql_path is not None
    if kql_path.is_file():
        try:
            kql_text = _read_text(kql_path)
        except CatalogError as error:
            errors.append(error)
    else:
        kql_path = None

    if errors or detection is None:
        raise CatalogLoadError(errors)
    return LoadedDetection(path=folder, detection=detection, detection_path=detection_path,
                           sigma_path=sigma_path, sigma_text=sigma_text, kql_path=kql_path, kql_text=kql_text,
                           tests_path=tests_path, scenarios=tuple(scenarios), marks=marks)


def detection_folders(root: str | Path) -> list[Path]:
    """Every detection folder at or under ``root`` (a folder holding detection.yml), sorted.

    A file inside a detection folder (``tests.yml``, ``rule.sigma.yml``…) stands for its folder, so the file
    names a pre-commit hook passes select the detections a commit touches."""
    root = Path(root)
    if (root / DETECTION_FILE).is_file():
        return [root]
    if root.is_file():
        return [root.parent] if (root.parent / DETECTION_FILE).is_file() else []
    return sorted(path.parent for path in root.rglob(DETECTION_FILE) if not any(
        part.startswith(".") for part in path.relative_to(root).parts))


@dataclass
class Catalog:
    """Every detection under a root: those that loaded, and the errors of those that did not."""

    root: Path
    detections: list[LoadedDetection] = field(default_factory=list)
    errors: list[CatalogError] = field(default_factory=list)

    def by_id(self, detection_id: str) -> LoadedDetection | None:
        wanted = detection_id.lower()
        for loaded in self.detections:
            if loaded.id == wanted:
                return loaded
        return None

    def by_technique(self, technique_id: str) -> list[LoadedDetection]:
        """Detections for a technique; a parent technique (T1218) also matches its sub-techniques."""
        wanted = technique_id.upper()
        return [d for d in self.detections
                if d.detection.technique == wanted or d.detection.technique.startswith(wanted + ".")]

    def find(self, reference: str) -> list[LoadedDetection]:
        """Detections matching an id, an id prefix (≥ 8 chars), a technique id or a folder name."""
        if by_id := self.by_id(reference):
            return [by_id]
        lowered = reference.lower()
        matches = [d for d in self.detections if d.path.name.lower() == lowered]
        if matches:
            return matches
        if reference.upper().startswith("T") and reference[1:2].isdigit():
            return self.by_technique(reference)
        if len(lowered) >= 8:
            return [d for d in self.detections if d.id.startswith(lowered)]
        return []


def load_catalog(roots: str | Path | Iterable[str | Path]) -> Catalog:
    """Load every detection under the root(s); a folder that fails does not stop the others."""
    root_list = [Path(roots)] if isinstance(roots, str | Path) else [Path(r) for r in roots]
    catalog = Catalog(root_list[0] if root_list else Path("."))
    seen: set[Path] = set()
    for root in root_list:
        if not root.exists():
            catalog.errors.append(CatalogError("no such file or folder", SourceSpan(str(root)),
                                               hint="pass a detection folder or a folder of detections"))
            continue
        folders = detection_folders(root)
        if not folders:
            catalog.errors.append(CatalogError(f"no detections found (no {DETECTION_FILE} at or under it)",
                                               SourceSpan(str(root))))
        for folder in folders:
            # Two paths naming the same detection (two of its files, say) load it once.
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            try:
                catalog.detections.append(load_detection(folder))
            except CatalogLoadError as error:
                catalog.errors.extend(error.errors)
            except CatalogError as error:
                catalog.errors.append(error)
    return catalog
