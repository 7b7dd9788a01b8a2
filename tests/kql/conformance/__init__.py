"""Conformance data and helpers: Microsoft's documented KQL examples and the cell comparison."""
