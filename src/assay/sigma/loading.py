"""Loading Sigma rules offline, one file at a time, so one bad rule never aborts a run.

pySigma mutates a rule when a pipeline is applied, so a ``LoadedRule`` keeps the YAML text and hands out a freshly
parsed rule for every backend or route (``fresh_collection``). Nothing here touches the network: pySigma's
ATT&CK and validator data are only fetched by validators, which Assay does not run.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError as PySigmaError
from sigma.rule import SigmaRule

from assay.errors import SigmaError, SourceSpan

RULE_SUFFIXES = (".yml", ".yaml")
#: In a detection folder (the catalog), the Sigma form of the detection.
DETECTION_RULE_FILE = "rule.sigma.yml"


@dataclass(frozen=True)
class LoadedRule:
    """A Sigma rule file that parsed: its text (for fresh copies), its main rule and the rules it brings along."""

    path: Path | None
    text: str
    rule: SigmaRule | SigmaCorrelationRule
    #: the parsed YAML documents; fresh rules are built from deep copies (no second YAML parse)
    documents: tuple[dict[str, Any], ...] = ()

    @property
    def id(self) -> str:
        return str(self.rule.id) if self.rule.id else (self.rule.name or "")

    @property
    def title(self) -> str:
        return self.rule.title

    @property
    def is_correlation(self) -> bool:
        return isinstance(self.rule, SigmaCorrelationRule)

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "<input>"

    def span(self, *where: Any, key: bool = False) -> SourceSpan:
        """Where the construct at ``where`` (keys, list indexes) is in the file, e.g. ``span("detection",
        "condition")``; its nearest ancestor when absent (see :func:`span_of`)."""
        return span_of(self.text, self.path, *where, key=key)

    def fresh_collection(self) -> SigmaCollection:
        """A newly built collection of this file's rules (pipelines mutate rules: never reuse one)."""
        documents = list(self.documents) if self.documents else _yaml_documents(self.text, self.path)
        return _collection_from_documents(copy.deepcopy(documents), self.text, self.path)

    def fresh_rule(self, select: str | None = None) -> SigmaRule:
        """A newly parsed copy of the main rule, or of the rule in this file whose id or name is ``select``."""
        collection = self.fresh_collection()
        for rule in collection.rules:
            if not isinstance(rule, SigmaRule):
                continue
            if select is None and rule.id == self.rule.id and rule.title == self.rule.title:
                return rule
            if select is not None and select in (str(rule.id), rule.name):
                return rule
        wanted = f"rule {select!r}" if select else "a detection rule"
        raise SigmaError(f"{self.title}: {wanted} not found in this file", span=SourceSpan.of_file(self.source),
                         hint="a correlation rule's referenced rules must be in the same file" if select else None)


@dataclass(frozen=True)
class RuleLoadError:
    """A rule file that did not load, with the error naming the file and the construct."""

    path: Path
    error: SigmaError

    def __str__(self) -> str:
        return str(self.error)


def _ensure_spec_modifiers() -> None:
    """Teach pySigma the Sigma specification's ``utf16le`` (an alias of ``wide``), which pySigma 1.5 lacks.

    ``modifier_mapping`` is pySigma's own registry; adding the alias (only if absent) keeps every backend in
    agreement on what ``utf16le`` means.
    """
    from sigma.modifiers import SigmaWideModifier, modifier_mapping

    modifier_mapping.setdefault("utf16le", SigmaWideModifier)


@cache
def _rule_loader() -> type[yaml.CSafeLoader]:
    """pySigma's YAML loader (libyaml, safe: no arbitrary objects; duplicate keys rejected), made to say where.

    pySigma's duplicate check reports no position and trips over a complex key (``? [a]``: a list is no
    dictionary key) with a ``TypeError``. Here every key is checked at its node, and any failure to build a value
    (a date that does not exist, nesting too deep) becomes a ``ConstructorError`` at the node it came from.
    """
    from sigma.rule.base import SigmaYAMLLoader

    class RuleYamlLoader(SigmaYAMLLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: dict[Any, Any] = {}
            for key_node, _value_node in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    hash(key)
                except TypeError:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"a mapping key must be a plain value, not a {type(key).__name__}",
                        key_node.start_mark) from None
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})",
                        key_node.start_mark)
                seen[key] = key_node.start_mark
            return yaml.constructor.SafeConstructor.construct_mapping(self, node, deep)

        def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep=deep)
            except yaml.YAMLError:
                raise
            except (ValueError, TypeError, OverflowError, RecursionError) as error:
                raise yaml.constructor.ConstructorError(
                    None, None, f"value cannot be read: {type(error).__name__}: {error}", node.start_mark) from None

    return RuleYamlLoader


def _span(path: Path | None, text: str, line: int | None = 1, col: int | None = 1) -> SourceSpan:
    return SourceSpan(file=str(path) if path else None, line=line or 1, col=col or 1, text=text)


def _yaml_documents(text: str, path: Path | None) -> list[dict[str, Any]]:
    """The YAML documents of a rule file (see :func:`_rule_loader`); any failure is a located ``SigmaError``."""
    try:
        documents = [d for d in yaml.load_all(text, Loader=_rule_loader()) if d is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        problem = str(getattr(error, "problem", None) or error).strip()
        context = str(getattr(error, "context", None) or "").strip()
        if context:
            problem = f"{context}: {problem}"
        raise SigmaError(f"not valid YAML: {problem.splitlines()[0] if problem else 'malformed'}",
                         span=_span(path, text, mark.line + 1 if mark else 1, mark.column + 1 if mark else 1),
                         hint="fix the YAML at this position") from None
    except RecursionError:
        raise SigmaError("not valid YAML: nested too deeply to read", span=_span(path, text)) from None
    if not documents:
        raise SigmaError("empty rule file", span=_span(path, text))
    if not all(isinstance(d, dict) for d in documents):
        raise SigmaError("a Sigma rule is a YAML mapping (title, logsource, detection…)", span=_span(path, text))
    return documents


def yaml_marks(text: str) -> dict[tuple[Any, ...], tuple[int, int]]:
    """1-based (line, col) of every node of a rule file's first document, by path of keys (and list indexes);
    ``(key, ":key")`` paths give a mapping key's own position. Empty when the text does not compose."""
    marks: dict[tuple[Any, ...], tuple[int, int]] = {}
    try:
        root = next(iter(yaml.compose_all(text, Loader=yaml.CSafeLoader)), None)
    except (yaml.YAMLError, RecursionError):
        return marks

    def walk(node: yaml.Node, at: tuple[Any, ...], depth: int) -> None:
        marks[at] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if depth > 50:
            return
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is None:
                    continue
                marks.setdefault((*at, ":key", key), (key_node.start_mark.line + 1, key_node.start_mark.column + 1))
                walk(value_node, (*at, key), depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*at, index), depth + 1)

    if root is not None:
        walk(root, (), 0)
    return marks


def span_of(text: str, path: Path | None, *where: Any, key: bool = False) -> SourceSpan:
    """The position of the node at ``where`` (keys, list indexes) in a rule file, or of its nearest ancestor
    that exists (the file's first line at worst). ``key``: the mapping key's position instead of its value's."""
    marks = yaml_marks(text)
    for length in range(len(where), -1, -1):
        at = tuple(where[:length])
        if key and length == len(where) and length:
            mark = marks.get((*at[:-1], ":key", at[-1]))
        else:
            mark = marks.get(at)
        if mark is not None:
            return _span(path, text, *mark)
    return _span(path, text)


def _parse_collection(text: str, path: Path | None) -> SigmaCollection:
    return _collection_from_documents(_yaml_documents(text, path), text, path)


def _collection_from_documents(documents: list[dict[str, Any]], text: str, path: Path | None) -> SigmaCollection:
    _ensure_spec_modifiers()
    collection = SigmaCollection.from_dicts(documents, collect_errors=True)
    errors = [error for rule in collection.rules for error in rule.errors]
    if errors:
        raise _as_assay_error(errors[0], text, path)
    return collection


def _as_assay_error(error: Exception, text: str, path: Path | None) -> SigmaError:
    """An AssayError at the construct the message names (a quoted key or value), else at the first line."""
    message = str(error) or type(error).__name__
    message = re.sub(r"\s*in rule\s*$", "", message)
    line, col = _locate(message, text)
    if line is None:
        lowered = message.lower()
        section = next((s for s in ("logsource", "detection", "condition", "correlation", "tags", "status",
                                    "level", "date", "modified", "id", "title") if s in lowered), None)
        where: tuple[str, ...] = ()
        if section == "condition":
            where = ("detection", "condition")
        elif section is not None:
            where = (section,)
        span = span_of(text, path, *where, key=section not in (None, "condition"))
    else:
        span = SourceSpan(file=str(path) if path else None, line=line, col=col, text=text)
    hint = None
    if "modifier" in message.lower():
        hint = "see https://sigmahq.io/docs/basics/modifiers.html for the modifiers Sigma defines"
    return SigmaError(f"rule does not load: {message}", span=span, hint=hint)


def _locate(message: str, text: str) -> tuple[int | None, int | None]:
    """Best-effort line/col of the construct a pySigma message names (pySigma only knows the file)."""
    candidates = re.findall(r"'([^']+)'", message)
    modifier = re.search(r"[Uu]nknown modifier (\S+)", message)
    if modifier:
        candidates.insert(0, "|" + modifier.group(1).strip("'\""))
    for candidate in candidates:
        for number, line in enumerate(text.splitlines(), start=1):
            col = line.find(candidate)
            if col >= 0 and candidate:
                return number, col + 1
    return None, None


def load_rule_text(text: str, path: Path | None = None) -> LoadedRule:
    """A rule from YAML text (one document, or a correlation rule with the rules it references)."""
    documents = _yaml_documents(text, path)
    try:
        collection = _collection_from_documents(copy.deepcopy(documents), text, path)
    except SigmaError:
        raise
    except PySigmaError as error:
        raise _as_assay_error(error, text, path) from error
    except Exception as error:  # pySigma raises plain exceptions on some malformed rules
        raise _as_assay_error(error, text, path) from error
    if not collection.rules:
        raise SigmaError("no Sigma rule in file", span=_span(path, text))
    for index, rule in enumerate(collection.rules):
        if isinstance(rule, SigmaRule):
            _check_conditions(rule, text, path, document=index if len(collection.rules) > 1 else None)
    correlations = [r for r in collection.rules if isinstance(r, SigmaCorrelationRule)]
    main: SigmaRule | SigmaCorrelationRule = correlations[0] if correlations else collection.rules[0]
    return LoadedRule(path=path, text=text, rule=main, documents=tuple(documents))


def _check_conditions(rule: SigmaRule, text: str, path: Path | None, document: int | None) -> None:
    """Each condition of a rule parses and selects something, or a ``SigmaError`` at that condition.

    pySigma finds a bad condition only when a backend converts the rule, and turns ``all of nomatch_*`` (a
    pattern no search identifier matches) into no condition at all; a rule must say so when it loads.
    """
    from sigma.conditions import ConditionItem

    conditions = list(getattr(rule.detection, "parsed_condition", None) or [])
    for index, condition in enumerate(conditions):
        where: tuple[Any, ...] = ("detection", "condition") + ((index,) if len(conditions) > 1 else ())
        spelled = getattr(condition, "condition", "")
        try:
            parsed = condition.parsed
        except PySigmaError as error:
            message = re.sub(r"\s*in rule\s*$", "", str(error))
            raise SigmaError(f"condition {spelled!r} does not parse: {message}",
                             span=_condition_span(text, path, where, document),
                             hint="a condition combines the detection's search identifiers with and, or, not, "
                                  "'1 of x*', 'all of them' and parentheses") from None
        except Exception as error:  # pySigma's parser raising something else: still this condition's fault
            raise SigmaError(f"condition {spelled!r} does not parse: {type(error).__name__}: {error}",
                             span=_condition_span(text, path, where, document)) from None

        def empty(item: Any) -> bool:
            if item is None:
                return True
            if isinstance(item, ConditionItem):
                return not item.args or any(a is None or (isinstance(a, ConditionItem) and empty(a))
                                            for a in item.args)
            return False

        if empty(parsed):
            raise SigmaError(f"condition {spelled!r} selects nothing: a pattern such as 'x_*' in '1 of x_*' or "
                             "'all of x_*' matches no search identifier of the detection",
                             span=_condition_span(text, path, where, document),
                             hint="name the detection's search identifiers, or fix the pattern")


def _condition_span(text: str, path: Path | None, where: tuple[Any, ...], document: int | None) -> SourceSpan:
    if document:  # a later document of a multi-rule file: its own position is not tracked, only the file's
        return _span(path, text)
    return span_of(text, path, *where)


def resolve_rule_path(path: str | Path) -> Path:
    """A rule file, or a catalog detection folder's ``rule.sigma.yml``."""
    candidate = Path(path)
    if candidate.is_dir():
        inner = candidate / DETECTION_RULE_FILE
        if inner.is_file():
            return inner
        raise SigmaError(f"{candidate} is a folder without {DETECTION_RULE_FILE}",
                         span=SourceSpan.of_file(candidate),
                         hint="pass a Sigma rule file or a detection folder from the catalog")
    if not candidate.is_file():
        raise SigmaError(f"no such rule file: {candidate}", span=SourceSpan.of_file(candidate))
    return candidate


def load_rule(path: str | Path) -> LoadedRule:
    """Load one rule file (or a detection folder's Sigma rule); raises ``SigmaError`` naming file and construct."""
    rule_path = resolve_rule_path(path)
    try:
        text = rule_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SigmaError(f"cannot read rule: {error}", span=SourceSpan.of_file(rule_path)) from error
    return load_rule_text(text, rule_path)


def iter_rule_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Rule files under the given files and folders, sorted, each once."""
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            # In a catalog detection folder only rule.sigma.yml is Sigma (detection.yml, tests.yml are not).
            files: Iterable[Path] = sorted(
                p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file()
                and (p.name == DETECTION_RULE_FILE or not (p.parent / DETECTION_RULE_FILE).is_file()))
        else:
            files = [path]
        for file in files:
            resolved = file.resolve()
            if resolved not in seen:
                seen.add(resolved)
                yield file


def load_rules(paths: Iterable[str | Path] | str | Path) -> list[LoadedRule | RuleLoadError]:
    """Every rule under the paths; a file that fails becomes a ``RuleLoadError`` and the rest keep loading."""
    if isinstance(paths, str | Path):
        paths = [paths]
    results: list[LoadedRule | RuleLoadError] = []
    for file in iter_rule_files(paths):
        try:
            results.append(load_rule(file))
        except SigmaError as error:
            results.append(RuleLoadError(path=file, error=error))
    return results
