"""Columnar evaluation of EVTX batches: DuckDB extracts, Python decides once per distinct event shape.

The per-record fast path spent ~130 µs of Python per event (building the row, running the prefilter, checking
candidates). Here a batch of evtx JSON texts (many files together) is handed to DuckDB, which does the per-record
work in native code, in one query per batch:

1. one JSON pass gives each record's route (Channel, EventID), its field object (EventData, else UserData's
   element), Provider and Computer, and for wide routes the field object's key list;
2. records are joined to the routes seen so far, keyed by (Channel, EventID) and, for a wide route (one whose
   rules read many names: Security), the field object's key list too, so that it extracts only the names its
   records have; each route extracts the fields its rules read (a JSON pointer per field), and records are
   grouped by those values. Records that agree on every value a rule can read get the same answer from every rule of the route, so
   the prefilter and the exact rule logic run once per *distinct* tuple (remembered across batches, bounded),
   never per record. Records of routes first seen in a batch are grouped again once their routes are registered;
3. one more query over the hit records only extracts the timeline evidence (time, host, the field object).

Values are DuckDB's JSON renderings, the same functions ingestion uses, so a rule sees the same text here as on
RawEvents (the hunt's equality test holds the two to the same hits).
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from assay.hunt.events import as_field_map, duck_lower
from assay.hunt.hitrows import HIT_ROW_SCHEMA
from assay.hunt.prefilter import Formula, needle
from assay.hunt.timeline import key_fields
from assay.ingest.mapping import sql_string, timestamp_sql
from assay.ingest.writer import positions as position_column

if TYPE_CHECKING:
    import duckdb

    from assay.hunt.fastpath import FastPathPlan

BATCH_TABLE = "assay_hunt_batch"
ROUTE_TABLE = "assay_hunt_route"
ROUTES_TABLE = "assay_hunt_routes"
#: Distinct tuples remembered per worker; the cache starts over when full (bounded memory).
MAX_VERDICTS = 100_000
#: Hits' shown key fields remembered per worker (keys hold a whole field object: ~1-2 KB each).
MAX_SHOWN = 20_000
#: Values longer than this make a tuple too costly to remember (script blocks): decided, not remembered.
MAX_REMEMBERED_CHARS = 4_000
#: A route whose rules read more fields than this is keyed by its events' key lists too, so each event looks up
#: only the names it has (a JSON pointer scans the object's keys: Security routes read ~150 names). Narrower
#: routes look every name up: the key list would cost more (~2.5 µs per event) than it saves.
WIDE_ROUTE_NAMES = 32

_PROVIDER = "/Event/System/Provider/#attributes/Name"
_COMPUTER = "/Event/System/Computer"
_SYSTEM_TIME = "/Event/System/TimeCreated/#attributes/SystemTime"
#: The record number Event Viewer shows (an exported log keeps it; its records' positions start again at 1).
_EVENT_RECORD_ID = "/Event/System/EventRecordID"
#: EventData is the event's field map; events without it read the first element of UserData (as ingestion does).
_USER_DATA_FIELDS = "json_extract(k.Ud, '$.*')[1]"
#: Read from every record in one pass: route, the field object (EventData, else UserData), Provider, Computer.
_SYSTEM_PATHS = ("/Event/System/Channel", "/Event/System/EventID", "/Event/System/EventID/#text", "/Event/EventData",
                 _PROVIDER, _COMPUTER, "/Event/UserData")


def _records_sql(table: str, *, keys_when: str | None = None, time: bool = False, gate: str | None = None) -> str:
    """One JSON pass over each record of ``table``: Position, Channel, EventID, HasEventData, Ed (EventData's
    text), Provider, Computer, Ud (UserData's text); with ``keys_when`` (a condition on Channel and EventID)
    EventData's key list (Keys) for the records it holds for, NULL for the others; with ``time`` the SystemTime
    text and the EventRecordID (the grouping needs the one, hit evidence the other); with ``gate`` (a condition
    on Ed and Ud) its value as Gate."""
    paths = _SYSTEM_PATHS + ((_SYSTEM_TIME, _EVENT_RECORD_ID) if time else ())
    extra = ", v[8] AS SystemTime, TRY_CAST(v[9] AS BIGINT) AS EventRecordID" if time else ""
    records = f"""
        SELECT Position, v[1] AS Channel,
               coalesce(TRY_CAST(v[2] AS INTEGER), TRY_CAST(v[3] AS INTEGER)) AS EventID,
               coalesce(left(v[4], 1) = '{{', FALSE) AS HasEventData,
               CASE WHEN left(v[4], 1) = '{{' THEN v[4] END AS Ed,
               v[5] AS Provider, v[6] AS Computer, v[7] AS Ud{extra}
        FROM (SELECT Position, json_extract_string(Text, {sql_list(paths)}) AS v FROM {table})"""
    if gate is not None:
        records = f"SELECT *, {gate} AS Gate FROM ({records})"
    if keys_when is None:
        return records
    return f"SELECT *, CASE WHEN HasEventData AND ({keys_when}) THEN json_keys(Ed) END AS Keys FROM ({records})"


def _pairs_condition(pairs: set[tuple[str | None, int | None]]) -> str:
    """A SQL condition true for records whose (Channel, EventID) is one of ``pairs``."""
    by_channel: dict[str | None, set[int | None]] = {}
    for channel, event_id in pairs:
        by_channel.setdefault(channel, set()).add(event_id)
    terms = []
    for channel, event_ids in sorted(by_channel.items(), key=lambda item: str(item[0])):
        on_channel = "Channel IS NULL" if channel is None else f"Channel = {sql_string(channel)}"
        numbers = sorted(e for e in event_ids if e is not None)
        on_id = [f"EventID IN ({', '.join(map(str, numbers))})"] if numbers else []
        on_id += ["EventID IS NULL"] if None in event_ids else []
        terms.append(f"({on_channel} AND ({' OR '.join(on_id)}))")
    return " OR ".join(terms) if terms else "FALSE"


def pointer(name: str) -> str:
    """A JSON pointer segment (RFC 6901) for a field name: ``~`` and ``/`` escaped."""
    return name.replace("~", "~0").replace("/", "~1")


def sql_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(sql_string(item) for item in items) + "]::VARCHAR[]"


@dataclass(frozen=True)
class Reads:
    """What a target's condition reads: Fields entries by name, all of Fields, Provider, Computer."""

    names: frozenset[str]
    all_fields: bool
    provider: bool
    computer: bool


# Each pattern starts with the literal "F" (the word boundary before it is checked behind it) so that the regular
# expression engine scans for that letter instead of trying every position: 8x faster over SigmaHQ's 3,575 sources.
_F_GET = re.compile(r"""F(?<!\wF)\.get\(('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\)""")
_F_OTHER = re.compile(r"F(?<!\wF)(?!\w)(?!\.get\()")


def reads_of_python(source: str) -> Reads:
    """Reads of a generated predicate (``F.get('Image')``, ``F.values()``, the ``Provider``/``Computer`` args).

    The source is :mod:`assay.hunt.pyeval`'s own output (keys written with ``repr``), so a pattern reads it
    exactly; parsing it (``ast``) cost more than a whole batch's evaluation. A name inside a string literal may
    only add a read, never lose one.
    """
    names = {literal[1:-1] if "\\" not in literal else str(ast.literal_eval(literal))
             for literal in _F_GET.findall(source)}
    body = source.split("\n", 1)[1] if "\n" in source else source  # the def line names every argument
    return Reads(frozenset(names), bool(_F_OTHER.search(body)), "Provider" in body, "Computer" in body)


def reads_of_sql(where_sql: str) -> Reads:
    """Reads of a DuckDB condition (targets checked on DuckDB): anything but ``Fields['name']`` reads all."""
    try:
        tree = sqlglot.parse_one(where_sql, read="duckdb")
    except (sqlglot.errors.ParseError, RecursionError):
        return Reads(frozenset(), True, True, True)
    names: set[str] = set()
    all_fields = False
    keyed: set[int] = set()
    for bracket in tree.find_all(exp.Bracket):
        base, keys = bracket.this, bracket.expressions
        if isinstance(base, exp.Column) and base.name == "Fields":
            if len(keys) == 1 and isinstance(keys[0], exp.Literal) and keys[0].is_string:
                names.add(str(keys[0].this))
                keyed.add(id(base))
            else:
                all_fields = True
    columns: set[str] = set()
    for column in tree.find_all(exp.Column):
        columns.add(column.name)
        if column.name == "Fields" and id(column) not in keyed:
            all_fields = True
    return Reads(frozenset(names), all_fields, "Provider" in columns, "Computer" in columns)


def text_cover(formula: Formula) -> frozenset[str] | None:
    """Texts one of which occurs in some field value whenever ``formula`` holds (lower-cased), or None when no
    such set is known (a literal on a System column, or a formula that is TRUE). A keyword rule's formula is
    ``any of ("L", "*", text)``: its cover is its keywords."""
    kind = formula[0]
    if kind == "L":
        key = formula[1]
        return frozenset((formula[2],)) if key == "*" or str(key).startswith("F:") else None
    if kind == "F":
        return frozenset()
    if kind == "O":
        covers = [text_cover(part) for part in formula[1]]
        if any(cover is None for cover in covers):
            return None
        return frozenset().union(*(c for c in covers if c is not None))
    if kind == "A":
        found = [cover for cover in (text_cover(part) for part in formula[1]) if cover is not None]
        return min(found, key=len) if found else None
    return None


#: Characters RE2 reads as operators outside a class: escaped, everything else stands for itself.
_RE2_SPECIAL = re.compile(r"[\\.+*?()|\[\]{}^$]")


def gate_sql(document: str, texts: Sequence[str]) -> str:
    """SQL true when some value of the field object ``document`` (its JSON text) may contain one of ``texts``
    (lower-cased): one regular expression over the lower-cased text, the texts JSON-escaped as the object spells
    them (DuckDB escapes only quotes, backslashes and control characters, so escaping and lower-casing commute and
    a value holding a text means the object's text holds the escaped text). An object holding an object or a list
    (``":{`` or ``":[`` anywhere, even inside a string) always passes: Python renders such a value otherwise."""
    if not texts:
        return f"(contains({document}, '\":{{') OR contains({document}, '\":['))"
    pattern = "|".join(_RE2_SPECIAL.sub(r"\\\g<0>", needle(text)) for text in sorted(set(texts)))
    return (f"(contains({document}, '\":{{') OR contains({document}, '\":[') "
            f"OR regexp_matches(lower({document}), {sql_string(pattern)}))")


@dataclass
class RouteShape:
    """The values a route's rules read, in the order DuckDB extracts them.

    ``gate``: for a route whose whole field object is read only by rules with a known text cover (keyword rules
    over every Windows record), the texts one of which a field value must contain for the object to matter: the
    object is extracted only for such events, the named fields always, so that the other events (nearly all)
    share their verdicts instead of each bringing a distinct object to decide in Python."""

    names: tuple[str, ...]
    all_fields: bool
    provider: bool
    computer: bool
    gate: tuple[str, ...] | None = None

    def restricted(self, keys: Sequence[str] | None) -> RouteShape:
        """This shape for events whose field object has exactly ``keys``: names it lacks are NULL anyway, so only
        the others are extracted (a JSON pointer scans the object's keys: ~150 names x ~20 keys per record cost
        more than everything else)."""
        if keys is None or (self.all_fields and self.gate is None):
            return self
        present = set(keys)
        return RouteShape(tuple(n for n in self.names if n in present), self.all_fields, self.provider,
                          self.computer, self.gate)

    def extracts(self, has_event_data: bool) -> str | None:
        """SQL for one list of every value this route reads (None when it reads nothing): Provider and Computer
        first, then the fields (or the whole field object's JSON text for keyword rules; with a gate, the named
        fields and then the object, NULL unless a value holds one of the gate's texts)."""
        items: list[str] = []
        system = [c for c, wanted in (("k.Provider", self.provider), ("k.Computer", self.computer)) if wanted]
        if system:
            items.append("[" + ", ".join(system) + "]")
        document = "k.Ed" if has_event_data else f"CAST({_USER_DATA_FIELDS} AS VARCHAR)"
        if self.all_fields and self.gate is not None:
            if self.names:
                base = "k.Ed" if has_event_data else _USER_DATA_FIELDS
                paths = sql_list(["/" + pointer(n) for n in self.names])
                items.append(f"coalesce(json_extract_string({base}, {paths}), {_nulls(len(self.names))})")
            # k.Gate: one test per record for every gated route (see ColumnarEvaluator._extraction_sql)
            items.append(f"[CASE WHEN k.Gate THEN {document} END]")
        elif self.all_fields:
            items.append(f"[{document}]")
        elif self.names:
            # Without EventData or UserData the whole list is NULL: padded, so every position keeps its meaning.
            base = "k.Ed" if has_event_data else _USER_DATA_FIELDS
            paths = sql_list(["/" + pointer(n) for n in self.names])
            items.append(f"coalesce(json_extract_string({base}, {paths}), {_nulls(len(self.names))})")
        if not items:
            return None
        return items[0] if len(items) == 1 else "list_concat(" + ", ".join(items) + ")"


class _Positions:
    """A group's record positions, left in Arrow until read (only groups with candidates are)."""

    __slots__ = ("_flat", "_start", "_stop")

    def __init__(self, flat: pa.Array, start: int, stop: int) -> None:
        self._flat, self._start, self._stop = flat, start, stop

    def __len__(self) -> int:
        return self._stop - self._start

    def __iter__(self) -> Iterator[int]:
        return iter(self._flat.slice(self._start, self._stop - self._start).to_pylist())


def _nulls(count: int) -> str:
    return "[" + ", ".join(["NULL"] * count) + "]::VARCHAR[]"


@dataclass(frozen=True)
class Verdict:
    """A distinct tuple's answer: targets that match (checked in Python), targets to check on DuckDB."""

    matched: tuple[int, ...]
    on_duckdb: tuple[int, ...]
    candidates: int


@dataclass
class BatchOutcome:
    """What a batch gave: hit rows, records to check on DuckDB (positions and their targets), counts."""

    hit_rows: pa.Table
    deferred: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    candidates: int = 0
    pairs: int = 0


_MISSING: Any = object()


def _field_map(text: str | None) -> dict[str, str | None]:
    """A field object's JSON text as RawEvents.Fields holds it (values rendered as DuckDB renders them)."""
    return (as_field_map(json.loads(text)) if text else None) or {}


class ColumnarEvaluator:
    """One worker's columnar evaluator: route shapes and verdicts remembered across batches."""

    def __init__(self, plan: FastPathPlan) -> None:
        self.plan = plan
        self._reads: list[Reads | None] = [None] * len(plan.refs)
        self._shapes: dict[tuple[str | None, int | None], RouteShape] = {}
        self.verdicts: dict[tuple[Any, ...], Verdict] = {}
        #: (Channel, EventID) pairs of wide routes: their events are keyed by key list too
        self._wide: set[tuple[str | None, int | None]] = set()
        #: (Channel, EventID, has EventData, key list) -> the number of its extraction in the query, -1 when no
        #: rule reads it. Routes that read the same values share one extraction (one branch of the query's CASE:
        #: DuckDB plans each branch on every execution, ~0.4 ms apiece).
        self._route_numbers: dict[tuple[str | None, int | None, bool, tuple[str, ...] | None], int] = {}
        self._route_shapes: list[tuple[RouteShape, str]] = []
        self._extraction_numbers: dict[str, int] = {}
        self._route_sql: str | None = None
        #: a hit's shown key fields by (field object text, rule fields): replayed logs repeat them
        self._shown: dict[tuple[str | None, tuple[str, ...]], str | None] = {}

    # -- what rules read ------------------------------------------------------------------------------------
    def reads(self, number: int) -> Reads:
        reads = self._reads[number]
        if reads is None:
            target = self.plan.refs[number].target
            reads = reads_of_python(target.python) if target.python is not None else reads_of_sql(target.where_duckdb)
            self._reads[number] = reads
        return reads

    def shape(self, channel: str | None, event_id: int | None, admitted: frozenset[int]) -> RouteShape:
        key = (channel, event_id)
        shape = self._shapes.get(key)
        if shape is None:
            names: set[str] = set()
            all_fields = provider = computer = False
            for number in admitted:
                reads = self.reads(number)
                names |= reads.names
                all_fields = all_fields or reads.all_fields
                provider = provider or reads.provider
                computer = computer or reads.computer
            gate: tuple[str, ...] | None = None
            if all_fields:
                covers = [text_cover(self.plan.refs[number].target.formula) for number in admitted
                          if self.reads(number).all_fields]
                if all(cover is not None for cover in covers):
                    gate = tuple(sorted(frozenset().union(*(c for c in covers if c is not None))))
            shape = RouteShape(tuple(sorted(names)), all_fields, provider, computer, gate)
            self._shapes[key] = shape
        return shape

    # -- one batch ------------------------------------------------------------------------------------------
    def _known_route(self, channel: str | None, event_id: int | None, has_event_data: bool,
                     keys: Sequence[str] | None) -> int | None:
        """The route's number in the extraction query (-1: no rule reads this route), registered on first sight;
        None when the route turns out to be wide: its events must be extracted again, with their key lists."""
        key = (channel, event_id, has_event_data, tuple(keys) if keys is not None else None)
        number = self._route_numbers.get(key)
        if number is None:
            route = self.plan.field_index.route_plan(duck_lower(channel) if channel is not None else None, event_id)
            if route.admitted:
                shape = self.shape(channel, event_id, route.admitted)
                if has_event_data and (not shape.all_fields or shape.gate is not None) \
                        and len(shape.names) > WIDE_ROUTE_NAMES:
                    if (channel, event_id) not in self._wide:
                        self._wide.add((channel, event_id))
                        self._route_sql = None
                        return None
                    shape = shape.restricted(keys)
                extracts = shape.extracts(has_event_data) or "[]::VARCHAR[]"
                number = self._extraction_numbers.get(extracts)
                if number is None:
                    number = self._extraction_numbers[extracts] = len(self._route_shapes)
                    self._route_shapes.append((shape, extracts))
            else:
                number = -1
            self._route_numbers[key] = number
            self._route_sql = None
        return number

    def _extraction_sql(self) -> str:
        """One query for a whole batch: each record's route, then the values its route's rules read, grouped."""
        if self._route_sql is not None:
            return self._route_sql
        whens = " ".join(f"WHEN {number} THEN {extracts}" for number, (_shape, extracts)
                         in enumerate(self._route_shapes))
        values = f"CASE r.RouteNo {whens} END" if whens else "NULL::VARCHAR[]"
        self._route_sql = f"""
        WITH k AS ({_records_sql("{table}", keys_when=_pairs_condition(self._wide), gate=self._gate_sql())})
        SELECT k.Channel, k.EventID, k.HasEventData, CASE WHEN r.RouteNo IS NULL THEN k.Keys END AS NewKeys,
               r.RouteNo, {values} AS v, list(k.Position) AS Positions
        FROM k LEFT JOIN {ROUTES_TABLE} r ON k.Channel IS NOT DISTINCT FROM r.Channel
            AND k.EventID IS NOT DISTINCT FROM r.EventID AND k.HasEventData = r.HasEventData
            AND k.Keys IS NOT DISTINCT FROM r.Keys
        GROUP BY ALL
        """
        return self._route_sql

    def _gate_sql(self) -> str | None:
        """The gate of every gated route at once (the union of their texts, over EventData or else the whole
        UserData): computed once per record, one regular expression, instead of once per route's extraction. A
        route's own gate is implied by it, so it stays a necessary condition for each."""
        gates = [shape.gate for shape, _extracts in self._route_shapes if shape.gate is not None]
        if not gates:
            return None
        return gate_sql("coalesce(Ed, Ud)", sorted(set().union(*gates)))

    def _routes_table(self) -> pa.Table:
        keys = [(k, n) for k, n in self._route_numbers.items() if n >= 0]
        return pa.table({"Channel": pa.array([k[0] for k, _ in keys], pa.string()),
                         "EventID": pa.array([k[1] for k, _ in keys], pa.int32()),
                         "HasEventData": pa.array([k[2] for k, _ in keys], pa.bool_()),
                         "Keys": pa.array([list(k[3]) if k[3] is not None else None for k, _ in keys],
                                          pa.list_(pa.string())),
                         "RouteNo": pa.array([n for _, n in keys], pa.int32())})

    def _groups(self, connection: duckdb.DuckDBPyConnection, table: str) -> list[tuple[Any, ...]]:
        """The extraction query's groups: (Channel, EventID, HasEventData, NewKeys, RouteNo, values,
        :class:`_Positions`). Fetched as Arrow: DuckDB's row fetch built a Python int per record through its
        generic value conversion (~2.5k instructions per record), while most groups' positions are never read."""
        connection.register(ROUTES_TABLE, self._routes_table())
        try:
            result = connection.execute(self._extraction_sql().replace("{table}", table))
            with warnings.catch_warnings():
                # The relation API (connection.sql) would bind this long query twice; the DB-API result's
                # extra copy is of its few thousand grouped rows.
                warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
                found = result.to_arrow_table()
        finally:
            connection.unregister(ROUTES_TABLE)
        if found is None:  # a SELECT always has a result
            raise AssertionError("the hunt's extraction query returned no result")
        lists = found.column("Positions").combine_chunks()
        flat, offsets = lists.values, lists.offsets.to_pylist()
        spans = [_Positions(flat, offsets[index], offsets[index + 1]) for index in range(len(lists))]
        return list(zip(*(found.column(index).to_pylist() for index in range(6)), spans, strict=True))

    def evaluate(self, connection: duckdb.DuckDBPyConnection, texts: Sequence[str], records: Sequence[int],
                 files: Sequence[int], labels: Sequence[str]) -> BatchOutcome:
        """Evaluate a batch of evtx JSON texts: record numbers, and per record its source (an index into
        ``labels``). Raises ``duckdb.Error`` on text DuckDB cannot parse."""
        staging = pa.table({"Position": position_column(len(texts)), "Text": pa.array(texts, pa.string())})
        outcome = BatchOutcome(hit_rows=HIT_ROW_SCHEMA.empty_table())
        matched_pairs: list[tuple[int, int]] = []  # (position, target)
        connection.register(BATCH_TABLE, staging)
        try:
            found = self._groups(connection, BATCH_TABLE)
            groups = []
            for _round in range(3):
                # Routes first seen: registered, then their records are extracted again (a wide route takes two
                # rounds: one to learn it is wide, one to register it per key list).
                unknown: list[int] = []
                for group in found:
                    if group[4] is not None:
                        groups.append(group)
                        continue
                    channel, event_id, has_event_data, keys = group[:4]
                    number = self._known_route(channel, event_id, has_event_data, keys)
                    if number is None or number >= 0:
                        unknown.extend(group[6])
                if not unknown:
                    break
                connection.register(ROUTE_TABLE, staging.take(pa.array(sorted(unknown), pa.int32())))
                try:
                    found = self._groups(connection, ROUTE_TABLE)
                finally:
                    connection.unregister(ROUTE_TABLE)
            else:
                raise AssertionError("hunt routes did not settle in three rounds")  # each round settles a kind
            for channel, event_id, _has_event_data, _keys, number, values, positions in groups:
                if number is None or number < 0:
                    continue
                shape = self._route_shapes[number][0]
                verdict = self.verdict(number, channel, event_id, shape, values or ())
                if not verdict.candidates:
                    continue
                outcome.candidates += len(positions)
                outcome.pairs += verdict.candidates * len(positions)
                if verdict.matched or verdict.on_duckdb:
                    at = list(positions)
                    for target in verdict.matched:
                        matched_pairs.extend((position, target) for position in at)
                    if verdict.on_duckdb:
                        outcome.deferred.extend((position, verdict.on_duckdb) for position in at)
            if matched_pairs:
                outcome.hit_rows = self._hit_rows(connection, staging, matched_pairs, records, files, labels)
        finally:
            connection.unregister(BATCH_TABLE)
        return outcome

    def verdict(self, route: int, channel: str | None, event_id: int | None, shape: RouteShape,
                values: Sequence[str | None]) -> Verdict:
        key = (channel, event_id, route, *values)  # routes of other events share extractions, not verdicts
        verdict = self.verdicts.get(key)
        if verdict is not None:
            return verdict
        names = shape.names
        position = 0
        provider = computer = None
        if shape.provider:
            provider = values[position]
            position += 1
        if shape.computer:
            computer = values[position]
            position += 1
        fields: dict[str, str | None]
        if shape.all_fields and shape.gate is not None:
            document = values[position + len(names)] if position + len(names) < len(values) else None
            if document is not None:
                fields = _field_map(document)
            else:  # no value holds a gate text: the named fields decide (the same answers, the object unread)
                fields = {name: value for name, value in zip(names, values[position:position + len(names)],
                                                               strict=False) if value is not None}
        elif shape.all_fields:
            document = values[position] if position < len(values) else None
            fields = _field_map(document)
        else:
            fields = {name: value for name, value in zip(names, values[position:], strict=False)
                      if value is not None}
        plan = self.plan
        columns = {"EventID": str(event_id) if event_id is not None else None, "Channel": channel,
                   "Provider": provider, "Computer": computer}
        found = plan.field_index.candidates(fields, columns, channel, event_id)
        matched: list[int] = []
        on_duckdb: list[int] = []
        for number in found:
            predicate = plan.predicate(number)
            if predicate is None:
                on_duckdb.append(number)
            elif predicate(fields, event_id, channel, provider, computer):
                matched.append(number)
        verdict = Verdict(tuple(sorted(matched)), tuple(sorted(on_duckdb)), len(found))
        if sum(len(v) for v in values if v is not None) <= MAX_REMEMBERED_CHARS:
            if len(self.verdicts) >= MAX_VERDICTS:
                self.verdicts.clear()
            self.verdicts[key] = verdict
        return verdict

    def _hit_rows(self, connection: duckdb.DuckDBPyConnection, staging: pa.Table,
                  pairs: list[tuple[int, int]], records: Sequence[int], files: Sequence[int],
                  labels: Sequence[str]) -> pa.Table:
        """Timeline evidence for matched (position, target) pairs, as hit rows."""
        refs = self.plan.refs
        positions = sorted({position for position, _ in pairs})
        connection.register(ROUTE_TABLE, staging.take(pa.array(positions, pa.int32())))
        try:
            # The field object as JSON text, parsed here: a hit shows fields by name from a long list (the rule's
            # fields, then KEY_FIELDS), which pointers would look up one scan of the keys per name.
            # As Arrow: the evidence columns go from DuckDB into the hit rows without a Python object per value.
            found = connection.sql(
                f"SELECT Position, {timestamp_sql('k.SystemTime')} AS Timestamp, k.Computer, k.Channel, k.EventID, "
                f"coalesce(k.Ed, CAST({_USER_DATA_FIELDS} AS VARCHAR)) AS Fields, k.EventRecordID "
                f"FROM ({_records_sql(ROUTE_TABLE, time=True)}) k ORDER BY Position"
            ).to_arrow_table()
        finally:
            connection.unregister(ROUTE_TABLE)
        # rows come back in Position order; pairs are mapped onto them by index
        index_of = {position: index for index, position in enumerate(positions)}
        texts = found.column("Fields").to_pylist()
        take: list[int] = []
        shown_fields: list[str | None] = []
        cache = self._shown
        for position, number in pairs:
            index = index_of[position]
            take.append(index)
            rule_fields = refs[number].target.fields
            text = texts[index]
            key = (text, rule_fields)
            shown = cache.get(key, _MISSING)
            if shown is _MISSING:
                chosen = key_fields(_field_map(text), rule_fields)
                shown = json.dumps(chosen, ensure_ascii=False) if chosen else None
                if len(cache) >= MAX_SHOWN:
                    cache.clear()
                cache[key] = shown
            shown_fields.append(shown)
        indexes = pa.array(take, pa.int32())
        evidence = pa.table({
            "timestamp": found.column("Timestamp").cast(pa.timestamp("us")),
            "host": found.column("Computer").cast(pa.string()),
            "channel": found.column("Channel").cast(pa.string()),
            "event_id": found.column("EventID").cast(pa.int32()),
        }).take(indexes)
        pair_positions = [position for position, _ in pairs]
        # the EventRecordID the record carries (what Event Viewer shows), else its position in the file
        record_ids = found.column("EventRecordID").to_pylist()
        columns = {
            "target": pa.array([number for _, number in pairs], pa.int32()),
            "timestamp": evidence.column("timestamp"), "host": evidence.column("host"),
            "channel": evidence.column("channel"), "event_id": evidence.column("event_id"),
            "fields": pa.array(shown_fields, pa.string()),
            "source_file": pa.array([labels[files[p]] for p in pair_positions], pa.string()),
            "source_record": pa.array([record_id if record_id is not None else records[position]
                                       for position, record_id in zip(pair_positions,
                                                                      (record_ids[i] for i in take), strict=True)],
                                      pa.int64()),
        }
        return pa.table(columns, schema=HIT_ROW_SCHEMA)
