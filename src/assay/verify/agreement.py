"""Agreement between forms: where a detection's forms reach different verdicts, say so and say why.

Forms must agree on every scenario. A disagreement is reported with the forms' verdicts, the event they disagree
on and, when it can be pinned down, the operator that differs: each form's atoms (a Sigma ``field|modifier: value``,
a KQL ``Column op "value"``, a SQLite ``Field LIKE '%v%'``) are re-evaluated on the scenario's event, and an atom pair on the same field and value
whose truth differs is named (e.g. Sigma ``CommandLine|contains '/s'`` is true on ``/su``, KQL
``ProcessCommandLine has "/s"`` is false). Differences the detection declares (``known_differences``) are reported,
not failed; a declaration that no longer matches anything is pointed out.

The atom evaluation here is a diagnostic aid with the documented semantics of each operator (Kusto terms are
maximal runs of ASCII letters and digits); verdicts always come from the real engines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Any

import yaml

from assay.catalog.models import Form, LoadedDetection
from assay.verify.report import AgreementFinding, DetectionReport, FormResult, JsonScalar, cap_value
from assay.verify.synth import Telemetry

#: KQL columns that name the same thing in different ways: an atom on one is comparable with an atom on another.
COLUMN_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"FolderPath", "FileName", "ProcessVersionInfoOriginalFileName"}),
    frozenset({"InitiatingProcessFolderPath", "InitiatingProcessFileName",
               "InitiatingProcessVersionInfoOriginalFileName"}),
    frozenset({"ProcessCommandLine"}),
    frozenset({"InitiatingProcessCommandLine"}),
    frozenset({"AccountName"}),
)
#: Sigma (Sysmon) field -> the Defender column holding the same fact (the Microsoft XDR pipeline's choices).
SIGMA_TO_DEFENDER = {
    "Image": "FolderPath", "OriginalFileName": "ProcessVersionInfoOriginalFileName",
    "CommandLine": "ProcessCommandLine", "ParentImage": "InitiatingProcessFolderPath",
    "ParentCommandLine": "InitiatingProcessCommandLine", "User": "AccountName",
    "CurrentDirectory": "ProcessCurrentWorkingDirectory", "IntegrityLevel": "ProcessIntegrityLevel",
    "Product": "ProcessVersionInfoProductName", "Company": "ProcessVersionInfoCompanyName",
    "Description": "ProcessVersionInfoFileDescription",
}
KQL_OPERATORS = (
    "!has_cs", "has_any", "has_all", "has_cs", "!has", "has", "!contains_cs", "contains_cs", "!contains",
    "contains", "!startswith", "startswith_cs", "startswith", "!endswith", "endswith_cs", "endswith", "in~", "!in~",
    "!in", "in", "=~", "!~", "==", "!=", "matches regex", "hasprefix", "hassuffix",
)
_KQL_STRING = r'(?:@"(?:[^"]|"")*"|@\'(?:[^\']|\'\')*\'|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')'
_KQL_ATOM = re.compile(
    r"(?P<column>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>" + "|".join(re.escape(o) for o in sorted(
        KQL_OPERATORS, key=len, reverse=True)) + r")\s*(?P<value>" + _KQL_STRING + r"|\(\s*" + _KQL_STRING
    + r"(?:\s*,\s*" + _KQL_STRING + r")*\s*\))")


@dataclass(frozen=True)
class Atom:
    """One comparison of a form: ``column op value(s)``, with the text it came from."""

    form: str
    #: The Defender column the atom reads (Sigma fields are mapped, so atoms of all forms compare).
    column: str
    operator: str
    values: tuple[str, ...]
    text: str
    #: The Sigma field as written (Sigma atoms only).
    sigma_field: str | None = None

    def group(self) -> frozenset[str]:
        for group in COLUMN_GROUPS:
            if self.column in group:
                return group
        return frozenset({self.column})


# --------------------------------------------------------------------------------------------------------------
# Atoms of each form
# --------------------------------------------------------------------------------------------------------------


def _kql_string_value(literal: str) -> str:
    if literal.startswith("@"):
        quote = literal[1]
        return literal[2:-1].replace(quote * 2, quote)
    body = literal[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), body)


def kql_atoms(text: str, form: str = "kql") -> list[Atom]:
    """Every ``Column op "value"`` / ``Column op ("a", "b")`` comparison in a KQL query."""
    atoms: list[Atom] = []
    for match in _KQL_ATOM.finditer(text):
        values = tuple(_kql_string_value(m.group(0)) for m in re.finditer(_KQL_STRING, match.group("value")))
        atoms.append(Atom(form, match.group("column"), match.group("op"), values, " ".join(match.group(0).split())))
    return atoms


_SQL_ATOM = re.compile(
    r"(?P<field>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>NOT\s+LIKE|LIKE|=)\s*'(?P<value>(?:[^']|'')*)'"
    r"(?:\s*ESCAPE\s*'(?P<escape>[^']*)')?", re.IGNORECASE)


def sqlite_atoms(text: str, form: str = "converted:sqlite") -> list[Atom]:
    """Every ``Field LIKE '%v%' ESCAPE '\\'`` / ``Field='v'`` of the SQLite backend's query, as an atom on the
    Sysmon field (LIKE is ASCII case-insensitive in SQLite; ``=`` is case-sensitive)."""
    atoms: list[Atom] = []
    for match in _SQL_ATOM.finditer(text):
        field, op, raw = match.group("field"), match.group("op").upper(), match.group("value").replace("''", "'")
        if op == "=":
            kind, needle = "sqlite-equals-cs", raw
        else:
            escape = match.group("escape") or ""
            starts, ends = raw.startswith("%"), raw.endswith("%") and not raw.endswith(escape + "%") if escape \
                else raw.endswith("%")
            body = raw[1 if starts else 0: len(raw) - (1 if ends else 0)]
            needle = re.sub(re.escape(escape) + r"(.)", r"\1", body) if escape else body
            kind = {(True, True): "like-contains", (True, False): "like-endswith", (False, True): "like-startswith",
                    (False, False): "like-equals"}[(starts, ends)]
            if op.startswith("NOT"):
                kind = "not-" + kind
        atoms.append(Atom(form, SIGMA_TO_DEFENDER.get(field, field), kind, (needle,), " ".join(match.group(0).split()),
                          sigma_field=field))
    return atoms


def evaluate_sqlite_atom(atom: Atom, event: dict[str, Any]) -> tuple[bool, str | None]:
    """(truth, the value that matched) of a SQLite atom on a Sysmon EventData dict, with SQLite's semantics."""
    value = event.get(atom.sigma_field or atom.column)
    if value is None:
        return False, None
    text, needle = str(value), atom.values[0]
    kind = atom.operator.removeprefix("not-")
    if kind == "sqlite-equals-cs":
        result = text == needle
    else:
        folded, wanted = text.lower(), needle.lower()  # SQLite's LIKE folds ASCII letters only
        result = {"like-contains": wanted in folded, "like-endswith": folded.endswith(wanted),
                  "like-startswith": folded.startswith(wanted), "like-equals": folded == wanted}[kind]
    result = not result if atom.operator.startswith("not-") else result
    return result, needle if result else None


def sigma_atoms(text: str, form: str = "sigma") -> list[Atom]:
    """Every ``field|modifiers: value(s)`` of a Sigma rule's detection, with the field mapped to Defender's."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    detection = document.get("detection") if isinstance(document, dict) else None
    if not isinstance(detection, dict):
        return []
    atoms: list[Atom] = []
    for name, selection in detection.items():
        if name == "condition":
            continue
        maps = selection if isinstance(selection, list) else [selection]
        for item in maps:
            if not isinstance(item, dict):
                continue
            for key, raw in item.items():
                field, *modifiers = str(key).split("|")
                values = tuple(str(v) for v in (raw if isinstance(raw, list) else [raw]))
                operator = "|".join(modifiers) or "equals"
                column = SIGMA_TO_DEFENDER.get(field, field)
                shown = values[0] if len(values) == 1 else f"{len(values)} values"
                atoms.append(Atom(form, column, operator, values, f"{key}: {shown!r} ({name})", sigma_field=field))
    return atoms


# --------------------------------------------------------------------------------------------------------------
# Evaluating atoms
# --------------------------------------------------------------------------------------------------------------


def kusto_has(haystack: str, needle: str, case_sensitive: bool = False) -> bool:
    """Kusto's ``has``: the needle as whole terms (only its alphanumeric edges need a term boundary)."""
    if needle == "":
        return True
    start = r"(?:^|[^0-9A-Za-z])" if needle[:1].isascii() and needle[:1].isalnum() else ""
    end = r"(?:$|[^0-9A-Za-z])" if needle[-1:].isascii() and needle[-1:].isalnum() else ""
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.search(start + re.escape(needle) + end, haystack, flags | re.DOTALL) is not None


def _kql_one(operator: str, value: str, needle: str) -> bool:
    negated = operator.startswith("!") and operator not in ("!=", "!~")
    op = operator.lstrip("!") if negated else operator
    case_sensitive = op.endswith("_cs") or op in ("==", "!=", "in")
    base = op.removesuffix("_cs")
    a, b = (value, needle) if case_sensitive else (value.lower(), needle.lower())
    if base in ("has", "has_any", "has_all"):
        result = kusto_has(value, needle, case_sensitive)
    elif base == "hasprefix":
        result = kusto_has(value + " ", needle, case_sensitive) or a.startswith(b)
    elif base == "hassuffix":
        result = a.endswith(b) or kusto_has(" " + value, needle, case_sensitive)
    elif base == "contains":
        result = b in a
    elif base == "startswith":
        result = a.startswith(b)
    elif base == "endswith":
        result = a.endswith(b)
    elif base in ("==", "=~", "in", "in~"):
        result = a == b
    elif base in ("!=", "!~"):
        result = a != b
    elif base == "matches regex":
        import re2

        result = re2.search(needle, value) is not None
    else:
        result = False
    return not result if negated else result


def evaluate_kql_atom(atom: Atom, row: dict[str, Any]) -> tuple[bool, str | None]:
    """(truth, the value that decided it) of a KQL atom on a Defender row."""
    value = row.get(atom.column)
    if value is None:
        return False, None
    text = str(value)
    if atom.operator == "has_all":
        return all(_kql_one(atom.operator, text, v) for v in atom.values), None
    for needle in atom.values:
        if _kql_one(atom.operator, text, needle):
            return (True, needle) if not atom.operator.startswith("!") else (True, None)
    return False, None


def evaluate_sigma_atom(atom: Atom, event: dict[str, Any]) -> tuple[bool, str | None]:
    """(truth, the value that matched) of a Sigma atom on a Sysmon EventData dict (case-insensitive)."""
    field = atom.sigma_field or atom.column
    value = event.get(field)
    if value is None:
        return False, None
    text = str(value)
    modifiers = atom.operator.split("|")
    matches = []
    for needle in atom.values:
        if "re" in modifiers:
            import re2

            ok = re2.search(needle, text) is not None
        else:
            pattern = re.escape(needle).replace(r"\*", ".*").replace(r"\?", ".")
            if "contains" in modifiers:
                pattern = f".*{pattern}.*"
            elif "startswith" in modifiers:
                pattern = f"{pattern}.*"
            elif "endswith" in modifiers:
                pattern = f".*{pattern}"
            ok = re.fullmatch(pattern, text, re.IGNORECASE | re.DOTALL) is not None
        matches.append((ok, needle))
    if "all" in modifiers:
        return all(ok for ok, _ in matches), None
    for ok, needle in matches:
        if ok:
            return True, needle
    return False, None


def _normal(value: str) -> str:
    return value.lower().strip("\\/ ")


# --------------------------------------------------------------------------------------------------------------
# Pinning down the operator
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnosis:
    operator: str | None
    explanation: str | None
    event: dict[str, JsonScalar]


def _atoms_for(form: str, loaded: LoadedDetection, converted: dict[str, str]) -> list[Atom]:
    if form == "sigma":
        return sigma_atoms(loaded.sigma_text or "")
    if form == "kql":
        return kql_atoms(loaded.kql_text or "")
    target = form.split(":", 1)[1] if ":" in form else next(iter(converted), "")
    if target == "sqlite":
        return sqlite_atoms(converted.get(target, ""), form=form)
    if target in NON_KQL_TARGETS:
        # Spark SQL / EQL text has no atoms here; its verdicts are still compared, without an operator diagnosis.
        return []
    return kql_atoms(converted.get(target, ""), form=form)


#: Converted targets whose text is not KQL (run on SQLite, Spark, EQL): no atom-level diagnosis.
NON_KQL_TARGETS = frozenset({"sqlite", "spark-sql", "elastic-eql"})


def _evaluate(atom: Atom, sysmon: dict[str, Any], defender: dict[str, Any]) -> tuple[bool, str | None]:
    if atom.form == "converted:sqlite":
        return evaluate_sqlite_atom(atom, sysmon)
    return evaluate_sigma_atom(atom, sysmon) if atom.form == "sigma" else evaluate_kql_atom(atom, defender)


def _describe(atom: Atom, truth: bool, needle: str | None) -> str:
    if atom.form == "sigma":
        shown = needle if needle is not None else (atom.values[0] if len(atom.values) == 1 else
                                                   "/".join(atom.values[:4]))
        return f"Sigma {atom.sigma_field}|{atom.operator} {shown!r} is {str(truth).lower()}"
    shown = needle if needle is not None else (atom.values[0] if len(atom.values) == 1 else
                                               "/".join(atom.values[:4]))
    if atom.form == "converted:sqlite":
        return f"SQLite {atom.text} is {str(truth).lower()}"
    name = "KQL" if atom.form == "kql" else atom.form
    return f"{name} {atom.column} {atom.operator} {shown!r} is {str(truth).lower()}"


_SEMANTICS = {
    "sqlite-equals-cs": "= compares case-sensitively in SQLite, while a Sigma value matches in any case",
    "like-": "SQLite's LIKE folds ASCII letters only",
    "has": "KQL has matches whole terms (maximal runs of letters and digits)",
    "contains": "contains is a substring match",
    "equals": "a Sigma value without modifier must equal the whole field",
    "endswith": "endswith compares the end of the field",
    "=~": "=~ compares the whole value, case-insensitively",
}


def _why(a: Atom, b: Atom) -> str:
    notes = []
    for atom in (a, b):
        for key, text in _SEMANTICS.items():
            if key in atom.operator and text not in notes:
                notes.append(text)
                break
    return "; ".join(notes)


def _pin_operator(truths_a: list[tuple[Atom, bool, str | None]], truths_b: list[tuple[Atom, bool, str | None]],
                  sysmon: dict[str, Any], defender: dict[str, Any], fired: int | None = None
                  ) -> tuple[str, str] | None:
    """Two atoms on the same fact and the same value whose truth differs: (what differs, the column).

    ``fired`` (0 or 1) says which form fired: the atom must then be true on that side and false on the other,
    or it does not explain the verdicts."""
    # Atoms on the very same column first, then on columns naming the same thing (FolderPath / FileName …).
    pairs = sorted(((atom_a, atom_b) for atom_a, _, _ in truths_a for atom_b, _, _ in truths_b),
                   key=lambda pair: pair[0].column != pair[1].column)
    for atom_a, atom_b in pairs:
        if atom_a.group() != atom_b.group():
            continue
        normal_b = {_normal(v): v for v in atom_b.values}
        for value_a in atom_a.values:
            value_b = normal_b.get(_normal(value_a))
            if value_b is None:
                continue
            one_a = replace(atom_a, values=(value_a,))
            one_b = replace(atom_b, values=(value_b,))
            truth_a = _evaluate(one_a, sysmon, defender)[0]
            truth_b = _evaluate(one_b, sysmon, defender)[0]
            if truth_a != truth_b and (fired is None or truth_a == (fired == 0)):
                column = atom_b.column if atom_b.form != "sigma" else atom_a.column
                why = _why(atom_a, atom_b)
                text = f"{_describe(one_a, truth_a, value_a)}; {_describe(one_b, truth_b, value_b)}"
                return (f"{text} ({why})" if why else text), column
    return None


#: One process creation as both schemas show it: (Sysmon EventData, Defender DeviceProcessEvents row).
ProcessPair = tuple[dict[str, Any], dict[str, Any]]


def process_pairs(telemetry: Telemetry) -> list[ProcessPair]:
    """The synthesized process creations, Sysmon and Defender side by side (same order: one per process)."""
    sysmon = [r["Event"]["EventData"] for r in telemetry.sysmon if r["Event"]["System"]["EventID"] == 1]
    return list(zip(sysmon, telemetry.defender.get("DeviceProcessEvents", []), strict=False))


def diagnose(forms: tuple[str, str], loaded: LoadedDetection, pairs: Sequence[ProcessPair],
             converted: dict[str, str], fired: int | None = None) -> Diagnosis:
    """The atoms of two forms re-evaluated on each process event of the scenario; the first that differ in the
    direction of the verdicts (``fired``: index of the form that fired, when one did)."""
    atoms_a = _atoms_for(forms[0], loaded, converted)
    atoms_b = _atoms_for(forms[1], loaded, converted)
    candidates: list[tuple[int, Diagnosis]] = []
    for sysmon, defender in pairs:
        event: dict[str, JsonScalar] = {k: cap_value(defender.get(k)) for k in (
            "Timestamp", "DeviceName", "AccountName", "FolderPath", "ProcessCommandLine",
            "ProcessVersionInfoOriginalFileName", "InitiatingProcessFolderPath", "InitiatingProcessCommandLine")}
        truths_a = [(atom, *_evaluate(atom, sysmon, defender)) for atom in atoms_a]
        truths_b = [(atom, *_evaluate(atom, sysmon, defender)) for atom in atoms_b]
        # Relevance: how many identity atoms hold on this event (the process the detection is about).
        identity = COLUMN_GROUPS[0]
        relevance = sum(1 for atom, truth, _ in truths_a + truths_b if truth and atom.column in identity)
        # 1. Same column group, a shared value, different truth: the operator differs.
        pinned = _pin_operator(truths_a, truths_b, sysmon, defender, fired)
        if pinned is not None:
            operator, column = pinned
            explanation = f"on {column} = {defender.get(column)!r}"
            candidates.append((relevance + 100, Diagnosis(operator, explanation, event)))
        else:
            # 2. A column group where one form has a true atom and the other's atoms are all false.
            for group in {atom.group() for atom, _, _ in truths_a + truths_b}:
                in_a = [t for t in truths_a if t[0].group() == group]
                in_b = [t for t in truths_b if t[0].group() == group]
                if not in_a or not in_b:
                    continue
                any_a = [t for t in in_a if t[1]]
                any_b = [t for t in in_b if t[1]]
                if bool(any_a) == bool(any_b) or (fired is not None and bool(any_a) != (fired == 0)):
                    continue
                true_side, false_side = (any_a, in_b) if any_a else (any_b, in_a)
                operator = (f"{_describe(true_side[0][0], True, true_side[0][2])}; "
                            + ", ".join(_describe(atom, False, None) for atom, _, _ in false_side[:2]))
                explanation = (f"the forms test {', '.join(sorted(group))} differently: "
                               f"{true_side[0][0].text} holds where {false_side[0][0].text} does not")
                candidates.append((relevance + 50, Diagnosis(operator, explanation, event)))
                break
            else:
                candidates.append((relevance, Diagnosis(None, None, event)))
    if not candidates:
        return Diagnosis(None, None, {})
    return max(candidates, key=lambda item: item[0])[1]


# --------------------------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------------------------


#: Converted forms run on their own engines over the Sigma rule's event-log records: each is its own form here
#: (compared with every other, the Defender XDR conversion included), and reads as ``sigma`` for declarations.
LOCAL_ENGINE_FORMS = frozenset({"converted:sqlite", "converted:spark-sql", "converted:elastic-eql"})


def _agreement_base(result: FormResult) -> str:
    return result.form if result.form in LOCAL_ENGINE_FORMS else result.base_form


def _differing_pairs(results: Sequence[FormResult]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for a, b in combinations(results, 2):
        base_a, base_b = _agreement_base(a), _agreement_base(b)
        if base_a != base_b and a.verdict != b.verdict:
            pair = tuple(sorted((base_a, base_b)))
            if pair not in pairs:
                pairs.append((pair[0], pair[1]))
    return pairs


def _full_form(base: str, results: Iterable[FormResult]) -> str:
    return next((r.form for r in results if _agreement_base(r) == base), base)


def _declared(loaded: LoadedDetection, a: str, b: str, scenario_id: str) -> Any:
    """The declaration covering two forms on a scenario; a local engine against the Sigma rule (both read as
    ``sigma``) is never declared: an engine that disagrees with the rule it was converted from is a finding."""
    form_a, form_b = _as_form(a), _as_form(b)
    if form_a == form_b:
        return None
    return loaded.known_difference(form_a, form_b, scenario_id)


def agreement_findings(loaded: LoadedDetection, report: DetectionReport,
                       processes: dict[str, list[ProcessPair]], mode: str = "fail",
                       converted_queries: dict[str, str] | None = None) -> list[AgreementFinding]:
    """Findings for every scenario whose forms disagree, and for declared differences that did not occur."""
    converted = converted_queries or {}
    findings: list[AgreementFinding] = []
    for scenario in report.scenarios:
        ran = [r for r in scenario.results if r.status in ("pass", "fail") and r.verdict is not None]
        pairs = _differing_pairs(ran)
        declared_here = [d for d in loaded.detection.known_differences
                         if d.scenarios != "all" and scenario.id in d.scenarios]
        if not pairs:
            ran_forms = {r.base_form for r in ran}
            declared_here = [d for d in declared_here if set(d.forms) <= ran_forms]
            if declared_here:
                findings.append(AgreementFinding(
                    scenario=scenario.id, verdicts={r.key: r.verdict for r in ran}, status="agree", declared=True,
                    declared_reason=declared_here[0].reason,
                    explanation="a difference is declared for this scenario, but the forms agree: the declaration "
                                "is stale (remove it from known_differences) or the scenario no longer shows it"))
            continue
        undeclared = [p for p in pairs if _declared(loaded, p[0], p[1], scenario.id)
                      is None]
        status = "known" if not undeclared else ("warn" if mode == "warn" else "fail")
        focus = undeclared[0] if undeclared else pairs[0]
        scenario_processes = processes.get(scenario.id) or []
        fires = [any(r.verdict == "fires" for r in ran if _agreement_base(r) == base) for base in focus]
        fired = fires.index(True) if fires.count(True) == 1 else None
        diagnosis = diagnose((_full_form(focus[0], ran), _full_form(focus[1], ran)), loaded, scenario_processes,
                             converted, fired)
        declarations = [_declared(loaded, a, b, scenario.id) for a, b in pairs]
        reasons = list(dict.fromkeys(d.reason for d in declarations if d is not None))
        operator = diagnosis.operator
        if operator is None:
            declared_ops = [d.operator for d in declarations if d is not None and d.operator]
            operator = declared_ops[0] if declared_ops else None
        explanation = diagnosis.explanation
        if undeclared:
            names = ", ".join(f"{a} vs {b}" for a, b in undeclared)
            explanation = (f"undeclared disagreement ({names})" + (f": {explanation}" if explanation else "")
                           + "; fix the form that is wrong, or declare the difference with its reason in "
                             "detection.yml known_differences")
        findings.append(AgreementFinding(
            scenario=scenario.id, verdicts={r.key: r.verdict for r in ran}, status=status, operator=operator,
            explanation=explanation, event=diagnosis.event, declared=not undeclared,
            declared_reason=" ".join(reasons) if reasons else None))
    return findings


def _as_form(base: str) -> Form:
    if base == "sigma" or base in LOCAL_ENGINE_FORMS:
        return "sigma"
    if base == "kql":
        return "kql"
    return "converted"
