"""``assay lint``: every check a detection must pass before it is proven, each issue pointing at file:line:col.

Checks: schema (via the loader), ATT&CK ids against the pinned table (unknown → did you mean, revoked/deprecated →
replacement), the Sigma rule loads in pySigma offline (validators that download ATT&CK/D3FEND data are skipped and
replaced by a check against the packaged table), scenario coverage and consistency (an attack and a benign
scenario, outcomes that agree across forms or a declared known difference, false-positive and atomic provenance),
duplicate and dangling ids, required tables, and KQL through ``assay.kql.check`` when that module provides it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from assay.catalog.loader import DETECTION_FILE, Catalog, load_catalog, load_yaml
from assay.catalog.models import FORMS, Form, LoadedDetection, Scenario, YamlPath
from assay.errors import AssayError, CatalogError, SourceSpan
from assay.schema import known_tables
from assay.schema.attack import AttackData, UnknownTechniqueError, attack_data

Severity = Literal["error", "warning"]

#: pySigma validators that fetch MITRE data from the internet on first use; Assay never goes online at run time.
#: The ATT&CK tags they would check are checked against the packaged ATT&CK table instead (``sigma-attack-tag``).
NETWORK_VALIDATORS: dict[str, str] = {
    "attacktag": "downloads MITRE ATT&CK STIX data; replaced by a check against Assay's packaged ATT&CK table",
    "d3_fendtag": "downloads the MITRE D3FEND ontology; Assay has no offline D3FEND data",
}
#: Validators that judge file naming or SigmaHQ repository conventions, not the rule.
CONVENTION_VALIDATORS: dict[str, str] = {
    "filename_length": "SigmaHQ file naming convention; Assay names the file rule.sigma.yml",
    "duplicate_filename": "every Assay detection uses the same file name, rule.sigma.yml",
}


@dataclass(frozen=True)
class LintIssue:
    """One finding: severity, a short code naming the check, the message, where, and what to do."""

    severity: Severity
    code: str
    message: str
    span: SourceSpan
    hint: str | None = None

    def file_label(self, relative_to: Path | None = None) -> str | None:
        """The file, relative to ``relative_to`` when it lies under it."""
        file = self.span.file
        if file is not None and relative_to is not None:
            with contextlib.suppress(ValueError):
                file = str(Path(file).resolve().relative_to(relative_to.resolve()))
        return file

    def location(self, relative_to: Path | None = None) -> str:
        where = self.file_label(relative_to) or "<input>"
        if self.span.line is not None:
            where += f":{self.span.line}"
            if self.span.col is not None:
                where += f":{self.span.col}"
        return where

    def to_json(self, relative_to: Path | None = None) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "message": self.message,
                "file": self.file_label(relative_to),
                "line": self.span.line, "col": self.span.col, "hint": self.hint}


@dataclass
class LintReport:
    """The result of linting a catalog: the issues, sorted by place, and what was checked."""

    issues: list[LintIssue]
    detections_checked: int
    skipped_checks: dict[str, str]

    @property
    def errors(self) -> list[LintIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[LintIssue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors


def shared_data_dir(start: Path | None = None) -> Path | None:
    """``$ASSAY_SHARED_DATA``, or a ``shared/data`` folder next to an ancestor of ``start`` (the project)."""
    env = os.environ.get("ASSAY_SHARED_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder.parent / "shared" / "data"
        if (folder / "pyproject.toml").is_file() and candidate.is_dir():
            return candidate
    return None


class _Linter:
    def __init__(self, attack: AttackData, shared: Path | None) -> None:
        self.attack = attack
        self.shared = shared
        self.issues: list[LintIssue] = []
        self.skipped: dict[str, str] = {}

    def add(self, severity: Severity, code: str, message: str, span: SourceSpan, hint: str | None = None) -> None:
        self.issues.append(LintIssue(severity, code, message, span, hint))

    def error(self, code: str, message: str, span: SourceSpan, hint: str | None = None) -> None:
        self.add("error", code, message, span, hint)

    def warning(self, code: str, message: str, span: SourceSpan, hint: str | None = None) -> None:
        self.add("warning", code, message, span, hint)

    # ---------------------------------------------------------------------------------------------- catalog-wide

    def check_catalog(self, catalog: Catalog) -> None:
        for error in catalog.errors:
            self.error("schema", error.message, error.span or SourceSpan(str(catalog.root)), error.hint)
        seen: dict[str, LoadedDetection] = {}
        for loaded in catalog.detections:
            if loaded.id in seen:
                first = seen[loaded.id]
                self.error("duplicate-id", f"detection id {loaded.id} is also used by {first.detection_path}",
                           loaded.span("detection", ("id",)), hint="give this detection a fresh UUID")
            else:
                seen[loaded.id] = loaded
        known_ids = set(seen) | _sibling_ids(catalog)
        sigma_ids: dict[str, LoadedDetection] = {}
        for loaded in catalog.detections:
            self.check_detection(loaded, known_ids)
            sigma_id = _sigma_rule_id(loaded)
            if sigma_id is None:
                continue
            if sigma_id in sigma_ids or sigma_id in known_ids:
                owner = sigma_ids.get(sigma_id) or seen[sigma_id]
                self.error("duplicate-id", f"Sigma rule id {sigma_id} is also used by {owner.path.name}",
                           loaded.span("sigma", ("id",)), hint="give the Sigma rule a fresh UUID of its own")
            else:
                sigma_ids[sigma_id] = loaded

    # --------------------------------------------------------------------------------------------- per detection

    def check_detection(self, loaded: LoadedDetection, known_ids: set[str]) -> None:
        self.check_attack(loaded)
        self.check_related(loaded, known_ids)
        self.check_tables(loaded)
        self.check_sigma(loaded)
        self.check_kql(loaded)
        self.check_scenarios(loaded)

    def check_attack(self, loaded: LoadedDetection) -> None:
        technique_id = loaded.detection.technique
        span = loaded.span("detection", ("technique",))
        if not loaded.path.name.upper().startswith(technique_id.upper() + "-"):
            self.warning("folder-name", f"folder {loaded.path.name!r} does not start with the technique id "
                         f"({technique_id}-…)", span, hint=f"rename the folder to {technique_id}-<short-name>")
        try:
            technique = self.attack.resolve(technique_id)
        except UnknownTechniqueError as error:
            self.error("attack-id", error.message, span, error.hint)
            return
        if technique.revoked:
            replacement = self.attack.replacement(technique)
            self.error("attack-id", f"ATT&CK technique {technique_id} ({technique.name}) is revoked in ATT&CK "
                       f"v{self.attack.version}", span,
                       hint=f"use {replacement.id} ({replacement.name})" if replacement else
                       "choose an active technique")
        elif technique.deprecated:
            self.error("attack-id", f"ATT&CK technique {technique_id} ({technique.name}) is deprecated in ATT&CK "
                       f"v{self.attack.version}", span, hint="choose an active technique; deprecated ones have no "
                       "replacement")

    def check_related(self, loaded: LoadedDetection, known_ids: set[str]) -> None:
        for index, related in enumerate(loaded.detection.related):
            span = loaded.span("detection", ("related", index))
            if related == loaded.id:
                self.error("related-id", "a detection cannot be related to itself", span)
            elif related not in known_ids:
                self.error("related-id", f"related detection {related} is not in the catalog", span,
                           hint="fix the id or remove it from related")

    def check_tables(self, loaded: LoadedDetection) -> None:
        tables = known_tables()
        for index, table in enumerate(loaded.detection.required_tables):
            if table not in tables:
                from assay.errors import did_you_mean

                suggestion = did_you_mean(table, list(tables))
                self.error("table", f"unknown table {table!r}", loaded.span("detection", ("required_tables", index)),
                           hint=f"did you mean {suggestion!r}?" if suggestion else
                           "known tables are listed in docs/kql-support.md; declare others in a schema file")
        for query_index, hunting in enumerate(loaded.detection.hunting):
            for table_index, table in enumerate(hunting.tables):
                if table not in tables:
                    self.error("table", f"unknown table {table!r}",
                               loaded.span("detection", ("hunting", query_index, "tables", table_index)))
            source = _source_table(hunting.query)
            if hunting.tables and source in tables and source not in hunting.tables:
                self.warning("table", f"hunting query {hunting.title!r} reads {source}, which its tables list "
                             "does not name", loaded.span("detection", ("hunting", query_index, "tables")),
                             hint=f"add {source} to tables")
        source = _source_table(loaded.kql_text or "")
        if source in tables and source not in loaded.detection.required_tables:
            self.warning("table", f"sentinel.kql reads {source}, which required_tables does not name",
                         loaded.span("detection", ("required_tables",)), hint=f"add {source} to required_tables")

    # ------------------------------------------------------------------------------------------------------ Sigma

    def check_sigma(self, loaded: LoadedDetection) -> None:
        if loaded.sigma_text is None or loaded.sigma_path is None:
            self.error("sigma-missing", "no rule.sigma.yml in this detection folder",
                       SourceSpan(str(loaded.path)), hint="every detection carries a standalone Sigma rule")
            return
        from sigma.collection import SigmaCollection
        from sigma.exceptions import SigmaError

        sigma_marks = loaded.marks.get("sigma")
        file_span = SourceSpan(str(loaded.sigma_path), 1, 1, loaded.sigma_text)

        def locate(message: str) -> SourceSpan:
            if sigma_marks is None:
                return file_span
            return _locate_in_marks(sigma_marks.nodes, sigma_marks.keys, message, sigma_marks.file,
                                    loaded.sigma_text or "", default=("detection",))

        # The rule loads as every other command loads it (sigma eval, convert, hunt): the same error at the same
        # file:line:col everywhere.
        from assay.errors import SigmaError as RuleError
        from assay.sigma.loading import load_rule_text

        try:
            load_rule_text(loaded.sigma_text or "", loaded.sigma_path)
        except RuleError as error:
            code = "sigma-condition" if error.message.startswith("condition ") else "sigma-load"
            self.error(code, error.message, error.span or file_span, hint=error.hint)
            return
        try:
            collection = SigmaCollection.from_yaml(loaded.sigma_text, collect_errors=True)
        except SigmaError as error:
            self.error("sigma-load", f"Sigma rule does not load: {_sigma_message(error)}", locate(str(error)))
            return
        except Exception as error:  # pySigma raises plain YAML errors for malformed files
            self.error("sigma-load", f"Sigma rule does not load: {error}", file_span)
            return
        for load_error in collection.errors:
            self.error("sigma-load", f"Sigma rule does not load: {_sigma_message(load_error)}",
                       locate(str(load_error)))
        if collection.errors:
            return
        from sigma.correlations import SigmaCorrelationRule

        correlations = [r for r in collection.rules if isinstance(r, SigmaCorrelationRule)]
        if len(correlations) == 1:
            # A correlation rule comes with the rules it references (threshold and sequence detections): the
            # correlation carries the detection's tags; each referenced rule is validated like a single rule.
            correlation = correlations[0]
            referenced = {getattr(r, "reference", str(r)) for r in correlation.rules or ()}
            bases = [r for r in collection.rules if r is not correlation]
            unreferenced = [r.title for r in bases if (r.name or str(r.id)) not in referenced
                            and str(r.id) not in referenced]
            if unreferenced:
                self.error("sigma-load", f"rule.sigma.yml holds rules the correlation does not reference: "
                           f"{', '.join(unreferenced)}", file_span,
                           hint="a correlation file holds the correlation and only the rules it names")
            for base in bases:
                self.run_sigma_validators(base, locate)
            self.check_sigma_tags(loaded, correlation, sigma_marks.span(("tags",)) if sigma_marks else file_span)
            return
        if len(collection.rules) != 1:
            self.error("sigma-load", f"rule.sigma.yml holds {len(collection.rules)} rules; expected exactly one "
                       "(or one correlation rule with the rules it references)", file_span)
            return
        rule = collection.rules[0]
        detection = getattr(rule, "detection", None)
        for condition in getattr(detection, "parsed_condition", []) or []:
            try:
                condition.parse()
            except SigmaError as error:
                self.error("sigma-condition", f"Sigma condition does not parse: {_sigma_message(error)}",
                           sigma_marks.span(("detection", "condition")) if sigma_marks else file_span)
        self.run_sigma_validators(rule, locate)
        self.check_sigma_tags(loaded, rule, sigma_marks.span(("tags",)) if sigma_marks else file_span)

    def run_sigma_validators(self, rule: Any, locate: Callable[[str], SourceSpan]) -> None:
        from sigma.validation import SigmaValidator
        from sigma.validators.core import validators

        skipped = {**NETWORK_VALIDATORS, **CONVENTION_VALIDATORS}
        for name, reason in skipped.items():
            self.skipped[f"pySigma validator {name}"] = reason
        chosen = [cls for name, cls in validators.items() if name not in skipped]
        validator = SigmaValidator(chosen)
        try:
            issues = list(validator.validate_rule(rule)) + list(validator.finalize())
        except Exception as error:  # a validator crashing must not hide the other checks
            self.warning("sigma-validator", f"a pySigma validator failed: {error}", locate(""))
            return
        for issue in issues:
            details = " ".join(f"{k}={v}" for k, v in vars(issue).items() if k not in ("rules",) and v)
            severity: Severity = "error" if issue.severity.name in ("HIGH", "CRITICAL") else "warning"
            message = issue.description + (f" ({details})" if details else "")
            self.add(severity, "sigma-validator", f"pySigma: {message}", locate(details or issue.description))

    def check_sigma_tags(self, loaded: LoadedDetection, rule: Any, span: SourceSpan) -> None:
        attack_tags = [str(tag.name).lower() for tag in getattr(rule, "tags", []) if tag.namespace == "attack"]
        tactic_names = {t.shortname for t in self.attack.tactics}
        for tag in attack_tags:
            if re.fullmatch(r"t\d{4}(\.\d{3})?", tag):
                technique = self.attack.technique(tag.upper())
                if technique is None:
                    self.error("sigma-attack-tag", f"Sigma tag attack.{tag} is not an ATT&CK "
                               f"v{self.attack.version} technique", span)
                elif not technique.usable:
                    replacement = self.attack.replacement(technique)
                    self.error("sigma-attack-tag", f"Sigma tag attack.{tag} names a revoked or deprecated "
                               "technique", span, hint=f"use attack.{replacement.id.lower()}" if replacement else None)
            elif re.fullmatch(r"[gs]\d{4}", tag):
                continue  # groups and software: not in the compact table, not checked offline
            elif tag not in tactic_names:
                self.warning("sigma-attack-tag", f"Sigma tag attack.{tag} is not an ATT&CK v{self.attack.version} "
                             "tactic", span, hint=f"tactics: {', '.join(sorted(tactic_names))}")
        wanted = loaded.detection.technique.lower()
        if wanted not in attack_tags:
            self.error("sigma-attack-tag", f"the Sigma rule is not tagged attack.{wanted} (the detection's technique)",
                       span, hint=f"add 'attack.{wanted}' to tags")
        technique = self.attack.technique(loaded.detection.technique)
        if technique is not None:
            for tactic in self.attack.tactics_of(technique):
                if tactic.shortname not in attack_tags:
                    self.warning("sigma-attack-tag", f"the Sigma rule is not tagged attack.{tactic.shortname} "
                                 f"({tactic.name}, the technique's tactic)", span)

    # -------------------------------------------------------------------------------------------------------- KQL

    def check_kql(self, loaded: LoadedDetection) -> None:
        if loaded.kql_text is None or loaded.kql_path is None:
            self.error("kql-missing", "no sentinel.kql in this detection folder", SourceSpan(str(loaded.path)),
                       hint="every detection carries its native Microsoft Sentinel / Defender XDR query")
            return
        if not loaded.kql_text.strip():
            self.error("kql-missing", "sentinel.kql is empty", SourceSpan(str(loaded.kql_path), 1, 1))
            return
        check = _kql_checker()
        if check is None:
            self.skipped["KQL parse/bind"] = "assay.kql.check is not available yet"
        else:
            self._run_kql_check(check, loaded.kql_text, str(loaded.kql_path), line_offset=0, col_offset=0)
            for index, hunting in enumerate(loaded.detection.hunting):
                line, col = _block_scalar_origin(loaded, ("hunting", index, "query"))
                self._run_kql_check(check, hunting.query, str(loaded.detection_path), line_offset=line,
                                    col_offset=col, context=f"hunting query {hunting.title!r}")
        self.check_alert_columns(loaded)

    def _run_kql_check(self, check: Callable[..., None], text: str, file: str, *, line_offset: int,
                       col_offset: int, context: str | None = None) -> None:
        try:
            check(text, file=file)
        except AssayError as error:
            span = error.span or SourceSpan(file)
            if line_offset and span.line is not None:
                full_text = Path(file).read_text(encoding="utf-8") if Path(file).is_file() else None
                span = SourceSpan(file, span.line + line_offset, (span.col or 1) + col_offset, full_text)
            elif span.file is None:
                span = SourceSpan(file, span.line, span.col, text)
            message = f"{context}: {error.message}" if context else error.message
            self.error("kql", message, span, error.hint)
        except Exception as error:  # the KQL front end is young: report, never crash lint
            self.warning("kql", f"KQL checker failed: {type(error).__name__}: {error}", SourceSpan(file))

    def check_alert_columns(self, loaded: LoadedDetection) -> None:
        """Expected columns and the alert predicate must name columns the native query outputs."""
        if loaded.kql_text is None:
            return
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", loaded.kql_text))
        alert = loaded.detection.alert
        if alert is not None:
            for name in _predicate_identifiers(alert.predicate):
                if name not in words:
                    self.error("alert-predicate", f"alert predicate names {name!r}, which sentinel.kql does not "
                               "output", loaded.span("detection", ("alert", "predicate")))
        for index, scenario in enumerate(loaded.scenarios):
            for column in scenario.expected.columns:
                if column not in words:
                    self.error("expected-columns", f"scenario {scenario.id}: expected column {column!r} is not in "
                               "sentinel.kql", loaded.span("tests", ("scenarios", index, "expected", "columns",
                                                                     column), key=True))

    # -------------------------------------------------------------------------------------------------- scenarios

    def check_scenarios(self, loaded: LoadedDetection) -> None:
        folder_span = SourceSpan(str(loaded.tests_path or loaded.path))
        if loaded.tests_path is None:
            self.error("scenarios", "no tests.yml in this detection folder", SourceSpan(str(loaded.path)),
                       hint="add tests.yml with at least one attack and one benign scenario")
            return
        kinds = {s.kind for s in loaded.scenarios}
        for kind in ("attack", "benign"):
            if kind not in kinds:
                self.error("scenarios", f"no {kind} scenario", loaded.span("tests", ("scenarios",)) or folder_span,
                           hint=f"add a scenario with kind: {kind}")
        scenario_ids = {s.id for s in loaded.scenarios}
        for index, difference in enumerate(loaded.detection.known_differences):
            if difference.scenarios != "all":
                for scenario_index, scenario_id in enumerate(difference.scenarios):
                    if scenario_id not in scenario_ids:
                        self.error("known-difference", f"known difference names scenario {scenario_id!r}, "
                                   "which tests.yml does not have",
                                   loaded.span("detection", ("known_differences", index, "scenarios",
                                                             scenario_index)))
            covered = [s for s in loaded.scenarios if difference.scenarios == "all" or s.id in difference.scenarios]
            if covered and all(len({s.expected.outcome(form) for form in difference.forms}) == 1 for s in covered):
                self.warning("known-difference", f"known difference between {' and '.join(difference.forms)} is "
                             "declared, but every scenario it names expects the same outcome from those forms",
                             loaded.span("detection", ("known_differences", index)),
                             hint="remove the stale declaration, or fix the scenarios' expected outcomes")
            for form in difference.forms:
                if form not in loaded.forms:
                    self.error("known-difference", f"known difference names form {form!r}, which this detection "
                               "does not have", loaded.span("detection", ("known_differences", index, "forms")))
        atomic_tests = _AtomicIndex(self.shared)
        for index, scenario in enumerate(loaded.scenarios):
            self.check_scenario(loaded, index, scenario, atomic_tests)

    def check_scenario(self, loaded: LoadedDetection, index: int, scenario: Scenario,
                       atomic_tests: _AtomicIndex) -> None:
        path: YamlPath = ("scenarios", index)
        provenance = scenario.provenance
        if provenance.false_positive is not None:
            items = loaded.detection.false_positives
            fp = provenance.false_positive
            span = loaded.span("tests", (*path, "provenance", "false_positive", "index"))
            if fp.index > len(items):
                self.error("provenance", f"scenario {scenario.id}: false_positive index {fp.index} is out of range "
                           f"(the detection lists {len(items)})", span)
            elif fp.text is not None and fp.text.strip() != items[fp.index - 1].strip():
                self.error("provenance", f"scenario {scenario.id}: false_positive text does not match item "
                           f"{fp.index} of detection.yml", loaded.span("tests", (*path, "provenance",
                                                                             "false_positive", "text")),
                           hint=f"item {fp.index} is: {items[fp.index - 1]}")
            if scenario.kind != "benign":
                self.error("provenance", f"scenario {scenario.id}: a false-positive scenario must be benign",
                           loaded.span("tests", (*path, "kind")))
        if provenance.atomic is not None:
            technique = provenance.atomic.technique or loaded.detection.technique
            problem = atomic_tests.check(technique, provenance.atomic.guid, provenance.atomic.test)
            if problem is not None:
                self.error("provenance", f"scenario {scenario.id}: {problem}",
                           loaded.span("tests", (*path, "provenance", "atomic", "guid")))
            elif not atomic_tests.available:
                self.skipped["Atomic Red Team GUIDs"] = "../shared/data (or $ASSAY_SHARED_DATA) not found"
        if provenance.recording is not None:
            if self.shared is None:
                self.skipped["recording paths"] = "../shared/data (or $ASSAY_SHARED_DATA) not found"
            elif not (self.shared / provenance.recording.path).is_file():
                self.error("provenance", f"scenario {scenario.id}: recording {provenance.recording.path} is not in "
                           f"{self.shared}", loaded.span("tests", (*path, "provenance", "recording", "path")))
        self.check_outcomes(loaded, path, scenario)

    def check_outcomes(self, loaded: LoadedDetection, path: YamlPath, scenario: Scenario) -> None:
        """Forms that disagree, or an outcome against the scenario's kind, need a declared known difference."""
        wanted = "fires" if scenario.kind == "attack" else "does-not-fire"
        forms = [f for f in FORMS if f in loaded.forms]
        for form in forms:
            outcome = scenario.expected.outcome(form)
            if outcome != wanted and not any(
                loaded.known_difference(form, other, scenario.id) for other in forms if other != form
            ):
                self.error("expected-outcome", f"scenario {scenario.id} is {scenario.kind} but expects {form} "
                           f"'{outcome}', and no known difference covers it",
                           loaded.span("tests", (*path, "expected", form)),
                           hint="fix the expectation or declare the difference in detection.yml known_differences")
        for position, form_a in enumerate(forms):
            for form_b in forms[position + 1:]:
                if scenario.expected.outcome(form_a) != scenario.expected.outcome(form_b) and \
                        loaded.known_difference(form_a, form_b, scenario.id) is None:
                    self.error("expected-outcome", f"scenario {scenario.id}: {form_a} and {form_b} expect "
                               "different outcomes and no known difference covers this pair",
                               loaded.span("tests", (*path, "expected")),
                               hint=f"declare a known difference for forms [{form_a}, {form_b}]")
        alert = loaded.detection.alert
        columns = scenario.expected.columns
        if alert is not None and columns:
            verdict = _evaluate_predicate(alert.predicate, columns)
            if verdict is not None:
                implied = "fires" if verdict else "does-not-fire"
                if implied != scenario.expected.kql:
                    self.error("expected-columns", f"scenario {scenario.id}: the expected columns make the alert "
                               f"predicate {verdict}, so kql should be '{implied}', not "
                               f"'{scenario.expected.kql}'", loaded.span("tests", (*path, "expected", "columns")))


# ------------------------------------------------------------------------------------------------------- helpers


class _AtomicIndex:
    """Atomic Red Team tests by technique, read lazily from the shared data (absent → checks skipped)."""

    def __init__(self, shared: Path | None) -> None:
        self.root = shared / "atomic-red-team" / "atomics" if shared else None
        self.cache: dict[str, dict[str, str] | None] = {}

    @property
    def available(self) -> bool:
        return self.root is not None and self.root.is_dir()

    def tests(self, technique: str) -> dict[str, str] | None:
        if technique in self.cache:
            return self.cache[technique]
        result: dict[str, str] | None = None
        if self.root is not None:
            path = self.root / technique / f"{technique}.yaml"
            if path.is_file():
                try:
                    data, _ = load_yaml(path)
                    result = {str(t.get("auto_generated_guid", "")).lower(): str(t.get("name", ""))
                              for t in data.get("atomic_tests", []) if isinstance(t, dict)}
                except CatalogError:
                    result = None
        self.cache[technique] = result
        return result

    def check(self, technique: str, guid: str, name: str) -> str | None:
        if not self.available:
            return None
        tests = self.tests(technique)
        if tests is None:
            return f"Atomic Red Team has no tests for {technique} (atomics/{technique}/{technique}.yaml)"
        if guid.lower() not in tests:
            names = "; ".join(f"{g} {n!r}" for g, n in tests.items())
            return f"Atomic Red Team {technique} has no test {guid} (its tests: {names})"
        if tests[guid.lower()].strip() != name.strip():
            return f"Atomic test {guid} is named {tests[guid.lower()]!r}, not {name!r}"
        return None


def _source_table(query: str) -> str | None:
    """The table a tabular KQL query starts from (its first word, after comments and let statements)."""
    for line in query.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("//") or stripped.startswith("let "):
            continue
        match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", stripped)
        return match.group(0) if match else None
    return None


def _sigma_rule_id(loaded: LoadedDetection) -> str | None:
    """The Sigma rule's own id, read from the YAML (lowercased), or None when absent or unreadable."""
    marks = loaded.marks.get("sigma")
    if marks is None or loaded.sigma_path is None:
        return None
    match = re.search(r"^id:\s*['\"]?([0-9A-Fa-f-]{36})", loaded.sigma_text or "", re.MULTILINE)
    return match.group(1).lower() if match else None


def _sigma_message(error: Exception) -> str:
    text = str(error.args[0]) if error.args else str(error)
    return text


def _locate_in_marks(nodes: dict[YamlPath, tuple[int, int]], keys: dict[YamlPath, tuple[int, int]], message: str,
                     file: str, text: str, default: YamlPath) -> SourceSpan:
    """pySigma errors carry no position: find the quoted name they mention among the rule's keys and values."""
    quoted = re.findall(r"'([^']+)'", message)
    for token in quoted:
        for path, (line, col) in keys.items():
            last = str(path[-1])
            if token == last or token in last.split("|"):
                return SourceSpan(file, line, col, text)
        lines = text.splitlines()
        for number, content in enumerate(lines, start=1):
            position = content.find(token)
            if position >= 0 and not content.lstrip().startswith("#"):
                return SourceSpan(file, number, position + 1, text)
    line, col = keys.get(default) or nodes.get(default) or (1, 1)
    return SourceSpan(file, line, col, text)


def _block_scalar_origin(loaded: LoadedDetection, path: YamlPath) -> tuple[int, int]:
    """Line offset and column offset of a block scalar's first content line (for spans inside the query)."""
    marks = loaded.marks.get("detection")
    if marks is None or path not in marks.nodes:
        return 0, 0
    line, _ = marks.nodes[path]
    lines = marks.text.splitlines()
    header = lines[line - 1] if line - 1 < len(lines) else ""
    if header.rstrip().endswith(("|", "|-", "|+", ">", ">-", ">+")):
        content_line = line + 1
        content = lines[content_line - 1] if content_line - 1 < len(lines) else ""
        indent = len(content) - len(content.lstrip(" "))
        return content_line - 1, indent
    return line - 1, marks.nodes[path][1] - 1


_PREDICATE_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z_][A-Za-z0-9_]*)")


def _predicate_identifiers(predicate: str) -> list[str]:
    return [t for t in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", predicate) if t not in ("and", "or", "not", "true",
                                                                                       "false")]


def _evaluate_predicate(predicate: str, columns: dict[str, Any]) -> bool | None:
    """Evaluate a boolean KQL predicate of identifiers, and/or/not and parentheses; None when it is richer."""
    tokens: list[str] = []
    position = 0
    text = predicate.strip()
    while position < len(text):
        match = _PREDICATE_TOKEN.match(text, position)
        if not match:
            return None
        tokens.append(match.group(1))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    index = 0

    def peek() -> str | None:
        return tokens[index] if index < len(tokens) else None

    def take() -> str:
        nonlocal index
        index += 1
        return tokens[index - 1]

    def parse_or() -> bool | None:
        left = parse_and()
        while peek() == "or":
            take()
            right = parse_and()
            if left is None or right is None:
                return None
            left = left or right
        return left

    def parse_and() -> bool | None:
        left = parse_not()
        while peek() == "and":
            take()
            right = parse_not()
            if left is None or right is None:
                return None
            left = left and right
        return left

    def parse_not() -> bool | None:
        if peek() == "not":
            take()
            inner = parse_not()
            return None if inner is None else not inner
        return parse_atom()

    def parse_atom() -> bool | None:
        token = peek()
        if token is None:
            return None
        take()
        if token == "(":
            value = parse_or()
            if peek() != ")":
                return None
            take()
            return value
        if token in ("true", "false"):
            return token == "true"
        if token not in columns or not isinstance(columns[token], bool):
            return None
        return bool(columns[token])

    result = parse_or()
    return result if index == len(tokens) else None


def _sibling_ids(catalog: Catalog) -> set[str]:
    """Ids of the detections next to the linted ones (linting one folder of a catalog still knows its
    neighbours, so a ``related`` id pointing at one is not dangling). Only each sibling's ``id:`` is read."""
    ids: set[str] = set()
    parents = {loaded.path.resolve().parent for loaded in catalog.detections}
    for parent in parents:
        for detection_file in parent.glob(f"*/{DETECTION_FILE}"):
            with contextlib.suppress(OSError, yaml.YAMLError):
                data = yaml.safe_load(detection_file.read_text(encoding="utf-8"))
                if isinstance(data, dict) and isinstance(data.get("id"), str):
                    ids.add(data["id"].lower())
    return ids


def _kql_checker() -> Callable[..., None] | None:
    """``assay.kql.check(query, *, file)`` when the KQL front end provides it (guarded: lint works without it)."""
    try:
        from assay import kql
    except Exception:  # not there yet, or broken mid-development: lint still runs every other check
        return None
    check = getattr(kql, "check", None)
    return check if callable(check) else None


def lint_catalog(paths: str | Path | Iterable[str | Path], *, attack_version: str | None = None,
                 shared: Path | None = None) -> LintReport:
    """Lint every detection at or under ``paths``; never raises for content problems (they are issues)."""
    path_list = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    linter = _Linter(attack_data(attack_version), shared if shared is not None else shared_data_dir(
        path_list[0] if path_list else None))
    if linter.shared is None:
        linter.skipped["Atomic Red Team GUIDs and recording paths"] = (
            "../shared/data (or $ASSAY_SHARED_DATA) not found")
    catalog = load_catalog(path_list)
    linter.check_catalog(catalog)
    issues = sorted(linter.issues, key=lambda i: (i.span.file or "", i.span.line or 0, i.span.col or 0))
    return LintReport(issues, len(catalog.detections), linter.skipped)


def forms_of(loaded: LoadedDetection) -> tuple[Form, ...]:
    return loaded.forms
