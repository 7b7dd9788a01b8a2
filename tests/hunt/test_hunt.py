"""assay hunt end to end on realistic events: the fast path equals rule-by-rule, and the timeline is right."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from assay.cli.main import cli
from assay.hunt.rules import load_hunt_rules
from assay.hunt.run import hunt
from tests.hunt.conftest import case_events, write_jsonl

EXPECTED = {
    ("CMSTP Silent Install", 1), ("CMSTP Silent Install", 4),
    ("Encoded PowerShell From Office", 2),
    ("Any Process But Svchost", 1), ("Any Process But Svchost", 2), ("Any Process But Svchost", 4),
    ("Any Process But Svchost", 5), ("Any Process But Svchost", 6),
    ("Percent Underscore Literal", 5),
    ("PsExec Service Keyword", 7),
    ("Failed Network Logon", 8),
}


def hit_keys(result) -> set[tuple[str, int | None]]:  # type: ignore[no-untyped-def]
    return {(h.rule_title, h.source_record) for h in result.hits}


def test_fast_path_finds_exactly_the_expected_hits_and_equals_rule_by_rule(case_logs: Path, rules_dir: Path,
                                                                          cache_dir: Path) -> None:
    rule_set = load_hunt_rules([rules_dir], cache_dir=cache_dir)
    assert not rule_set.problems
    fast = hunt([case_logs], rule_set, mode="fast", workers=1)
    reference = hunt([case_logs], rule_set, mode="reference")
    assert hit_keys(fast) == EXPECTED
    assert [h.as_dict() for h in fast.hits] == [h.as_dict() for h in reference.hits]
    assert fast.events == reference.events == len(case_events())
    # the prefilter let through far fewer pairs than rules x events
    assert fast.pairs < fast.targets * fast.events


def test_timeline_is_sorted_and_carries_evidence(case_logs: Path, rules_dir: Path, cache_dir: Path) -> None:
    result = hunt([case_logs], [rules_dir], cache_dir=cache_dir, workers=1)
    stamps = [h.timestamp for h in result.hits]
    assert stamps == sorted(stamps)
    cmstp = next(h for h in result.hits if h.rule_title == "CMSTP Silent Install" and h.source_record == 1)
    assert cmstp.host == "WKS-FIN-042.corp.example.com"
    assert cmstp.level == "high" and cmstp.techniques == ("T1218.003",)
    assert cmstp.event_id == 1 and cmstp.channel == "Microsoft-Windows-Sysmon/Operational"
    fields = dict(cmstp.fields)
    assert fields["Image"] == "C:\\Windows\\System32\\cmstp.exe"
    assert fields["CommandLine"].startswith("cmstp.exe /ni /s https://")
    assert cmstp.source_file.endswith("wks-fin-042.jsonl")
    assert cmstp.timestamp is not None and cmstp.timestamp.isoformat() == "2024-03-12T09:14:22.123456"
    summary = result.summary
    assert summary.by_level["informational"] == 5 and summary.by_level["critical"] == 1
    assert summary.by_technique["T1218.003"] == 2
    assert summary.by_rule[0][0] == "Encoded PowerShell From Office"  # most severe first


def test_producer_escaping_does_not_hide_matches(tmp_path: Path, rules_dir: Path, cache_dir: Path) -> None:
    """JSON writers that escape '/' or non-ASCII must not defeat the raw-text prefilter."""
    folder = tmp_path / "escaped"
    folder.mkdir()
    events = case_events()
    events[0]["Event"]["EventData"]["CommandLine"] = "cmstp.exe /ni /s C:\\Users\\José\\Desktop\\profile.inf"
    write_jsonl(folder / "slashes.jsonl", events, escape_slashes=True, ascii_only=True)
    rule_set = load_hunt_rules([rules_dir], cache_dir=cache_dir)
    fast = hunt([folder], rule_set, workers=1)
    reference = hunt([folder], rule_set, mode="reference")
    assert hit_keys(fast) == hit_keys(reference) == EXPECTED


def test_two_workers_give_the_same_timeline(tmp_path: Path, rules_dir: Path, cache_dir: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for host in range(6):
        events = case_events()
        for event in events:
            event["Event"]["System"]["Computer"] = f"WKS-{host:03d}.corp.example.com"
        write_jsonl(folder / f"wks-{host:03d}.jsonl", events)
    rule_set = load_hunt_rules([rules_dir], cache_dir=cache_dir)
    import assay.hunt.fastpath as fastpath

    original = fastpath.UNIT_BYTES
    fastpath.UNIT_BYTES = 1  # one unit per file, so both workers get work
    try:
        parallel = hunt([folder], rule_set, workers=2)
    finally:
        fastpath.UNIT_BYTES = original
    single = hunt([folder], rule_set, workers=1)
    assert len(parallel.hits) == 6 * len(EXPECTED)
    assert [h.as_dict() for h in parallel.hits] == [h.as_dict() for h in single.hits]


def test_bad_rules_are_listed_and_the_rest_still_run(case_logs: Path, rules_dir: Path, cache_dir: Path) -> None:
    (rules_dir / "broken.yml").write_text("title: Broken\ndetection: [unclosed\n", encoding="utf-8")
    (rules_dir / "unknown_modifier.yml").write_text(
        "title: Bad Modifier\nlogsource: {category: process_creation, product: windows}\n"
        "detection:\n  sel:\n    Image|endswithh: '\\\\x.exe'\n  condition: sel\n", encoding="utf-8")
    (rules_dir / "linux.yml").write_text(
        "title: Linux Only\nlogsource: {product: linux, service: auditd}\n"
        "detection:\n  sel:\n    type: EXECVE\n  condition: sel\n", encoding="utf-8")
    result = hunt([case_logs], [rules_dir], cache_dir=cache_dir, workers=1)
    problems = {Path(p.source).name: p for p in result.problems}
    assert set(problems) == {"broken.yml", "unknown_modifier.yml", "linux.yml"}
    assert problems["broken.yml"].kind == "load"
    assert problems["linux.yml"].kind == "no-route"
    assert hit_keys(result) == EXPECTED


def test_damaged_json_lines_are_reported_and_neighbours_kept(tmp_path: Path, rules_dir: Path,
                                                             cache_dir: Path) -> None:
    folder = tmp_path / "damaged"
    folder.mkdir()
    path = write_jsonl(folder / "case.jsonl", case_events())
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(2, '{"Event": {"System": {"Channel": "Security", "EventID": 4625, "Comp')  # truncated write
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = hunt([folder], [rules_dir], cache_dir=cache_dir, workers=1)
    assert result.bad_records == 1
    assert "line 3" in str(result.bad_record_list[0])
    assert len(result.hits) == len(EXPECTED)


def test_cli_empty_input_gives_empty_timeline_and_exit_0(tmp_path: Path, rules_dir: Path, cache_dir: Path,
                                                         monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ASSAY_CACHE_DIR", str(cache_dir))
    empty = tmp_path / "empty"
    empty.mkdir()
    outcome = CliRunner().invoke(cli, ["hunt", str(empty), "--rules", str(rules_dir), "--format", "json"])
    assert outcome.exit_code == 0, outcome.output
    document = json.loads(outcome.output)
    assert document["timeline"] == [] and document["events"] == 0


def test_cli_formats(case_logs: Path, rules_dir: Path, cache_dir: Path, tmp_path: Path,
                     monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ASSAY_CACHE_DIR", str(cache_dir))
    runner = CliRunner()
    jsonl = runner.invoke(cli, ["hunt", str(case_logs), "-r", str(rules_dir), "--format", "jsonl", "--workers", "1"])
    assert jsonl.exit_code == 0, jsonl.output
    records = [json.loads(line) for line in jsonl.stdout.splitlines() if line.startswith("{")]
    assert {(r["rule"], r["source_record"]) for r in records} == EXPECTED
    assert "rules not evaluated" not in jsonl.stdout
    out = tmp_path / "timeline.csv"
    csv_run = runner.invoke(cli, ["hunt", str(case_logs), "-r", str(rules_dir), "--format", "csv", "--out", str(out),
                                  "--workers", "1"])
    assert csv_run.exit_code == 0, csv_run.output
    header, *rows = out.read_text(encoding="utf-8").splitlines()
    assert header.startswith("timestamp,host,rule,level,techniques")
    assert len(rows) == len(EXPECTED)
    assert "Hits by rule" in csv_run.output
    table = runner.invoke(cli, ["hunt", str(case_logs), "-r", str(rules_dir), "--workers", "1"])
    assert table.exit_code == 0
    assert "CMSTP Silent Install" in table.output and "wks-fin-042.jsonl" in table.output


def test_cli_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["hunt"]).exit_code == 2
    missing = runner.invoke(cli, ["hunt", str(tmp_path), "--rules", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such rule file" in missing.output


def test_rules_without_events_of_their_logsource_are_listed(case_logs: Path, rules_dir: Path,
                                                            cache_dir: Path) -> None:
    (rules_dir / "dns_query.yml").write_text(
        "title: Suspicious DNS Query For Ngrok\nid: 1d08ac94-400d-4469-a82f-daee9a908849\nlevel: high\n"
        "logsource: {category: dns_query, product: windows}\n"
        "detection:\n  sel:\n    QueryName|contains: '.ngrok.io'\n  condition: sel\n", encoding="utf-8")
    result = hunt([case_logs], [rules_dir], cache_dir=cache_dir, workers=1)
    no_events = {p.title for p in result.no_events}
    assert "Suspicious DNS Query For Ngrok" in no_events
    assert "CMSTP Silent Install" not in no_events  # its Sysmon route had events
    assert hit_keys(result) == EXPECTED
