"""User regular expressions are RE2 patterns (Kusto, DuckDB and Spark's Java engine all take RE2-style syntax):
checked here with google-re2 so a bad pattern is a located error before anything runs, never a Python
``re.error`` or a DuckDB failure. Python's ``re`` would also reject valid RE2 such as ``a(?i)B``."""

from __future__ import annotations

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error comes back as an exception; RE2's own logging would reach stderr


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid RE2 regex, or None when it is."""
    try:
        re2.compile(pattern, _OPTIONS)
    except re2.error as error:
        detail = error.args[0] if error.args else error
        return detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    except (TypeError, ValueError, OverflowError) as error:  # e.g. a NUL byte, an absurd repetition
        return str(error)
    return None


def capture_groups(pattern: str) -> int:
    """The number of capture groups of a valid RE2 pattern (0 when it does not compile)."""
    try:
        return int(re2.compile(pattern, _OPTIONS).groups)
    except (re2.error, TypeError, ValueError, OverflowError):
        return 0
