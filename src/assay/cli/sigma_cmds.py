"""CLI commands for the sigma stage (registered by assay.cli.main)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
