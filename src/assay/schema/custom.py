"""Tables users declare: a schema file (YAML or JSON) names tables and their columns with Kusto types.

    tables:
      MyApp_CL:                        # a custom log, or any table name
        description: Sign-ins of the line-of-business app
        columns:                       # a list of [name, type] / {name, type}, a mapping, or "name:type, ..."
          - [TimeGenerated, datetime]
          - {name: UserName_s, type: string}
      Heartbeat: "TimeGenerated:datetime, Computer:string"

A file may also be one table: ``{name: MyApp_CL, columns: [...]}``. Errors point at the file and line.
Project schema files live in ``.assay/schemas/*.yml|*.yaml|*.json`` (:func:`project_schema_files`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import yaml

from assay.errors import SchemaError, SourceSpan, did_you_mean
from assay.schema import KUSTO_TO_DUCKDB, SOURCE_CUSTOM, Column, TableSchema, known_tables

#: Type spellings Kusto's ``.create table`` accepts besides the canonical names.
TYPE_ALIASES = {"boolean": "bool", "double": "real", "float": "real", "int32": "int", "int64": "long",
                "date": "datetime", "time": "timespan", "uniqueid": "guid", "uuid": "guid", "decimal": "real",
                "object": "dynamic", "array": "dynamic", "integer": "int", "str": "string"}
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SCHEMA_SUFFIXES = (".yml", ".yaml", ".json")


def project_schema_files(folder: Path | None = None) -> list[Path]:
    """Schema files of the project in ``folder`` (default: the working directory): ``.assay/schemas/*``."""
    base = (folder or Path.cwd()) / ".assay" / "schemas"
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.suffix.lower() in SCHEMA_SUFFIXES and p.is_file())


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _col(node: yaml.Node) -> int:
    return int(node.start_mark.column) + 1


class _Reader:
    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text

    def error(self, message: str, node: yaml.Node | None, hint: str | None = None) -> SchemaError:
        span = SourceSpan(self.file, _line(node), _col(node), self.text) if node is not None else \
            SourceSpan(self.file, None, None, self.text)
        return SchemaError(message, span, hint)

    def scalar(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            raise self.error(f"{what} must be a non-empty text", node)
        return str(node.value).strip()

    def kusto_type(self, node: yaml.Node, raw: str) -> str:
        value = TYPE_ALIASES.get(raw.lower(), raw.lower())
        if value not in KUSTO_TO_DUCKDB:
            suggestion = did_you_mean(raw, list(KUSTO_TO_DUCKDB) + list(TYPE_ALIASES))
            raise self.error(f"unknown column type {raw!r}", node,
                             f"did you mean {suggestion!r}?" if suggestion else
                             "use a Kusto type: " + ", ".join(KUSTO_TO_DUCKDB))
        return value

    def column_name(self, node: yaml.Node, raw: str) -> str:
        if not NAME.match(raw):
            raise self.error(f"column name {raw!r} is not a plain Kusto name (letters, digits, _)", node)
        return raw

    def columns(self, node: yaml.Node, table: str) -> tuple[Column, ...]:
        pairs: list[tuple[yaml.Node, str, str]] = []
        if isinstance(node, yaml.ScalarNode):  # "A:string, B:long" (Kusto's cslschema form)
            for part in str(node.value).split(","):
                if not part.strip():
                    continue
                name, sep, kusto_type = part.partition(":")
                if not sep:
                    raise self.error(f"column {part.strip()!r} has no type (write name:type)", node)
                pairs.append((node, name.strip(), kusto_type.strip()))
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                pairs.append((key, self.scalar(key, "a column name"), self.scalar(value, "a column type")))
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                if isinstance(item, yaml.SequenceNode) and len(item.value) in (2, 3):
                    pairs.append((item, self.scalar(item.value[0], "a column name"),
                                  self.scalar(item.value[1], "a column type")))
                elif isinstance(item, yaml.MappingNode):
                    fields = {self.scalar(k, "a key"): v for k, v in item.value}
                    unknown = set(fields) - {"name", "type", "description"}
                    if unknown or "name" not in fields or "type" not in fields:
                        raise self.error("a column is {name: ..., type: ...}", item)
                    pairs.append((item, self.scalar(fields["name"], "a column name"),
                                  self.scalar(fields["type"], "a column type")))
                else:
                    raise self.error("a column is [name, type] or {name: ..., type: ...}", item)
        else:
            raise self.error(f"columns of {table} must be a list, a mapping or 'name:type, ...' text", node)
        if not pairs:
            raise self.error(f"table {table} has no columns", node)
        seen: dict[str, str] = {}
        columns = []
        for where, name, raw_type in pairs:
            self.column_name(where, name)
            if name.lower() in seen:
                raise self.error(f"column {name!r} is declared twice in {table} (names are compared "
                                 f"case-insensitively: {seen[name.lower()]!r})", where)
            seen[name.lower()] = name
            columns.append(Column(name, self.kusto_type(where, raw_type), "Declared in " + self.file))
        return tuple(columns)

    def table(self, name_node: yaml.Node, name: str, spec: yaml.Node) -> TableSchema:
        if not NAME.match(name):
            raise self.error(f"table name {name!r} is not a plain Kusto name (letters, digits, _)", name_node)
        description = ""
        if isinstance(spec, yaml.MappingNode):
            fields = {self.scalar(k, "a key"): (k, v) for k, v in spec.value}
            unknown = set(fields) - {"description", "columns", "name"}
            if unknown:
                key = fields[sorted(unknown)[0]][0]
                raise self.error(f"unknown key {sorted(unknown)[0]!r} in table {name}", key,
                                 "a table has description and columns")
            if "columns" not in fields:
                raise self.error(f"table {name} has no columns", spec)
            if "description" in fields:
                description = self.scalar(fields["description"][1], "description")
            columns = self.columns(fields["columns"][1], name)
        else:
            columns = self.columns(spec, name)
        return TableSchema(name, description or f"Custom table ({self.file})", columns, (), SOURCE_CUSTOM)


def load_schema_text(text: str, file: str) -> dict[str, TableSchema]:
    """Tables declared in schema ``text`` (from ``file``); raises SchemaError with file:line."""
    reader = _Reader(file, text)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        span = SourceSpan(file, mark.line + 1 if mark else None, mark.column + 1 if mark else None, text)
        raise SchemaError(f"schema file does not parse: {getattr(error, 'problem', error)}", span,
                          "check the YAML/JSON syntax") from None
    if not isinstance(root, yaml.MappingNode):
        raise reader.error("a schema file is a mapping with a 'tables' key", root)
    fields = {reader.scalar(k, "a key"): (k, v) for k, v in root.value}
    tables: dict[str, TableSchema] = {}
    if "tables" in fields:
        extra = set(fields) - {"tables", "version"}
        if extra:
            raise reader.error(f"unknown key {sorted(extra)[0]!r}", fields[sorted(extra)[0]][0],
                               "a schema file has 'tables' (and optionally 'version')")
        node = fields["tables"][1]
        if not isinstance(node, yaml.MappingNode) or not node.value:
            raise reader.error("'tables' must map table names to their columns", node)
        for key, spec in node.value:
            name = reader.scalar(key, "a table name")
            if name in tables:
                raise reader.error(f"table {name} is declared twice", key)
            tables[name] = reader.table(key, name, spec)
    elif "name" in fields:
        name_node = fields["name"][1]
        name = reader.scalar(name_node, "name")
        tables[name] = reader.table(name_node, name, root)
    else:
        raise reader.error("a schema file has 'tables:' (or one table's 'name:' and 'columns:')", root)
    return tables


def load_schema_files(paths: Iterable[str | Path]) -> dict[str, TableSchema]:
    """Tables of several schema files, later files winning; a table declared in two files is an error."""
    tables: dict[str, TableSchema] = {}
    origin: dict[str, str] = {}
    for path in paths:
        location = Path(path)
        try:
            text = location.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise SchemaError(f"cannot read schema file {location}: {error}", SourceSpan.of_file(location)) from None
        for name, table in load_schema_text(text, str(location)).items():
            if name in origin:
                raise SchemaError(f"table {name} is declared in both {origin[name]} and {location}",
                                  SourceSpan.of_file(location), "keep one declaration")
            origin[name] = str(location)
            tables[name] = table
    return tables


def with_custom(custom: dict[str, TableSchema]) -> dict[str, TableSchema]:
    """Known tables plus ``custom`` ones (a custom declaration of a known table replaces it)."""
    tables = dict(known_tables())
    tables.update(custom)
    return tables
