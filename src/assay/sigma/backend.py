"""Our pySigma backend: a Sigma condition becomes a sqlglot boolean expression over one route's table.

pySigma parses the rule, applies the route's processing pipeline (field renaming) and walks the condition; each
``convert_condition_*`` here returns a sqlglot node instead of query text. Semantics follow the Sigma
specification: strings compare case-insensitively and anchored, ``*``/``?`` are the only wildcards, a predicate on
a missing field is false (and ``not`` of it true), numbers match numeric strings, regexes are RE2.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, ClassVar, NoReturn

import re2
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.conversion.base import Backend
from sigma.conversion.state import ConversionState
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule
from sigma.types import (
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaFieldReference,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
)
from sqlglot import exp

from assay.schema import canonical_tables
from assay.sigma.lowering import contains_match, false_when_null, lowered, string_match
from assay.sigma.routes import RAW_EVENT_SYSTEM_FIELDS, Route

#: A field name the route pipeline gives to Sigma fields the route cannot provide (see ``route_pipeline``).
UNAVAILABLE_PREFIX = "assay-unavailable:"

_STRING_TYPES = {"string", "guid"}

_TIMESTAMP_PARTS = {"minute": "minute", "hour": "hour", "day": "day", "week": "week", "month": "month",
                    "year": "year"}


def route_pipeline(route: Route) -> ProcessingPipeline:
    """The processing pipeline renaming Sigma fields to the route's names (unavailable ones get a marker name)."""
    from sigma.processing.pipeline import ProcessingItem
    from sigma.processing.transformations import FieldMappingTransformation

    mapping: dict[str | None, str | list[str]] = {sigma_field: (target if target is not None else UNAVAILABLE_PREFIX + sigma_field)
               for sigma_field, target in route.field_map.items() if target != sigma_field}
    items = [ProcessingItem(identifier=f"assay_{route.name}_fields", transformation=FieldMappingTransformation(mapping))]
    return ProcessingPipeline(name=f"assay route {route.name}", priority=20, items=items if mapping else [])


def spaced_field_name(name: str) -> str | None:
    """'ThreatName' → 'Threat Name': the EventData spelling of fields Sigma writes without spaces (Defender,
    some service logs), or None when the name is a single word."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", name)
    return " ".join(words) if len(words) > 1 and "".join(words) == name else None


def raw_field_reference(route: Route, name: str) -> exp.Expr:
    """``Fields['name']`` of RawEvents; on service routes also the spaced EventData spelling of the name."""
    reference: exp.Expr = fields_lookup(name)
    spaced = spaced_field_name(name) if route.spaced_names else None
    if spaced is not None:
        reference = exp.Coalesce(this=reference, expressions=[fields_lookup(spaced)])
    return reference


@cache
def _map_type() -> exp.DataType:
    return exp.DataType.build("MAP(VARCHAR, VARCHAR)")


def fields_lookup(key: str) -> exp.Expr:
    """``Fields['key']``, typed as a map lookup so sqlglot never runs type inference to place the index."""
    fields = exp.column("Fields", quoted=True)
    fields.type = _map_type()
    return exp.Bracket(this=fields, expressions=[exp.Literal.string(key)])


def _text(expression: exp.Expr) -> exp.Expr:
    return exp.cast(expression, exp.DataType.build("VARCHAR"))


def _joined(*parts: exp.Expr | str) -> exp.Expr:
    """``concat`` of parts (NULL parts become empty), NULL when every column part is NULL."""
    columns = [p for p in parts if not isinstance(p, str)]
    # coalesce each column: DuckDB's || (what sqlglot writes for concat) is NULL when any operand is NULL
    joined = exp.func("concat", *(exp.Literal.string(p) if isinstance(p, str)
                                  else exp.Coalesce(this=p.copy(), expressions=[exp.Literal.string("")])
                                  for p in parts))
    return exp.If(this=exp.and_(*(exp.Is(this=c.copy(), expression=exp.Null()) for c in columns), copy=False),
                  true=exp.Null(), false=joined)


def _computed_fields(table: str) -> dict[str, exp.Expr]:
    """Sigma fields a Defender table holds in pieces: Sysmon's ``Hashes`` and ``DOMAIN\\user`` accounts."""
    columns = set(canonical_tables()[table].column_names)
    computed: dict[str, exp.Expr] = {}

    def col(name: str) -> exp.Expr:
        return exp.column(name, quoted=True)

    if {"SHA1", "MD5", "SHA256"} <= columns:
        computed["=Hashes"] = _joined("SHA1=", exp.Upper(this=col("SHA1")), ",MD5=", exp.Upper(this=col("MD5")),
                                      ",SHA256=", exp.Upper(this=col("SHA256")))
    if {"AccountDomain", "AccountName"} <= columns:
        computed["=User"] = _joined(col("AccountDomain"), "\\", col("AccountName"))
    if {"RegistryKey", "RegistryValueName"} <= columns:
        # Sysmon's TargetObject is the key and, for a value event, the value name: Defender splits them.
        value = col("RegistryValueName")
        computed["=TargetObject"] = exp.Case(
            ifs=[exp.If(this=exp.or_(exp.Is(this=value.copy(), expression=exp.Null()),
                                     exp.EQ(this=value.copy(), expression=exp.Literal.string(""))),
                        true=col("RegistryKey"))],
            default=_joined(col("RegistryKey"), "\\", value))
    if {"InitiatingProcessAccountDomain", "InitiatingProcessAccountName"} <= columns:
        computed["=ParentUser"] = _joined(col("InitiatingProcessAccountDomain"), "\\",
                                          col("InitiatingProcessAccountName"))
    return computed


def computed_field_names(table: str) -> set[str]:
    return set(_computed_fields(table))


def field_value(route: Route, name: str) -> exp.Expr | None:
    """The text value of a (route-named) field: a column, a computed column (``=Hashes``) or ``Fields['name']``;
    None when the route's table has no such column."""
    if route.typed:
        if name.startswith("="):
            computed = _computed_fields(route.table).get(name)
            return computed.copy() if computed is not None else None
        column = canonical_tables()[route.table].column(name)
        if column is None:
            return None
        reference = exp.column(name, quoted=True)
        return reference if column.kusto_type in _STRING_TYPES else _text(reference)
    if not route.flat and name in RAW_EVENT_SYSTEM_FIELDS:
        return _text(exp.column(RAW_EVENT_SYSTEM_FIELDS[name], quoted=True))
    return raw_field_reference(route, name)


class SqlglotBackend(Backend):
    """Converts one Sigma rule for one route into a sqlglot boolean expression (see module docstring)."""

    name: ClassVar[str] = "assay sqlglot"
    formats: ClassVar[dict[str, str]] = {"default": "sqlglot boolean expression"}
    requires_pipeline: ClassVar[bool] = False

    def __init__(self, route: Route) -> None:
        super().__init__(processing_pipeline=route_pipeline(route))
        self.route = route
        #: table field names the condition reads (what the data must have), in first-use order.
        self.fields: list[str] = []
        #: Sigma fields the route cannot provide at all.
        self.unavailable: list[str] = []

    # -- fields ---------------------------------------------------------------------------------------------
    def field_expression(self, name: str | None) -> exp.Expr:
        """The VARCHAR value of a (pipeline-renamed) field on this route; NULL when the route lacks it."""
        if name is None:
            raise SigmaFeatureNotSupportedByBackendError("a detection item without a field name here")
        if name.startswith(UNAVAILABLE_PREFIX):
            original = name[len(UNAVAILABLE_PREFIX):]
            if original not in self.unavailable:
                self.unavailable.append(original)
            return exp.Null()
        value = field_value(self.route, name)
        if value is None:
            if name not in self.unavailable:
                self.unavailable.append(name)
            return exp.Null()
        if name not in self.fields:
            self.fields.append(name)
        return value

    def all_values_any(self, predicate_of: Any) -> exp.Expr:
        """True when the predicate holds for some field value of the event (keyword search)."""
        if self.route.typed:
            predicates = [predicate_of(exp.column(c.name, quoted=True))
                          for c in canonical_tables()[self.route.table].columns if c.kusto_type in _STRING_TYPES]
            return exp.or_(*predicates, copy=False) if predicates else exp.false()
        variable = exp.to_identifier("field_value")
        lam = exp.Lambda(this=predicate_of(exp.column("field_value")), expressions=[variable])
        values = exp.func("map_values", exp.column("Fields", quoted=True))
        return exp.func("list_bool_or", exp.func("list_transform", values, lam))

    # -- boolean structure ----------------------------------------------------------------------------------
    def convert_condition_or(self, cond: ConditionOR, state: ConversionState) -> exp.Expr:
        return exp.or_(*(exp.paren(self.convert_condition(arg, state), copy=False) for arg in cond.args), copy=False)

    def convert_condition_and(self, cond: ConditionAND, state: ConversionState) -> exp.Expr:
        return exp.and_(*(exp.paren(self.convert_condition(arg, state), copy=False) for arg in cond.args), copy=False)

    def convert_condition_not(self, cond: ConditionNOT, state: ConversionState) -> exp.Expr:
        # SQL's NOT NULL is NULL; Sigma's "not (predicate on a missing field)" is true.
        inner = self.convert_condition(cond.args[0], state)
        return exp.Not(this=false_when_null(inner))

    def convert_condition_as_in_expression(self, cond: ConditionOR | ConditionAND,
                                           state: ConversionState) -> exp.Expr:
        raise NotImplementedError  # convert_or_as_in is False: pySigma never calls this

    # -- field = value --------------------------------------------------------------------------------------
    def convert_condition_field_eq_val_str(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> exp.Expr:
        value = cond.value
        assert isinstance(value, SigmaString)
        return string_match(self.field_expression(cond.field), value)

    def convert_condition_field_eq_val_str_case_sensitive(self, cond: ConditionFieldEqualsValueExpression,
                                                          state: ConversionState) -> exp.Expr:
        value = cond.value
        assert isinstance(value, SigmaCasedString)
        return string_match(self.field_expression(cond.field), value, case_sensitive=True)

    def convert_condition_field_eq_val_num(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> exp.Expr:
        value = cond.value
        assert isinstance(value, SigmaNumber)
        field_value = self.field_expression(cond.field)
        # Fields are text: "4688" and " 4688" and "4688.0" all equal the number 4688.
        numeric = exp.TryCast(this=exp.Trim(this=field_value), to=exp.DataType.build("DOUBLE"))
        return exp.EQ(this=numeric, expression=_number_literal(value.number))

    def convert_condition_field_eq_val_timestamp_part(self, cond: ConditionFieldEqualsValueExpression,
                                                      state: ConversionState) -> exp.Expr:
        value = cond.value
        assert isinstance(value, SigmaTimestampPart)
        part = _TIMESTAMP_PARTS.get(value.timestamp_part.name.lower())
        if part is None:
            raise SigmaFeatureNotSupportedByBackendError(f"timestamp part {value.timestamp_part.name}")
        timestamp = exp.TryCast(this=self.field_expression(cond.field), to=exp.DataType.build("TIMESTAMP"))
        return exp.EQ(this=exp.func("date_part", exp.Literal.string(part), timestamp),
                      expression=exp.Literal.number(int(value.number)))

    def convert_condition_field_eq_val_bool(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> exp.Expr:
        value = cond.value
        assert isinstance(value, SigmaBool)
        return exp.EQ(this=lowered(self.field_expression(cond.field)),
                      expression=exp.Literal.string("true" if value.boolean else "false"))

    def convert_condition_field_eq_val_re(self, cond: ConditionFieldEqualsValueExpression,
                                          state: ConversionState) -> exp.Expr:
        value = cond.value
        assert isinstance(value, SigmaRegularExpression)
        return exp.RegexpLike(this=self.field_expression(cond.field),
                              expression=exp.Literal.string(re2_pattern(value)))

    def convert_condition_field_eq_val_cidr(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> exp.Expr:
        value = cond.value
        assert isinstance(value, SigmaCIDRExpression)
        field_value = self.field_expression(cond.field)
        # pySigma expands a network into exact textual prefixes (10.0.0.0/20 → 10.0.0.* … 10.0.15.*).
        predicates = [string_match(field_value, SigmaString(prefix)) for prefix in value.expand(wildcard="*")]
        return exp.or_(*(exp.paren(p, copy=False) for p in predicates), copy=False)

    def convert_condition_field_compare_op_val(self, cond: ConditionFieldEqualsValueExpression,
                                               state: ConversionState) -> exp.Expr:
        value = cond.value
        assert isinstance(value, SigmaCompareExpression)
        numeric = exp.TryCast(this=exp.Trim(this=self.field_expression(cond.field)),
                              to=exp.DataType.build("DOUBLE"))
        operators: dict[str, type[exp.Binary]] = {"LT": exp.LT, "LTE": exp.LTE, "GT": exp.GT, "GTE": exp.GTE}
        operator = operators[value.op.name]
        return operator(this=numeric, expression=_number_literal(value.number.number))

    def convert_condition_field_eq_field(self, cond: ConditionFieldEqualsValueExpression,
                                         state: ConversionState) -> exp.Expr:
        value = cond.value
        assert isinstance(value, SigmaFieldReference)
        left = lowered(self.field_expression(cond.field))
        right = lowered(self.field_expression(value.field))
        if value.starts_with and value.ends_with:
            return exp.func("contains", left, right)
        if value.starts_with:
            return exp.func("starts_with", left, right)
        if value.ends_with:
            return exp.func("ends_with", left, right)
        return exp.EQ(this=left, expression=right)

    def convert_condition_field_eq_val_null(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> exp.Expr:
        return exp.Is(this=self.field_expression(cond.field), expression=exp.Null())

    def convert_condition_field_exists(self, cond: ConditionFieldEqualsValueExpression,
                                       state: ConversionState) -> exp.Expr:
        return exp.Not(this=exp.Is(this=self.field_expression(cond.field), expression=exp.Null()))

    def convert_condition_field_not_exists(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> exp.Expr:
        return exp.Is(this=self.field_expression(cond.field), expression=exp.Null())

    def convert_condition_field_eq_query_expr(self, cond: ConditionFieldEqualsValueExpression,
                                              state: ConversionState) -> NoReturn:
        raise SigmaFeatureNotSupportedByBackendError(
            f"query expression (placeholder) on field {cond.field}: expand placeholders before running locally")

    # -- keywords (value without a field) -------------------------------------------------------------------
    def convert_condition_val_str(self, cond: ConditionValueExpression, state: ConversionState) -> exp.Expr:
        value = cond.value
        assert isinstance(value, SigmaString)
        return self.all_values_any(lambda field_value: contains_match(field_value, value))

    def convert_condition_val_num(self, cond: ConditionValueExpression, state: ConversionState) -> exp.Expr:
        value = cond.value
        assert isinstance(value, SigmaNumber)
        text = SigmaString(str(value.number))
        return self.all_values_any(lambda field_value: contains_match(field_value, text))

    def convert_condition_val_re(self, cond: ConditionValueExpression, state: ConversionState) -> exp.Expr:
        value = cond.value
        assert isinstance(value, SigmaRegularExpression)
        pattern = exp.Literal.string(re2_pattern(value))
        return self.all_values_any(lambda field_value: exp.RegexpLike(this=field_value, expression=pattern))

    def convert_condition_query_expr(self, cond: ConditionValueExpression, state: ConversionState) -> NoReturn:
        raise SigmaFeatureNotSupportedByBackendError("query expression without a field")

    # -- rule level -----------------------------------------------------------------------------------------
    def finalize_query_default(self, rule: SigmaRule, query: Any, index: int, state: ConversionState) -> Any:
        return query

    def convert_correlation_rule(self, rule: SigmaCorrelationRule, output_format: str | None = None,
                                 method: str | None = None, callback: Any = None) -> NoReturn:
        raise SigmaFeatureNotSupportedByBackendError(
            "correlation rules are evaluated by assay.sigma.correlation, not compiled to one condition")

    def _no_correlation(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise SigmaFeatureNotSupportedByBackendError("correlation rules are evaluated by assay.sigma.correlation")

    convert_correlation_event_count_rule = _no_correlation
    convert_correlation_value_count_rule = _no_correlation
    convert_correlation_temporal_rule = _no_correlation
    convert_correlation_temporal_ordered_rule = _no_correlation
    convert_correlation_extended_temporal_rule = _no_correlation
    convert_correlation_extended_temporal_ordered_rule = _no_correlation
    convert_correlation_value_sum_rule = _no_correlation
    convert_correlation_value_avg_rule = _no_correlation
    convert_correlation_value_percentile_rule = _no_correlation
    convert_correlation_value_median_rule = _no_correlation


def _number_literal(number: int | float) -> exp.Expr:
    return exp.Literal.number(repr(float(number)) if isinstance(number, float) else str(int(number)))


def re2_pattern(value: SigmaRegularExpression) -> str:
    """The RE2 pattern with Sigma's i/m/s flags inline; a pattern RE2 cannot run raises (never a silent miss)."""
    flags = ""
    if SigmaRegularExpressionFlag.IGNORECASE in value.flags:
        flags += "i"
    if SigmaRegularExpressionFlag.MULTILINE in value.flags:
        flags += "m"
    if SigmaRegularExpressionFlag.DOTALL in value.flags:
        flags += "s"
    pattern = (f"(?{flags})" if flags else "") + str(value.regexp)
    try:
        re2.compile(pattern)
    except re2.error as error:
        raise SigmaFeatureNotSupportedByBackendError(
            f"regular expression {str(value.regexp)!r} is not RE2 syntax ({error}); lookarounds and backreferences "
            "are not supported") from error
    return pattern
