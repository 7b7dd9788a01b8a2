"""Tests for assay.kql."""
