"""Sigma through pySigma: loading offline, lowering to sqlglot for local execution, conversion to platforms.

Public API (the proof runner and hunt call these):
``load_rule``, ``load_rules`` → ``LoadedRule | RuleLoadError``; ``compile_rule`` → ``CompiledTarget`` per route;
``evaluate`` → ``SigmaEvaluation``; ``convert`` / ``convert_all`` → ``Conversion``; ``eval_flat_events`` for
``assay sigma eval`` on flat JSON events. Imports are lazy so ``import assay.sigma`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assay.sigma.compiler import CompiledTarget, compile_rule
    from assay.sigma.conversion import Conversion, convert, convert_all, list_targets
    from assay.sigma.evaluation import CorrelationHit, RouteEvaluation, SigmaEvaluation, evaluate
    from assay.sigma.flat import FlatEvaluation, eval_flat_events
    from assay.sigma.loading import LoadedRule, RuleLoadError, load_rule, load_rules

_EXPORTS = {
    "CompiledTarget": "assay.sigma.compiler",
    "compile_rule": "assay.sigma.compiler",
    "Conversion": "assay.sigma.conversion",
    "convert": "assay.sigma.conversion",
    "convert_all": "assay.sigma.conversion",
    "list_targets": "assay.sigma.conversion",
    "CorrelationHit": "assay.sigma.evaluation",
    "RouteEvaluation": "assay.sigma.evaluation",
    "SigmaEvaluation": "assay.sigma.evaluation",
    "evaluate": "assay.sigma.evaluation",
    "FlatEvaluation": "assay.sigma.flat",
    "eval_flat_events": "assay.sigma.flat",
    "LoadedRule": "assay.sigma.loading",
    "RuleLoadError": "assay.sigma.loading",
    "load_rule": "assay.sigma.loading",
    "load_rules": "assay.sigma.loading",
}

__all__ = [
    "CompiledTarget",
    "Conversion",
    "CorrelationHit",
    "FlatEvaluation",
    "LoadedRule",
    "RouteEvaluation",
    "RuleLoadError",
    "SigmaEvaluation",
    "compile_rule",
    "convert",
    "convert_all",
    "eval_flat_events",
    "evaluate",
    "list_targets",
    "load_rule",
    "load_rules",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'assay.sigma' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
