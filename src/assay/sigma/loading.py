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


def _yaml_documents(text: str, path: Path | None) -> list[dict[str, Any]]:
    """The YAML documents of a rule file, with pySigma's loader (libyaml, safe, rejects duplicate keys)."""
    from sigma.rule.base import SigmaYAMLLoader

    try:
        # SigmaYAMLLoader is a CSafeLoader (no arbitrary objects) that also rejects duplicate keys.
        documents = [d for d in yaml.load_all(text, Loader=SigmaYAMLLoader) if d is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        span = SourceSpan(file=str(path) if path else None, line=mark.line + 1 if mark else None,
                          col=mark.column + 1 if mark else None, text=text)
        problem = getattr(error, "problem", None) or str(error)
        raise SigmaError(f"not valid YAML: {problem}", span=span) from error
    if not documents:
        raise SigmaError("empty rule file", span=SourceSpan(file=str(path) if path else None))
    if not all(isinstance(d, dict) for d in documents):
        raise SigmaError("a Sigma rule is a YAML mapping (title, logsource, detection…)",
                         span=SourceSpan(file=str(path) if path else None, line=1, col=1, text=text))
    return documents


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
    """An AssayError naming the file, and the line of the construct when the message names one."""
    message = str(error)
    message = re.sub(r"\s*in rule\s*$", "", message)
    line, col = _locate(message, text)
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
        raise SigmaError("no Sigma rule in file", span=SourceSpan(file=str(path) if path else None))
    correlations = [r for r in collection.rules if isinstance(r, SigmaCorrelationRule)]
    main: SigmaRule | SigmaCorrelationRule = correlations[0] if correlations else collection.rules[0]
    return LoadedRule(path=path, text=text, rule=main, documents=tuple(documents))


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
