"""The fast path equals rule-by-rule evaluation: all SigmaHQ Windows rules over EVTX-ATTACK-SAMPLES.

Rule-by-rule means: ingest every event into DuckDB with ``assay ingest``'s writer, then one SQL query per
rule route. The fast path prefilters, builds rows in Python and evaluates rules as Python; any difference in a
single hit fails here with the rule, the file and the record. Compiling ~2,400 rules cold takes minutes, so the
compiled-rule cache ($ASSAY_CACHE_DIR or ~/.cache/assay) is used: later runs take well under a minute.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.hunt.rules import load_hunt_rules
from assay.hunt.run import hunt

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


def _describe(identity: tuple[str, str, int | None], titles: dict[str, str]) -> str:
    rule, source, record = identity
    return f"{rule} - {titles.get(rule, '?')} -> {Path(source).name}#{record}"


def test_fast_path_equals_rule_by_rule_on_sigmahq_and_attack_samples(shared_data: Path) -> None:
    rules = shared_data / "sigmahq" / "rules" / "windows"
    corpus = shared_data / "evtx-attack-samples"
    if not rules.is_dir() or not corpus.is_dir():
        pytest.skip("SigmaHQ rules or EVTX-ATTACK-SAMPLES missing from the shared data")
    rule_set = load_hunt_rules([rules])
    assert len(rule_set.rules) > 2000
    fast = hunt([corpus], rule_set, mode="fast")
    reference = hunt([corpus], rule_set, mode="reference")
    assert fast.events == reference.events > 8000
    titles = {h.rule_id: h.rule_title for h in reference.hits}
    fast_hits = {h.identity for h in fast.hits}
    reference_hits = {h.identity for h in reference.hits}
    missing = sorted(_describe(i, titles) for i in reference_hits - fast_hits)
    extra = sorted(_describe(i, titles) for i in fast_hits - reference_hits)
    assert not missing, f"{len(missing)} hits only rule-by-rule finds, e.g. {missing[:10]}"
    assert not extra, f"{len(extra)} hits only the fast path finds, e.g. {extra[:10]}"
    assert len(reference_hits) > 500  # the corpus is full of attacks: an empty answer would prove nothing
    # same evidence too, not just the same (rule, event) pairs
    assert [h.as_dict() for h in fast.hits] == [h.as_dict() for h in reference.hits]
