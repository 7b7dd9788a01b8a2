"""CLI commands for the kql stage (registered by assay.cli.main)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
