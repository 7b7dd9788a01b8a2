"""CLI commands for the ingest stage (registered by assay.cli.main)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
