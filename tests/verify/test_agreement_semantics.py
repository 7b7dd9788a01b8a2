"""The diagnosis re-evaluates atoms in Python: its operator semantics must match the engines that give verdicts.

Property tests compare ``kusto_has`` with the KQL engine's ``has`` and the Sigma atom evaluation with the Sigma
backend's ``contains`` / ``endswith`` / ``startswith`` on DuckDB, over command-line-like strings.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay.engine import DuckDBEngine
from assay.verify.agreement import Atom, evaluate_sigma_atom, kql_atoms, kusto_has, sigma_atoms

# Characters that matter to term boundaries and to Windows command lines.
TEXT = st.text(alphabet="aSu1/-. \\:\"_é", max_size=24)
NEEDLE = st.text(alphabet="aSu1/-.\\_é", min_size=1, max_size=5)


@pytest.fixture(scope="module")
def engine() -> Iterator[DuckDBEngine]:
    db = DuckDBEngine(None)
    yield db
    db.close()


def _kql_literal(value: str) -> str:
    return "@'" + value.replace("'", "''") + "'"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(haystack=TEXT, needle=NEEDLE)
def test_kusto_has_matches_the_kql_engine(engine: DuckDBEngine, haystack: str, needle: str) -> None:
    from assay.kql import run

    result = run(f"print r = {_kql_literal(haystack)} has {_kql_literal(needle)}", db=engine)
    assert kusto_has(haystack, needle) == result.rows[0][0], (haystack, needle)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=TEXT, needle=NEEDLE, modifier=st.sampled_from(["contains", "endswith", "startswith"]))
def test_sigma_atoms_match_the_sigma_backend(engine: DuckDBEngine, value: str, needle: str, modifier: str) -> None:
    from assay.sigma import eval_flat_events
    from assay.sigma.loading import load_rule_text

    if "*" in needle or "?" in needle:
        return
    escaped = needle.replace("\\", "\\\\").replace("'", "''")
    rule = (f"title: t\nid: 6a6b5bb2-3c1e-4d9f-9d5e-0f6f5b1c2a3d\nlogsource:\n  product: windows\n"
            f"detection:\n  selection:\n    CommandLine|{modifier}: '{escaped}'\n  condition: selection\n")
    atom = Atom("sigma", "ProcessCommandLine", modifier, (needle,), "", sigma_field="CommandLine")
    expected = evaluate_sigma_atom(atom, {"CommandLine": value})[0]
    evaluation = eval_flat_events(load_rule_text(rule), [{"CommandLine": value}])
    assert bool(evaluation.matched_records) == expected, (value, needle, modifier)


def test_atoms_are_read_from_both_languages() -> None:
    kql = kql_atoms('T | extend A = ProcessCommandLine has_any ("/s", "/au") | where FileName =~ "cmstp.exe"')
    assert [(a.column, a.operator, a.values) for a in kql] == [
        ("ProcessCommandLine", "has_any", ("/s", "/au")), ("FileName", "=~", ("cmstp.exe",))]
    sigma = sigma_atoms("detection:\n  sel:\n    - Image|endswith: '\\\\cmstp.exe'\n    - OriginalFileName: "
                        "CMSTP.EXE\n  condition: sel\n")
    assert [(a.sigma_field, a.column, a.operator) for a in sigma] == [
        ("Image", "FolderPath", "endswith"), ("OriginalFileName", "ProcessVersionInfoOriginalFileName", "equals")]
