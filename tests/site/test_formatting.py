"""Converted queries laid out for reading: only whitespace outside literals changes, and the layout follows the
language's grouping (pipes, AND / OR by parenthesis depth, SPL's implicit AND)."""

from __future__ import annotations

import re

import pytest

from assay.sigma.conversion import convert_all
from assay.site.formatting import WIDTH, format_query
from assay.site.model import describe_target
from tests.site.conftest import CMSTP_FOLDER


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def conversions() -> dict[str, tuple[str, str]]:
    """target -> (query, language as the site names it), for every conversion of the CMSTP rule that succeeded."""
    return {c.target: (c.query, describe_target(c.target, None, c.language).language)
            for c in convert_all(CMSTP_FOLDER / "rule.sigma.yml") if c.query}


def test_layout_changes_only_whitespace(conversions: dict[str, tuple[str, str]]) -> None:
    assert len(conversions) >= 8
    for target, (query, language) in conversions.items():
        laid_out = format_query(query, language)
        assert _squeeze(laid_out) == _squeeze(query), target


def test_one_line_conversions_are_broken_at_pipes_and_boolean_operators(
        conversions: dict[str, tuple[str, str]]) -> None:
    esql = format_query(*conversions["elastic-esql"]).splitlines()
    assert esql[0] == "from * metadata _id, _index, _version"
    assert esql[1].startswith("| where (")
    assert sum(1 for line in esql if line.strip().startswith("or ")) >= 10
    # Nesting shows in the indentation: the OR list inside the third AND group is deeper than the ANDs.
    assert any(line.startswith("  and (") for line in esql)
    assert any(line.startswith("    or ends_with(process.parent.executable.caseless") for line in esql)
    kql = format_query(*conversions["microsoft-xdr"]).splitlines()
    assert kql[0] == "DeviceProcessEvents" and kql[1].startswith("| where (")
    assert all(len(line) <= WIDTH for line in kql)


def test_spl_keeps_one_and_condition_per_line(conversions: dict[str, tuple[str, str]]) -> None:
    # In SPL "a OR b c" is "(a OR b) AND c": a line break before OR must not start a new AND condition.
    spl = format_query(*conversions["splunk"]).splitlines()
    assert spl[0] == 'Image="*\\\\cmstp.exe" OR OriginalFileName="CMSTP.EXE"'
    assert spl[1] == 'CommandLine IN ("*/s*", "*/au*")'
    assert spl[2].startswith("CommandLine IN (")
    # The ORs of the third condition are indented under it.
    assert [line for line in spl if line.lstrip().startswith("OR ")] == [
        line for line in spl if line.startswith("  OR ")]


def test_literals_are_never_split() -> None:
    query = ('index=main CommandLine="* or | and (" | where x=1 or y=2 and z="a ) b" '
             + " or ".join(f'field{i}="value {i} | or"' for i in range(12)))
    laid_out = format_query(query, "SPL")
    assert '"* or | and ("' in laid_out and '"a ) b"' in laid_out and '"value 11 | or"' in laid_out
    assert _squeeze(laid_out) == _squeeze(query)
    regex = "ImageFileName=/\\\\(cmstp|rundll32)\\.exe$/i " + " or ".join(f"CommandLine=/a{i}( b)?/i" for i in range(10))
    laid_out = format_query(regex, "LogScale")
    assert "ImageFileName=/\\\\(cmstp|rundll32)\\.exe$/i" in laid_out
    assert _squeeze(laid_out) == _squeeze(regex)


def test_what_cannot_be_laid_out_safely_is_left_alone() -> None:
    unbalanced = "a=1 and (" + " or ".join(f"b{i}=2" for i in range(30))
    assert format_query(unbalanced, "SPL") == unbalanced
    unterminated = 'x="abc ' + " or ".join(f"b{i}=2" for i in range(30))
    assert format_query(unterminated, "SPL") == unterminated
    short = "a=1 or b=2"
    assert format_query(short, "SPL") == short
    yaral = 'rule cmstp {\n  events:\n    $e.metadata.event_type = "PROCESS_LAUNCH"\n}'
    assert format_query(yaral, "YARA-L") == yaral


def test_yara_l_conditions_are_laid_out_and_meta_strings_untouched(conversions: dict[str, tuple[str, str]]) -> None:
    query, language = conversions["google-secops"]
    laid_out = format_query(query, language)
    # Every line of the multi-line description string is exactly as the backend wrote it.
    description = query[query.index('description = "'):query.index('"\n', query.index('description = "') + 16)]
    assert description in laid_out
    events = laid_out[laid_out.index("events:"):laid_out.index("conditions:")].splitlines()
    assert any(line.strip().startswith("OR $event1.target.process.command_line") for line in events)
