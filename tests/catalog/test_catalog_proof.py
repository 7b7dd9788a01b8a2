"""The whole catalog, proven: every form of every detection on every scenario, as `assay test detections/` does.

Failures name the detection and scenario (`<id> - <title> / <scenario> -> expected … got …`)."""

from __future__ import annotations

import os

import pytest

from assay.verify.report import ProofReport
from assay.verify.runner import RunOptions, run_paths
from tests.conftest import DETECTIONS


@pytest.fixture(scope="module")
def proof() -> ProofReport:
    return run_paths([DETECTIONS], RunOptions(jobs=min(os.cpu_count() or 1, 4)))


def test_every_detection_is_proven_in_every_form(proof: ProofReport) -> None:
    problems = []
    for detection in proof.detections:
        problems += [f"{detection.id} - {detection.title} -> {error}" for error in detection.errors]
        for scenario in detection.scenarios:
            for result in scenario.results:
                if result.status in ("fail", "error"):
                    problems.append(f"{detection.id} - {detection.title} / {scenario.id} [{result.key}] -> expected "
                                    f"{result.expected}, got {result.verdict or result.status}: {result.reason}")
        problems += [f"{detection.id} - {detection.title} / {finding.scenario} -> forms disagree: {finding.verdicts}"
                     for finding in detection.agreement if finding.status in ("warn", "fail")]
    assert not problems, "\n".join(problems)
    assert proof.summary.ok


def test_attack_scenarios_fire_on_many_telemetry_routes(proof: ProofReport) -> None:
    """The catalog is proven on more than process creation: attack scenarios fire on several distinct routes."""
    routes = {result.route for detection in proof.detections for scenario in detection.scenarios
              if scenario.kind == "attack" for result in scenario.results
              if result.form == "sigma" and result.verdict == "fires" and result.route}
    assert len(routes) >= 3, sorted(routes)
