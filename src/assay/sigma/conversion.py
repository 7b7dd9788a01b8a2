"""Honest conversion of Sigma rules to other platforms through pySigma backends, with a status per target.

Each target is a backend + pipeline imported directly (never via ``autodiscover()``, which can swap a registered
pipeline for a test one: the pipeline we get is checked by name). Every conversion parses the rule afresh
(pipelines mutate rules). Status is ``converted``, ``converted-with-warnings`` (warnings raised, or a known backend
defect worked around, said in the messages) or ``failed`` with the backend's reason.

A target whose backend package is not installed (or cannot be, next to the pinned pySigma) is ``unavailable``, with
the package to install and why: its platform still shows, nothing drops silently. Deprecation warnings a backend
raises about its own imports are not messages about the rule and are left out.

Known defects are found from the backends' own data, not hard-coded: a Kusto pipeline field mapping that names a
column its own table schema lacks (e.g. the ASIM pipeline maps OriginalFileName to both
TargetProcessFileOriginalName and the non-existent TargetProcessFilename) is reported, and the rule is mapped to the
columns that do exist.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule

from assay.errors import SigmaError
from assay.sigma.loading import LoadedRule, load_rule

ConversionStatus = Literal["converted", "converted-with-warnings", "failed", "unavailable"]


@dataclass(frozen=True)
class TargetSpec:
    """A conversion target: a pySigma backend class, its pipeline factory, the pipeline's expected name."""

    name: str
    description: str
    language: str
    backend: tuple[str, str]
    pipeline: tuple[str, str] | None
    pipeline_name: str | None
    output_format: str | None = None
    #: module with the Kusto pipeline's mappings/tables (for the schema check), when it is a Kusto target
    kusto_package: str | None = None
    #: The PyPI distribution that provides the backend (for the "unavailable" reason).
    package: str = ""
    #: How the backend's output becomes the page's query (``sumo-expression``: the match expression of the
    #: Cloud SIEM rule JSON, whose metadata carries a conversion timestamp), or None for the output as is.
    extract: str | None = None


TARGETS: dict[str, TargetSpec] = {spec.name: spec for spec in (
    TargetSpec("microsoft-xdr", "Microsoft Defender XDR advanced hunting (KQL)", "kql",
               ("sigma.backends.kusto", "KustoBackend"), ("sigma.pipelines.microsoftxdr", "microsoft_xdr_pipeline"),
               "Generic Log Sources to Windows XDR tables and fields", kusto_package="microsoftxdr"),
    TargetSpec("sentinel-securityevent", "Microsoft Sentinel on SecurityEvent / Azure Monitor tables (KQL)", "kql",
               ("sigma.backends.kusto", "KustoBackend"), ("sigma.pipelines.azuremonitor", "azure_monitor_pipeline"),
               "Generic Log Sources to Azure Monitor tables and fields", kusto_package="azuremonitor"),
    TargetSpec("sentinel-asim", "Microsoft Sentinel on ASIM parsers (KQL)", "kql",
               ("sigma.backends.kusto", "KustoBackend"), ("sigma.pipelines.sentinelasim", "sentinel_asim_pipeline"),
               "Generic Log Sources to Sentinel ASIM tables and fields", kusto_package="sentinelasim"),
    TargetSpec("splunk", "Splunk SPL on Windows event logs", "spl",
               ("sigma.backends.splunk", "SplunkBackend"), ("sigma.pipelines.splunk", "splunk_windows_pipeline"),
               "Splunk Windows log source conditions"),
    TargetSpec("splunk-cim", "Splunk SPL on the CIM Endpoint data model (tstats)", "spl",
               ("sigma.backends.splunk", "SplunkBackend"), ("sigma.pipelines.splunk", "splunk_cim_data_model"),
               "Splunk CIM Data Model Mapping", output_format="data_model"),
    TargetSpec("splunk-spl2", "Splunk SPL2", "spl2",
               ("sigma.backends.splunk", "SplunkSPL2Backend"), ("sigma.pipelines.splunk", "splunk_windows_pipeline"),
               "Splunk Windows log source conditions"),
    TargetSpec("elastic-esql", "Elastic ES|QL on ECS (Winlogbeat)", "esql",
               ("sigma.backends.elasticsearch", "ESQLBackend"), ("sigma.pipelines.elasticsearch.windows", "ecs_windows"),
               "Elastic Common Schema (ECS) Windows log mappings from Winlogbeat from version 7"),
    TargetSpec("elastic-eql", "Elastic EQL on ECS (Winlogbeat)", "eql",
               ("sigma.backends.elasticsearch", "EqlBackend"), ("sigma.pipelines.elasticsearch.windows", "ecs_windows"),
               "Elastic Common Schema (ECS) Windows log mappings from Winlogbeat from version 7"),
    TargetSpec("elastic-lucene", "Elastic Lucene on ECS (Winlogbeat)", "lucene",
               ("sigma.backends.elasticsearch", "LuceneBackend"),
               ("sigma.pipelines.elasticsearch.windows", "ecs_windows"),
               "Elastic Common Schema (ECS) Windows log mappings from Winlogbeat from version 7"),
    TargetSpec("elastic-elastalert", "ElastAlert rule (Lucene on ECS)", "elastalert",
               ("sigma.backends.elasticsearch", "ElastalertBackend"),
               ("sigma.pipelines.elasticsearch.windows", "ecs_windows"),
               "Elastic Common Schema (ECS) Windows log mappings from Winlogbeat from version 7"),
    TargetSpec("google-secops", "Google SecOps (Chronicle) YARA-L 2.0 rule on UDM", "yara-l",
               ("sigma.backends.secops", "SecOpsBackend"), ("sigma.pipelines.secops", "secops_udm_pipeline"),
               "Google SecOps UDM Pipeline", output_format="yara_l", package="pysigma-backend-secops"),
    TargetSpec("ibm-qradar-aql", "IBM QRadar AQL on QRadar's normalized event fields", "aql",
               ("sigma.backends.QRadarAQL", "QRadarAQLBackend"),
               ("sigma.pipelines.QRadarAQL", "QRadarAQL_fields_pipeline"), "Qradar fields",
               package="pysigma-backend-qradar-community"),
    TargetSpec("sumo-logic", "Sumo Logic Cloud SIEM (CSE) rule match expression", "sumo-cse",
               ("sigma.backends.sumologic", "SumoLogicCSEBackend"),
               ("sigma.pipelines.sumologic", "sumologic_cse_pipeline"), "Sumo Logic Cloud SIEM (CSE) Pipeline",
               package="pysigma-backend-sumologic", extract="sumo-expression"),
    TargetSpec("crowdstrike-logscale", "CrowdStrike Falcon LogScale query on Falcon events", "logscale",
               ("sigma.backends.crowdstrike", "LogScaleBackend"),
               ("sigma.pipelines.crowdstrike", "crowdstrike_falcon_pipeline"), "CrowdStrike Falcon Pipeline",
               package="pysigma-backend-crowdstrike"),
    TargetSpec("sentinelone-powerquery", "SentinelOne Singularity Data Lake PowerQuery", "powerquery",
               ("sigma.backends.sentinelone_pq", "SentinelOnePQBackend"),
               ("sigma.pipelines.sentinelone_pq", "sentinelonepq_pipeline"), "SentinelOne PQ pipeline",
               package="pysigma-backend-sentinelone-pq"),
    # Executed locally: SQLite on the scenario's event-log records (Python's sqlite3), Spark SQL on local PySpark.
    # Both with pySigma's Sysmon pipeline, as Zircolite builds its rule sets: a category becomes its Sysmon event
    # id (network_connection -> EventID=3), since the logs table holds every event.
    TargetSpec("sqlite", "SQLite over a table of event-log fields (Zircolite layout)", "sql",
               ("sigma.backends.sqlite", "sqliteBackend"), ("sigma.pipelines.sysmon", "sysmon_pipeline"),
               None, package="pysigma-backend-sqlite"),
    TargetSpec("spark-sql", "Apache Spark / Databricks SQL predicate over event-log fields", "spark-sql",
               ("sigma.backends.databricks", "DatabricksBackend"), ("sigma.pipelines.sysmon", "sysmon_pipeline"),
               None, package="pysigma-backend-databricks"),
)}

#: Why a backend package cannot be installed next to the pinned pySigma, when that is known.
INCOMPATIBLE_PACKAGES = {
    "pysigma-backend-qradar-aql": "requires pySigma >=0.9.8,<0.12 (Assay pins pySigma >=1.5.1,<2); Assay uses "
                                  "its maintained fork pysigma-backend-qradar-community for IBM QRadar",
}


@dataclass(frozen=True)
class Conversion:
    """The outcome of converting one rule for one target."""

    target: str
    status: ConversionStatus
    query: str | None
    messages: tuple[str, ...] = ()
    backend: str = ""
    pipeline: str = ""
    language: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "status": self.status, "query": self.query, "messages": list(self.messages),
                "backend": self.backend, "pipeline": self.pipeline, "language": self.language}


@dataclass
class _Notes:
    messages: list[str] = field(default_factory=list)
    warned: bool = False


def list_targets() -> list[TargetSpec]:
    """Every configured target, in a stable order."""
    return list(TARGETS.values())


def installed_backends() -> list[str]:
    """pySigma backend packages installed here (``sigma.backends.*``), for ``assay convert --list``."""
    import sigma.backends

    return sorted(module.name for module in pkgutil.iter_modules(sigma.backends.__path__) if module.name != "test")


def _import(dotted: tuple[str, str]) -> Any:
    return getattr(importlib.import_module(dotted[0]), dotted[1])


def _shorten(message: str) -> str:
    """pySigma messages can carry a list of hundreds of valid fields: keep the reason, drop the list."""
    message = message.split(" Please use valid fields")[0].split(" This pipeline only supports the following")[0]
    message = re.sub(r"\s+", " ", message).strip()
    # A backend that prepends to its transformation's message on every call (the SentinelOne PQ pipeline keeps
    # one transformation object for all conversions) carries the reasons of earlier rules after this one's: keep
    # the first sentence of each kind ("Invalid … encountered: X."), which is this conversion's.
    kept: dict[str, str] = {}
    for sentence in re.split(r"(?<=\.) ", message):
        kept.setdefault(sentence.split(": ")[0] if ": " in sentence else sentence, sentence)
    message = " ".join(kept.values())
    return message if len(message) <= 600 else message[:600] + "…"


def _rule_fields(rule: SigmaRule) -> set[str]:
    found: set[str] = set()

    def walk(detection: SigmaDetection | SigmaDetectionItem) -> None:
        if isinstance(detection, SigmaDetectionItem):
            if detection.field:
                found.add(detection.field)
            return
        for item in detection.detection_items:
            walk(item)

    for detection in rule.detection.detections.values():
        walk(detection)
    return found


def kusto_mapping_defects(spec: TargetSpec, rule: SigmaRule) -> tuple[dict[str, str | list[str]], list[str]]:
    """For a Kusto target: (field → existing columns to map to instead, messages) where the pipeline's own mapping
    names columns that its own table schema does not have."""
    if spec.kusto_package is None:
        return {}, []
    package = f"sigma.pipelines.{spec.kusto_package}"
    mappings_module = importlib.import_module(f"{package}.mappings")
    tables_module = importlib.import_module(f"{package}.tables")
    table_map = getattr(mappings_module, "CATEGORY_TO_TABLE_MAPPINGS", {})
    mapping_object = next((v for k, v in vars(mappings_module).items() if k.endswith("_FIELD_MAPPINGS")), None)
    schema = next((v for k, v in vars(tables_module).items() if k.endswith("_TABLES") and isinstance(v, dict)), {})
    table = table_map.get(rule.logsource.category or "")
    if mapping_object is None or table is None or table not in schema:
        return {}, []
    columns = set(schema[table])
    fixes: dict[str, str | list[str]] = {}
    messages: list[str] = []
    for sigma_field in sorted(_rule_fields(rule)):
        target = mapping_object.table_mappings.get(table, {}).get(sigma_field)
        if target is None:
            continue
        targets = target if isinstance(target, list) else [target]
        absent = [t for t in targets if t not in columns]
        present = [t for t in targets if t in columns]
        if not absent:
            continue
        if present:
            fixes[sigma_field] = present if len(present) > 1 else present[0]
            messages.append(
                f"known backend defect: the {spec.kusto_package} pipeline maps {sigma_field} to "
                f"{', '.join(targets)} but {table} has no column {', '.join(absent)}; Assay mapped {sigma_field} "
                f"to {', '.join(present)} only")
        else:
            messages.append(
                f"known backend defect: the {spec.kusto_package} pipeline maps {sigma_field} to "
                f"{', '.join(absent)}, which {table} does not have")
    return fixes, messages


def _pipeline(spec: TargetSpec, notes: _Notes) -> Any:
    if spec.pipeline is None:
        return None
    factory: Callable[[], Any] = _import(spec.pipeline)
    pipeline = factory()
    got = getattr(pipeline, "name", None)
    if spec.pipeline_name is not None and got != spec.pipeline_name:
        raise SigmaError(f"pipeline {spec.pipeline[1]} resolved to {got!r}, expected {spec.pipeline_name!r} "
                         "(a plugin autodiscovery may have replaced it)")
    return pipeline


def _fix_pipeline(mapping: dict[str, str | list[str]]) -> Any:
    from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
    from sigma.processing.transformations import FieldMappingTransformation

    return ProcessingPipeline(name="assay: known backend defect workarounds", priority=5, items=[
        ProcessingItem(identifier="assay_defect_field_fix",
                       transformation=FieldMappingTransformation(dict(mapping)))])  # type: ignore[arg-type]


def convert_loaded(rule: LoadedRule, target: str) -> Conversion:
    """Convert a loaded rule for one target (never raises for a conversion problem: status ``failed``)."""
    spec = TARGETS.get(target)
    if spec is None:
        from assay.errors import did_you_mean

        suggestion = did_you_mean(target, list(TARGETS))
        raise SigmaError(f"unknown conversion target {target!r}",
                         hint=(f"did you mean {suggestion!r}? " if suggestion else "") + "see assay convert --list")
    notes = _Notes()
    pipeline_name = ""
    missing = _missing_backend(spec)
    if missing is not None:
        return Conversion(spec.name, "unavailable", None, (missing,), spec.backend[1], "", spec.language)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pipeline = _pipeline(spec, notes)
            pipeline_name = getattr(pipeline, "name", "") or ""
            collection = rule.fresh_collection()
            main_rules = [r for r in collection.rules if isinstance(r, SigmaRule)]
            if main_rules and spec.kusto_package:
                fixes, defect_messages = kusto_mapping_defects(spec, main_rules[0])
                notes.messages += defect_messages
                if defect_messages:
                    notes.warned = True
                if fixes:
                    pipeline = _fix_pipeline(fixes) + pipeline
            backend_class = _import(spec.backend)
            built_in = getattr(backend_class, "backend_processing_pipeline", None)
            if pipeline is not None and getattr(built_in, "name", None) == pipeline_name:
                # The backend applies this pipeline itself (SentinelOne PQ): passing it again would map the
                # fields twice and reject the mapped names.
                pipeline = None
            backend = backend_class(processing_pipeline=pipeline)
            if spec.output_format:
                output = backend.convert(collection, output_format=spec.output_format)
            else:
                output = backend.convert(collection)
        for warning in caught:
            if issubclass(warning.category, DeprecationWarning):
                continue  # a backend's own imports (importlib.resources…), not the rule
            notes.messages.append(f"warning: {warning.message}")
            notes.warned = True
    except SigmaError as error:
        return Conversion(spec.name, "failed", None, tuple([*notes.messages, error.message]), spec.backend[1],
                          pipeline_name, spec.language)
    except Exception as error:  # pySigma's own errors and backend crashes alike: the backend's reason, verbatim
        reason = _shorten(str(error)) or type(error).__name__
        return Conversion(spec.name, "failed", None, tuple([*notes.messages, f"{type(error).__name__}: {reason}"]),
                          spec.backend[1], pipeline_name, spec.language)
    query = _as_text(output)
    if spec.output_format == "yara_l":
        query = query.strip("\n")  # the rule comes wrapped in blank lines
    if query and spec.extract == "sumo-expression":
        query, extra = _sumo_expression(query)
        notes.messages += extra
    if not query:
        return Conversion(spec.name, "failed", None, tuple([*notes.messages, "backend produced no query"]),
                          spec.backend[1], pipeline_name, spec.language)
    if spec.language == "spl2" and mixes_and_or_unparenthesized(query):
        notes.warned = True
        notes.messages.append(
            "check precedence: the SPL2 backend emits AND and OR side by side without parentheses, assuming OR binds "
            "tighter than AND (SPL1 search rules); in an SPL2 WHERE expression AND binds tighter, which changes "
            "the meaning")
    status: ConversionStatus = "converted-with-warnings" if notes.warned else "converted"
    return Conversion(spec.name, status, query, tuple(notes.messages), spec.backend[1], pipeline_name, spec.language)


def _missing_backend(spec: TargetSpec) -> str | None:
    """Why a target's backend or pipeline cannot be imported here, or None when it can."""
    for module, _ in (spec.backend, *((spec.pipeline,) if spec.pipeline else ())):
        try:
            with warnings.catch_warnings():
                # Some backends read their data with importlib.resources' legacy API at import time.
                warnings.simplefilter("ignore", DeprecationWarning)
                importlib.import_module(module)
        except ImportError as error:
            package = spec.package or module
            reason = INCOMPATIBLE_PACKAGES.get(package, f"{type(error).__name__}: {error}")
            return (f"backend unavailable: the pySigma backend package {package} is not installed here "
                    f"({reason}); install it with pip install {package}")
    return None


def _sumo_expression(output: str) -> tuple[str, list[str]]:
    """The match expression of a Sumo Logic CSE rule JSON, and the backend's own notes on it (field-mapping
    confidence, warnings); the JSON's metadata has a conversion timestamp, so it is not the page's query."""
    import json

    try:
        rules = json.loads(output).get("rules", [])
        rule = rules[0]
        expression = str(rule["expression"])
    except (ValueError, KeyError, IndexError, AttributeError, TypeError):
        return output, []
    messages = [f"the backend wrote a Cloud SIEM {rule.get('pattern_type', 'match')} rule (JSON); this is its "
                f"match expression"]
    confidence = rule.get("conversion_metadata", {}).get("mapping_confidence", {})
    if isinstance(confidence, dict):
        if "overall_score" in confidence:
            messages.append(f"the backend's field-mapping confidence: {confidence['overall_score']}")
        warnings_found = [str(w) for w in confidence.get("warnings", [])]
        for mapping in confidence.get("field_mappings", []):
            warnings_found += [f"{mapping.get('sigma_field')} -> {mapping.get('cse_field')}: {w}"
                               for w in mapping.get("warnings", [])]
        messages += [f"warning: {w}" for w in warnings_found]
    return expression, messages


def mixes_and_or_unparenthesized(query: str) -> bool:
    """True when AND and OR both appear at one parenthesis level outside string literals."""
    depth = 0
    operators: dict[int, set[str]] = {}
    for token in re.findall(r'"(?:[^"\\]|\\.)*"|\(|\)|\bAND\b|\bOR\b', query):
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif token in ("AND", "OR"):
            operators.setdefault(depth, set()).add(token)
    return any(len(found) == 2 for found in operators.values())


def _as_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "\n\n".join(_as_text(item) for item in output)
    if isinstance(output, dict):
        import json

        return json.dumps(output, indent=2, ensure_ascii=False)
    return str(output) if output is not None else ""


def _loaded(rule_path: LoadedRule | str | Path) -> LoadedRule:
    return rule_path if isinstance(rule_path, LoadedRule) else load_rule(rule_path)


def convert(rule_path: LoadedRule | str | Path, target: str) -> Conversion:
    """Convert a rule file (or a catalog detection folder) for one target."""
    return convert_loaded(_loaded(rule_path), target)


def convert_all(rule_path: LoadedRule | str | Path) -> list[Conversion]:
    """Convert a rule for every configured target (a failure is a status, never an exception)."""
    rule = _loaded(rule_path)
    return [convert_loaded(rule, spec.name) for spec in list_targets()]


