"""The ``assay`` entry point: one click group; each stage registers its commands from its own module.

Library errors (``AssayError``) become a one-line message (with a caret where a column is known) and exit code
1, or 2 for usage errors; never a traceback.
"""

from __future__ import annotations

from typing import Any

import click

from assay import __version__
from assay.errors import AssayError


class AssayGroup(click.Group):
    """A click group that turns AssayError into a clear message and the right exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AssayError as error:
            from assay.cli.output import fail

            fail(error)


@click.group(cls=AssayGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="assay")
def cli() -> None:
    """Assay: detections as code, run locally on your telemetry, proven by tests.

    \b
    Typical flow:
      assay lint detections/              validate the catalog
      assay ingest logs/ --db case.duckdb normalize telemetry into DuckDB tables
      assay kql detections/T1218.003-cmstp/sentinel.kql --db case.duckdb
      assay test detections/              prove every form of every detection
      assay hunt logs/ --rules sigma/rules/windows
      assay site build --out site/
    """


def _register() -> None:
    from assay.cli import (
        catalog_cmds,
        hunt_cmds,
        ingest_cmds,
        kql_cmds,
        sigma_cmds,
        site_cmds,
        verify_cmds,
    )

    for module in (catalog_cmds, ingest_cmds, kql_cmds, sigma_cmds, verify_cmds, hunt_cmds, site_cmds):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="assay")


if __name__ == "__main__":
    main()
