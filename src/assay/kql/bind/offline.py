"""Offline stand-ins as tabular sources: ``_GetWatchlist('name')`` and ``externaldata(...) [URL]`` read the local
file the user mapped (``--watchlist``, ``--externaldata``); the rows are inlined as a VALUES list. Unmapped, they
are located errors naming the flag to pass. No network, ever."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from assay.kql import ast
from assay.kql.bind.aggregate import AggregateBinder
from assay.kql.bind.scope import Environment, Relation, aliased
from assay.kql.offline import OfflineDataError, read_external, read_watchlist
from assay.kql.typed import SQL_TYPES, cast, literal

#: The columns Sentinel adds to every watchlist row, after the CSV's own columns.
WATCHLIST_EXTRA_COLUMNS = (("SearchKey", "string"), ("WatchlistItem", "dynamic"))


class OfflineSourcesBinder(AggregateBinder):
    """Watchlists and externaldata read from mapped local files."""

    def rows_relation(self, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> Relation:
        """A relation of Python values typed by ``columns`` (as a datatable of literals)."""
        if not rows:
            selections = [aliased(literal(None, t), n, quoted=True) for n, t in columns]
            return Relation(exp.select(*selections, copy=False).where(exp.false(), copy=False), list(columns))
        alias_name = self.alias()
        value_names = [f"c{i}" for i in range(len(columns))]
        tuples = [exp.Tuple(expressions=[literal(value, kusto_type) for value, (_, kusto_type)
                                         in zip(row, columns, strict=True)]) for row in rows]
        values_table = exp.Values(expressions=tuples, alias=exp.TableAlias(
            this=exp.to_identifier(alias_name), columns=[exp.to_identifier(v) for v in value_names]))
        selections = [aliased(cast(exp.column(v, table=alias_name), SQL_TYPES[t]), n, quoted=True)
                      for v, (n, t) in zip(value_names, columns, strict=True)]
        return Relation(exp.select(*selections, copy=False).from_(values_table, copy=False), list(columns))

    def lower_externaldata(self, node: ast.ExternalData, env: Environment) -> Relation:
        options = dict(node.options)
        data_format = options.get("format", "csv")
        ignore_first = options.get("ignorefirstrecord", "false").lower() == "true"
        rows: list[list[Any]] = []
        for url in node.urls:
            path = self.offline.external(url)
            if path is None:
                shown = url if len(url) <= 120 else url[:117] + "..."
                self.unsupported(f"externaldata {shown} is not available offline (Assay never uses the network)", node.pos,
                                 f"download it once and map it: --externaldata '{shown}=FILE' "
                                 "(Python: externaldata={url: path})")
            try:
                rows.extend(read_external(path, node.columns, data_format, ignore_first))
            except OfflineDataError as error:
                self.fail(f"externaldata: {error}", node.pos)
        return self.rows_relation(node.columns, rows)

    def lower_watchlist(self, node: ast.FunctionSource) -> Relation:
        if len(node.args) != 1 or not isinstance(node.args[0], ast.Literal) or \
                not isinstance(node.args[0].value, str):
            self.fail("_GetWatchlist() takes the watchlist alias as a string", node.pos)
        name = node.args[0].value
        path = self.offline.watchlist(name)
        if path is None:
            self.unsupported(f"watchlist '{name}' is not available offline (a Microsoft Sentinel workspace feature)", node.pos,
                             f"export it as CSV and map it: --watchlist {name}=FILE.csv "
                             "(Python: watchlists={name: path})")
        try:
            names, records = read_watchlist(path)
        except OfflineDataError as error:
            self.fail(f"watchlist '{name}': {error}", node.args[0].pos)
        search_key = "SearchKey" if "SearchKey" in names else names[0]
        columns = [(column, "string") for column in names] + [
            extra for extra in WATCHLIST_EXTRA_COLUMNS if extra[0] not in names]
        rows = []
        for record in records:
            values: list[Any] = [record.get(column, "") for column in names]
            if "SearchKey" not in names:
                values.append(record.get(search_key, ""))
            if "WatchlistItem" not in names:
                values.append({column: record.get(column, "") for column in names})
            rows.append(values)
        return self.rows_relation(columns, rows)
