"""CLI commands for the hunt stage (registered by assay.cli.main)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
