"""The latest proof result on each page: pass/fail per scenario, evidence rows, run date, statuses on the index."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from assay.catalog.loader import load_catalog
from assay.site.builder import NAVIGATOR_LAYER, build_site
from assay.verify.coverage import STATUS_SCORE
from assay.verify.report import save_report
from tests.conftest import DETECTIONS
from tests.site.conftest import BUILD_TIME, CMSTP_SLUG, cmstp_catalog, make_report, parse_page

FAILING_SCENARIO = "atomic-uac-bypass-inf"


@pytest.fixture(scope="module")
def proven_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("proven") / "site"
    catalog = cmstp_catalog(tmp_path_factory.mktemp("proven-catalog"))
    build_site(load_catalog(catalog), out, report=make_report(), now=BUILD_TIME)
    return out


@pytest.fixture(scope="module")
def failing_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("failing")
    report_path = save_report(make_report(failing_kql=FAILING_SCENARIO), folder / "report.json")
    out = folder / "site"
    build_site(load_catalog(cmstp_catalog(folder / "catalog")), out, report=report_path, now=BUILD_TIME)
    return out


def _page(out: Path, key: str) -> Path:
    return out / "detections" / CMSTP_SLUG / f"{key}.html"


def _scenario_html(html: str, scenario_id: str) -> str:
    start = html.rindex("<li", 0, html.index(f'id="scenario-{scenario_id}"'))
    return html[start:html.index("</li>\n", html.index("</dl>", start))]


def test_kql_page_shows_run_date_status_and_evidence(proven_site: Path) -> None:
    html = _page(proven_site, "sentinel-kql").read_text(encoding="utf-8")
    page = parse_page(_page(proven_site, "sentinel-kql"))
    assert "run-date" in page.ids and "not-yet-run" not in page.ids
    assert '<time id="run-date" datetime="2026-11-28T09:41:21+00:00">2026-11-28 09:41 UTC</time>' in html
    assert "Latest proof run for this form (kql):" in page.all_text
    summary = html[html.index('id="proof-summary"'):html.index("</p>", html.index('id="proof-summary"'))]
    assert 'data-proof-status="proven"' in summary
    # An atomic scenario: passed, with the matched row and the scoring query's column checks.
    atomic = _scenario_html(html, "atomic-remote-scriptlet")
    assert 'class="scenario result-pass"' in atomic
    assert 'data-result="pass"' in atomic
    assert "cmstp.exe  /s &#34;C:\\AtomicRedTeam\\atomics\\T1218.003\\src\\T1218.003.inf&#34;" in atomic
    assert "evidence-rows" in atomic and "column-checks" in atomic and "SuspiciousParent" in atomic
    assert "fired (1 row)." in parse_page(_page(proven_site, "sentinel-kql")).all_text
    # A benign scenario: passed by staying quiet, no evidence rows.
    benign = _scenario_html(html, "fp-vpn-client-install-program-files")
    assert 'data-result="pass"' in benign and "evidence-rows" not in benign
    assert "did not fire" in benign


def test_recordings_not_found_show_as_skipped_with_the_reason(proven_site: Path) -> None:
    html = _page(proven_site, "sentinel-kql").read_text(encoding="utf-8")
    recording = _scenario_html(html, "rec-edr-testing-remote-inf")
    assert 'data-result="skip"' in recording
    assert "recording not found under the shared data folder" in recording


def test_each_page_shows_its_own_form(proven_site: Path) -> None:
    sigma_html = _page(proven_site, "sigma").read_text(encoding="utf-8")
    assert 'data-result-form="sigma"' in sigma_html and 'data-result-form="kql"' not in sigma_html
    assert "on <code>process_creation:sysmon</code>" in sigma_html
    xdr_html = _page(proven_site, "microsoft-xdr").read_text(encoding="utf-8")
    assert 'data-result-form="converted:microsoft-xdr"' in xdr_html and 'data-result-form="sigma"' not in xdr_html
    # SPL is not run: the page says so and points at the Sigma rule's (proven) result.
    splunk = parse_page(_page(proven_site, "splunk"))
    assert "not-runnable" in splunk.ids
    splunk_html = _page(proven_site, "splunk").read_text(encoding="utf-8")
    summary = splunk_html[splunk_html.index('id="proof-summary"'):]
    assert 'data-proof-status="proven"' in summary[:summary.index("</p>")]


def test_index_colours_the_matrix_by_proof(proven_site: Path) -> None:
    index = parse_page(proven_site / "index.html")
    cell = next(tags for tag, tags in index.tags if tags.get("data-technique") == "T1218")
    assert cell["data-status"] == "proven"
    assert "status-proven" in cell["class"]
    row = next(tags for tag, tags in index.tags if "data-detection-row" in tags)
    assert row["data-status"] == "proven"
    layer = json.loads((proven_site / NAVIGATOR_LAYER).read_text(encoding="utf-8"))
    entry = next(t for t in layer["techniques"] if t["techniqueID"] == "T1218.003")
    assert entry["score"] == STATUS_SCORE["proven"]


def test_a_failing_scenario_is_shown_as_failing(failing_site: Path) -> None:
    html = _page(failing_site, "sentinel-kql").read_text(encoding="utf-8")
    failing = _scenario_html(html, FAILING_SCENARIO)
    assert 'class="scenario result-fail"' in failing
    assert "expected fires, got does-not-fire" in failing
    assert "did not fire (0 rows); expected it to fire." in " ".join(failing.split())
    header = html[html.index('id="badges"'):html.index("</div>", html.index('id="badges"'))]
    assert 'data-proof-status="failing"' in header
    # The Sigma form passed everywhere: its page is proven, and the sibling list shows both.
    sigma_html = _page(failing_site, "sigma").read_text(encoding="utf-8")
    sigma_header = sigma_html[sigma_html.index('id="badges"'):]
    assert 'data-proof-status="proven"' in sigma_header[:sigma_header.index("</div>")]
    others = sigma_html[sigma_html.index('id="other-platforms"'):]
    others = others[:others.index("</section>")]
    assert 'data-proof-status="failing"' in others and 'data-proof-status="proven"' in others
    index = parse_page(failing_site / "index.html")
    cell = next(tags for tag, tags in index.tags if tags.get("data-technique") == "T1218")
    assert cell["data-status"] == "failing"


def test_detection_changed_after_the_run_is_flagged(tmp_path: Path) -> None:
    report = make_report()
    report.run.started = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
    report.run.finished = dt.datetime(2026, 11, 20, 8, 1, tzinfo=dt.UTC)
    build_site(load_catalog(cmstp_catalog(tmp_path / "catalog")), tmp_path / "site", report=report, now=BUILD_TIME)
    text = parse_page(_page(tmp_path / "site", "sentinel-kql")).all_text
    assert "The detection was modified after this run" in text


def test_results_for_another_query_text_are_flagged_stale(tmp_path: Path) -> None:
    report = make_report()
    kql_text = (DETECTIONS / "T1218.003-cmstp" / "sentinel.kql").read_text(encoding="utf-8")
    for scenario in report.detections[0].scenarios:
        for result in scenario.results:
            if result.form == "kql":
                # What ran: an older query that did not look at the /au switch.
                result.query = kql_text.replace('("/s", "/au")', '("/s")') + "\n| where AutoClose"
    build_site(load_catalog(cmstp_catalog(tmp_path / "fresh-catalog")), tmp_path / "fresh", report=make_report(),
               now=BUILD_TIME)
    build_site(load_catalog(cmstp_catalog(tmp_path / "stale-catalog")), tmp_path / "stale", report=report, now=BUILD_TIME)
    assert "stale-results" in parse_page(_page(tmp_path / "stale", "sentinel-kql")).ids
    assert "stale-results" not in parse_page(_page(tmp_path / "fresh", "sentinel-kql")).ids
    assert "stale-results" not in parse_page(_page(tmp_path / "stale", "sigma")).ids
