"""Proof: scenario synthesis, the detection test runner, agreement between forms, JUnit/JSON reports, coverage.

Public API (imports are lazy so ``import assay.verify`` stays cheap): ``synthesize`` / ``write_telemetry``
(scenario → events in every schema), ``run_paths`` / ``run_detections`` with ``RunOptions`` (``assay test``),
``ProofReport`` with ``load_report`` / ``save_report`` (the JSON the site reads), ``junit_xml``,
``navigator_layer`` and ``coverage_by_tactic`` (``assay coverage``), ``import_atomics`` (``assay atomics import``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assay.verify.atomics import import_atomics
    from assay.verify.coverage import coverage_by_tactic, navigator_layer
    from assay.verify.junit import junit_xml
    from assay.verify.report import ProofReport, load_report, save_report
    from assay.verify.runner import RunOptions, run_detections, run_paths
    from assay.verify.synth import synthesize, write_telemetry

_EXPORTS = {
    "import_atomics": "assay.verify.atomics",
    "coverage_by_tactic": "assay.verify.coverage",
    "navigator_layer": "assay.verify.coverage",
    "junit_xml": "assay.verify.junit",
    "ProofReport": "assay.verify.report",
    "load_report": "assay.verify.report",
    "save_report": "assay.verify.report",
    "RunOptions": "assay.verify.runner",
    "run_detections": "assay.verify.runner",
    "run_paths": "assay.verify.runner",
    "synthesize": "assay.verify.synth",
    "write_telemetry": "assay.verify.synth",
}

__all__ = [
    "ProofReport",
    "RunOptions",
    "coverage_by_tactic",
    "import_atomics",
    "junit_xml",
    "load_report",
    "navigator_layer",
    "run_detections",
    "run_paths",
    "save_report",
    "synthesize",
    "write_telemetry",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'assay.verify' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
