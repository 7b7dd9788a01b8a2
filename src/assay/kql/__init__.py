"""Kusto Query Language: lexer, recursive-descent parser, binder and lowering to sqlglot."""
