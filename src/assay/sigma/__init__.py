"""Sigma through pySigma: loading offline, lowering to sqlglot for local execution, conversion to platforms."""
