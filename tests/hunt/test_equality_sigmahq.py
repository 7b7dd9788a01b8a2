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


def _compare(rule_set, logs: list[Path]) -> tuple[object, object]:  # type: ignore[no-untyped-def]
    fast = hunt(logs, rule_set, mode="fast")
    reference = hunt(logs, rule_set, mode="reference")
    titles = {h.rule_id: h.rule_title for h in reference.hits}
    fast_hits = {h.identity for h in fast.hits}
    reference_hits = {h.identity for h in reference.hits}
    missing = sorted(_describe(i, titles) for i in reference_hits - fast_hits)
    extra = sorted(_describe(i, titles) for i in fast_hits - reference_hits)
    assert not missing, f"{len(missing)} hits only rule-by-rule finds, e.g. {missing[:10]}"
    assert not extra, f"{len(extra)} hits only the fast path finds, e.g. {extra[:10]}"
    assert [h.as_dict() for h in fast.hits] == [h.as_dict() for h in reference.hits]
    assert (fast.events, fast.bad_records) == (reference.events, reference.bad_records)
    return fast, reference


@pytest.fixture(scope="module")
def sigmahq(shared_data: Path):  # type: ignore[no-untyped-def]
    rules = shared_data / "sigmahq" / "rules" / "windows"
    corpus = shared_data / "evtx-attack-samples"
    if not rules.is_dir() or not corpus.is_dir():
        pytest.skip("SigmaHQ rules or EVTX-ATTACK-SAMPLES missing from the shared data")
    rule_set = load_hunt_rules([rules])
    assert len(rule_set.rules) > 2000
    return rule_set, corpus


def test_fast_path_equals_rule_by_rule_on_sigmahq_and_attack_samples(sigmahq) -> None:  # type: ignore[no-untyped-def]
    rule_set, corpus = sigmahq
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

    # the cases the first fixtures never had: a product-only keyword rule ran over every channel, and rules
    # reading the unnamed Data of classic events (Application, System, Windows PowerShell) ran on its text
    product_only = {r.source for r in rule_set.rules if any(t.route == "windows" for t in r.targets)}
    assert product_only  # SigmaHQ's keyword rule(s) with logsource {product: windows} run
    assert not product_only & {p.source for p in [*fast.problems, *fast.no_events]}
    assert any(dict(h.fields).get("Data") for h in fast.hits)
    assert not any(value.startswith('{"#text"') for h in fast.hits for name, value in h.fields if name == "Data")


def test_fast_path_equals_rule_by_rule_on_truncated_and_exported_logs(sigmahq, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Logs cut at every kind of place, next to whole exported ones: the same records read, the same hits and
    the same truncation reports on both paths."""
    rule_set, corpus = sigmahq
    files = sorted(corpus.rglob("*.evtx"), key=lambda p: -p.stat().st_size)[:8]
    chunk, header = 0x10000, 0x1000
    cuts = [header - 1000, header, header + 100, header + chunk // 2, header + chunk, header + chunk + chunk // 3,
            header + 2 * chunk + 7000, 10**9]
    for number, (path, cut) in enumerate(zip(files, cuts, strict=True)):
        (tmp_path / f"{number}-{path.name}").write_bytes(path.read_bytes()[:cut])
    fast, _reference = _compare(rule_set, [tmp_path])
    assert fast.bad_records > 0 and any("truncated EVTX" in b.reason for b in fast.bad_record_list)
    assert fast.events > 0
