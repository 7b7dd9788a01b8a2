"""The detection catalog: strict models, a loader that keeps YAML line marks, lint checks and derived views.

    from assay.catalog import load_catalog, load_detection, lint_catalog
    catalog = load_catalog("detections")          # Catalog(detections=[LoadedDetection…], errors=[…])
    loaded = catalog.find("T1218.003")[0]          # by id, id prefix, technique or folder name
    loaded.detection, loaded.scenarios, loaded.kql_text, loaded.sigma_text, loaded.span("tests", ("scenarios", 0))
"""

from assay.catalog.lint import LintIssue, LintReport, lint_catalog
from assay.catalog.loader import Catalog, CatalogLoadError, clear_cache, load_catalog, load_detection
from assay.catalog.models import (
    FORMS,
    Activity,
    AlertPredicate,
    Detection,
    Expected,
    Form,
    HuntingQuery,
    KnownDifference,
    LoadedDetection,
    Outcome,
    Process,
    Provenance,
    ResponseStep,
    Scenario,
    ScenarioFile,
)

__all__ = [
    "FORMS",
    "Activity",
    "AlertPredicate",
    "Catalog",
    "CatalogLoadError",
    "Detection",
    "Expected",
    "Form",
    "HuntingQuery",
    "KnownDifference",
    "LintIssue",
    "LintReport",
    "LoadedDetection",
    "Outcome",
    "Process",
    "Provenance",
    "ResponseStep",
    "Scenario",
    "ScenarioFile",
    "clear_cache",
    "lint_catalog",
    "load_catalog",
    "load_detection",
]
