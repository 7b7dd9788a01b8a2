"""Tests for assay.schema: the generated documented tables, custom schema files."""
