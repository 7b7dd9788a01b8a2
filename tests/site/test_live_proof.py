"""The site on a real proof run: ``assay.verify.runner`` on two CMSTP scenarios (an Atomic Red Team test and a
false-positive item), every form, then the site built from that report. The site must show what really ran."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from markupsafe import escape

from assay.catalog.loader import load_catalog, load_detection
from assay.site.builder import build_site
from assay.verify.report import ProofReport
from assay.verify.runner import run_detections
from tests.site.conftest import BUILD_TIME, CMSTP_FOLDER, CMSTP_SLUG, parse_page

RAN = ("atomic-remote-scriptlet", "fp-vpn-client-install-program-files")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProofReport, Path]:
    loaded = load_detection(CMSTP_FOLDER)
    subset = dataclasses.replace(loaded, scenarios=tuple(s for s in loaded.scenarios if s.id in RAN))
    report = run_detections([subset])
    out = tmp_path_factory.mktemp("live") / "site"
    build_site(load_catalog(CMSTP_FOLDER.parent), out, report=report, now=BUILD_TIME)
    return report, out


def test_the_runs_results_are_on_the_sentinel_page(live: tuple[ProofReport, Path]) -> None:
    report, out = live
    page_path = out / "detections" / CMSTP_SLUG / "sentinel-kql.html"
    html = page_path.read_text(encoding="utf-8")
    page = parse_page(page_path)
    detection = report.detections[0]
    assert report.summary.failed == 0 and report.summary.errors == 0
    finished = report.run.finished or report.run.started
    assert f'datetime="{finished.isoformat()}"' in html
    kql_results = [r for s in detection.scenarios for r in s.results if r.form == "kql"]
    assert kql_results and all(r.status == "pass" for r in kql_results)
    # The atomic scenario's evidence row is what the native KQL returned on the synthesized Defender rows.
    atomic = next(r for s in detection.scenarios if s.id == RAN[0] for r in s.results if r.form == "kql")
    command_line = atomic.evidence[0].values["ProcessCommandLine"]
    assert isinstance(command_line, str) and "cmstp.exe" in command_line
    assert str(escape(command_line)) in html  # Jinja's escaping: " becomes &#34;
    # Scenarios that were not in the run say so instead of claiming a result.
    start = html.index('id="scenario-own-silent-temp-dropper"')
    assert "Not yet run for this form" in html[start:html.index("</li>", html.index("</dl>", start))]
    assert 'data-result="pass"' in html
    assert "run-date" in page.ids
    # How it ran: the SQL the KQL compiled to, as DuckDB executed it, laid out for reading.
    assert "sql-that-ran" in page.ids and "sql-1" in page.ids
    sql_block = html[html.index('id="sql-1"'):]
    sql_block = sql_block[:sql_block.index("</code>")]
    assert "DeviceProcessEvents" in sql_block and "FROM" in sql_block


def test_each_form_page_shows_its_own_results(live: tuple[ProofReport, Path]) -> None:
    report, out = live
    folder = out / "detections" / CMSTP_SLUG
    for key, form in (("sigma", "sigma"), ("microsoft-xdr", "converted:microsoft-xdr")):
        html = (folder / f"{key}.html").read_text(encoding="utf-8")
        ran = {r.form for s in report.detections[0].scenarios for r in s.results}
        assert form in ran
        assert f'data-result-form="{form}"' in html
        assert "run-date" in parse_page(folder / f"{key}.html").ids
    # The texts that ran are the ones on the pages: nothing is flagged stale.
    for key in ("sentinel-kql", "microsoft-xdr", "sigma"):
        assert "stale-results" not in parse_page(folder / f"{key}.html").ids, key
