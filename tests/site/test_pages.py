"""The rendered CMSTP pages: every section issue 8 lists, titles, links that resolve, the byte-exact Sigma download."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from assay.catalog.loader import load_detection
from assay.site.builder import MANIFEST, NAVIGATOR_LAYER, SiteBuild
from assay.verify.coverage import STATUS_SCORE
from tests.site.conftest import CMSTP_FOLDER, CMSTP_ID, CMSTP_SLUG, parse_page

#: The sections every detection × platform page carries (element ids).
SECTIONS = ("description", "attack", "query", "badges", "explanation", "data-sources", "required-tables",
            "false-positives", "tuning", "sigma-download", "other-platforms", "testing", "response", "investigation",
            "hunting", "related")

#: pySigma targets the catalog is converted to (a page each), besides the native KQL and the Sigma rule.
CONVERTED_PAGES = ("microsoft-xdr", "sentinel-asim", "sentinel-securityevent", "splunk", "splunk-cim",
                   "splunk-spl2", "elastic-esql", "elastic-eql", "elastic-lucene", "elastic-elastalert",
                   "google-secops", "ibm-qradar-aql", "sumo-logic", "crowdstrike-logscale", "sentinelone-powerquery",
                   "sqlite", "spark-sql")


def _page(site: SiteBuild, key: str) -> Path:
    return site.out / "detections" / CMSTP_SLUG / f"{key}.html"


def test_a_page_per_platform(cmstp_site: SiteBuild) -> None:
    folder = cmstp_site.out / "detections" / CMSTP_SLUG
    pages = {path.stem for path in folder.glob("*.html")}
    assert pages == {"sentinel-kql", "sigma", *CONVERTED_PAGES}
    assert cmstp_site.detection_pages == len(pages)


@pytest.mark.parametrize("key", ["sentinel-kql", "sigma", *CONVERTED_PAGES])
def test_every_section_present(cmstp_site: SiteBuild, key: str) -> None:
    page = parse_page(_page(cmstp_site, key))
    missing = [section for section in SECTIONS if section not in page.ids]
    assert not missing, f"{key}: missing sections {missing}"
    # Every scenario in tests.yml is listed with its provenance and expected outcome.
    scenario_ids = {i for i in page.ids if i.startswith("scenario-")}
    assert scenario_ids == {f"scenario-{s.id}" for s in load_detection(CMSTP_FOLDER).scenarios}
    assert "scenario-atomic-remote-scriptlet" in scenario_ids


def test_sentinel_page_title_and_header(cmstp_site: SiteBuild) -> None:
    page = parse_page(_page(cmstp_site, "sentinel-kql"))
    assert page.title == "T1218.003 Microsoft Sentinel · KQL — Detect CMSTP in Microsoft Sentinel"
    text = page.all_text
    assert "T1218.003 Microsoft Sentinel · KQL Detect CMSTP in Microsoft Sentinel" in text
    assert "high severity" in text and "high confidence" in text


def test_converted_page_titles_name_their_platform(cmstp_site: SiteBuild) -> None:
    splunk = parse_page(_page(cmstp_site, "splunk"))
    assert splunk.title == "T1218.003 Splunk · SPL — Detect CMSTP in Splunk"
    esql = parse_page(_page(cmstp_site, "elastic-esql"))
    assert esql.title == "T1218.003 Elastic · ES|QL — Detect CMSTP in Elastic"
    sigma = parse_page(_page(cmstp_site, "sigma"))
    assert sigma.title == "T1218.003 Sigma · YAML (portable rule) — Detect CMSTP as a portable Sigma rule"


def test_attack_box_names_come_from_the_pinned_data(cmstp_site: SiteBuild) -> None:
    html = _page(cmstp_site, "sentinel-kql").read_text(encoding="utf-8")
    start = html.index('id="attack"')
    box = html[start:html.index("</section>", start)]
    assert "Defense Evasion" in box and "TA0005" in box
    assert "T1218</span> System Binary Proxy Execution" in box
    assert "T1218.003</span> CMSTP" in box
    assert 'href="https://attack.mitre.org/techniques/T1218/003"' in box


def test_native_query_is_the_kql_file_verbatim_and_highlighted(cmstp_site: SiteBuild) -> None:
    html = _page(cmstp_site, "sentinel-kql").read_text(encoding="utf-8")
    start = html.index('<code id="query-code"')
    block = html[start:html.index("</code>", start)]
    assert '<span class="k">where</span>' in block  # Pygments Kusto tokens
    page = parse_page(_page(cmstp_site, "sentinel-kql"))
    kql = (CMSTP_FOLDER / "sentinel.kql").read_text(encoding="utf-8")
    # The text of the code element (what the copy button copies) is the KQL file, character for character.
    import html as html_module
    import re

    copied = html_module.unescape(re.sub(r"<[^>]+>", "", block.split(">", 1)[1]))
    assert copied == kql
    assert 'data-copy-target="query-code"' in html
    assert "Copy" in page.all_text


def test_sigma_download_is_the_rule_file_byte_for_byte(cmstp_site: SiteBuild) -> None:
    page = parse_page(_page(cmstp_site, "sentinel-kql"))
    downloads = [tags for tag, tags in page.tags if tag == "a" and "download" in tags]
    sigma_links = [tags["href"] for tags in downloads if tags["href"].endswith(".sigma.yml")]
    assert len(sigma_links) == 1
    assert "Download portable Sigma rule (.yml)" in page.all_text
    target = (_page(cmstp_site, "sentinel-kql").parent / sigma_links[0]).resolve()
    assert target.read_bytes() == (CMSTP_FOLDER / "rule.sigma.yml").read_bytes()


def test_other_platforms_link_every_sibling_with_its_status(cmstp_site: SiteBuild) -> None:
    html = _page(cmstp_site, "splunk").read_text(encoding="utf-8")
    start = html.index('id="other-platforms"')
    box = html[start:html.index("</section>", start)]
    for key in ("sentinel-kql", "sigma", *CONVERTED_PAGES):
        if key != "splunk":
            assert f'href="../../detections/{CMSTP_SLUG}/{key}.html"' in box, key
    assert 'aria-current="page"' in box
    statuses = {line.split('data-conversion="')[1].split('"')[0] for line in box.split("<li")[1:]}
    assert "native" in statuses and "portable" in statuses
    assert statuses & {"converted", "converted-with-warnings", "failed"}


def test_conversion_status_and_messages_are_shown(cmstp_site: SiteBuild) -> None:
    from assay.sigma.conversion import convert_all

    for conversion in convert_all(CMSTP_FOLDER / "rule.sigma.yml"):
        page = parse_page(_page(cmstp_site, conversion.target))
        html = _page(cmstp_site, conversion.target).read_text(encoding="utf-8")
        assert f'data-conversion="{conversion.status}"' in html
        if conversion.status == "failed":
            assert "conversion-failed" in page.ids
        else:
            assert "query-code" in page.ids
        for message in conversion.messages:
            assert " ".join(message.split()) in page.all_text


def test_testing_methodology_without_a_report_says_not_yet_run(cmstp_site: SiteBuild) -> None:
    page = parse_page(_page(cmstp_site, "sentinel-kql"))
    text = page.all_text
    assert "not-yet-run" in page.ids
    scenarios = load_detection(CMSTP_FOLDER).scenarios
    firing = sum(1 for scenario in scenarios if scenario.expected.kql == "fires")
    assert f"Tested against {len(scenarios)} scenarios: this query must fire on {firing} and stay quiet on " \
           f"{len(scenarios) - firing}" in text
    # Atomic Red Team provenance: the test name links to the atomic's page, the GUID is shown.
    atomic_links = [link for link in page.links if "atomic-red-team" in link]
    assert "https://github.com/redcanaryco/atomic-red-team/blob/master/atomics/T1218.003/T1218.003.md" in atomic_links
    assert "34e63321-9683-496b-bbc1-7566bc55e624" in text
    assert "748cb4f6-2fb3-4e97-b7ad-b22635a09ab0" in text
    # False-positive provenance links to the FP item on the same page; recordings name their file.
    assert "#false-positive-1" in page.links
    assert "cmstp/panache_sysmon_vs_EDRTestingScript.evtx" in text
    # Expected telemetry and expected column values of the scoring query.
    assert "Sysmon EID 7 cmstp.exe loads C:\\Windows\\System32\\scrobj.dll" in text
    assert "AutoClose = true" in text


def test_converted_page_explains_it_is_not_run_locally(cmstp_site: SiteBuild) -> None:
    page = parse_page(_page(cmstp_site, "splunk"))
    assert "not-runnable" in page.ids
    assert "Converted, not executed: there is no local SPL engine" in page.all_text
    # The page's own badge never says proven: it says what happened to the query.
    html = _page(cmstp_site, "splunk").read_text(encoding="utf-8")
    badges = html[html.index('id="badges"'):html.index("</header>", html.index('id="badges"'))]
    assert 'data-proof-status="not-runnable">Converted, not executed<' in badges
    assert "proven" not in badges.lower()
    assert f"../../detections/{CMSTP_SLUG}/sigma.html#testing" in page.links


def test_playbook_investigation_hunting_related(cmstp_site: SiteBuild) -> None:
    page = parse_page(_page(cmstp_site, "sentinel-kql"))
    text = page.all_text
    assert "Scope the alert" in text and "Contain the host" in text
    assert "Questions to answer, in order" in text
    hunting_blocks = sorted(i for i in page.ids if i.startswith("hunting-"))
    assert len(hunting_blocks) == len(load_detection(CMSTP_FOLDER).detection.hunting) > 0
    assert "Child processes of cmstp.exe" in text


def _internal_targets(page_path: Path, links: list[str]) -> list[tuple[str, Path, str]]:
    found = []
    for link in links:
        parts = urlsplit(link)
        if parts.scheme or parts.netloc:
            continue
        target = page_path if not parts.path else (page_path.parent / unquote(parts.path)).resolve()
        found.append((link, target, parts.fragment))
    return found


def test_every_internal_link_resolves(cmstp_site: SiteBuild) -> None:
    checked = 0
    parsed: dict[Path, set[str]] = {}
    for html_file in sorted(cmstp_site.out.rglob("*.html")):
        page = parse_page(html_file)
        links = page.links + [href for _, href in page.resources]
        for link, target, fragment in _internal_targets(html_file, links):
            assert target.is_relative_to(cmstp_site.out), f"{html_file.name}: {link} leaves the site"
            assert target.is_file(), f"{html_file.relative_to(cmstp_site.out)}: broken link {link}"
            if fragment and target.suffix == ".html":
                if target not in parsed:
                    parsed[target] = parse_page(target).ids
                ids = parsed[target]
                assert fragment in ids, f"{html_file.relative_to(cmstp_site.out)}: no #{fragment} in {link}"
            checked += 1
    assert checked > 200


def test_nothing_loads_from_another_origin(cmstp_site: SiteBuild) -> None:
    for html_file in cmstp_site.out.rglob("*.html"):
        page = parse_page(html_file)
        external = [(tag, src) for tag, src in page.resources
                    if urlsplit(src).scheme not in ("", "data") or src.startswith("//")]
        assert not external, f"{html_file.name} loads {external}"
    for css in cmstp_site.out.rglob("*.css"):
        text = css.read_text(encoding="utf-8")
        assert "url(" not in text and "@import" not in text and "@font-face" not in text
    script = (cmstp_site.out / "static" / "site.js").read_text(encoding="utf-8")
    for network_api in ("fetch(", "XMLHttpRequest", "WebSocket", "import(", "sendBeacon", "http://", "https://"):
        assert network_api not in script, network_api


def test_index_matrix_lists_and_filters(cmstp_site: SiteBuild) -> None:
    index = cmstp_site.out / "index.html"
    page = parse_page(index)
    html = index.read_text(encoding="utf-8")
    # Tactic columns in ATT&CK matrix order.
    tactic_columns = [tags["data-tactic"] for tag, tags in page.tags if "data-tactic" in tags]
    assert tactic_columns[:3] == ["reconnaissance", "resource-development", "initial-access"]
    assert tactic_columns.index("defense-evasion") > tactic_columns.index("privilege-escalation")
    assert len(tactic_columns) == 14
    # The CMSTP detection colours T1218 in Defense Evasion (and only where T1218.003 belongs).
    cells = [tags for tag, tags in page.tags if tags.get("data-technique") == "T1218"]
    assert len(cells) == 1
    assert cells[0]["data-status"] == "untested" and cells[0]["data-detections"].strip() == CMSTP_ID
    assert "detections/t1218.003-cmstp/sentinel-kql.html" in page.links
    counts = [tags["data-tactic-count"] for tag, tags in page.tags if "data-tactic-count" in tags]
    assert counts.count("1") == 1 and counts.count("0") == 13
    for element in ("search", "filter-platform", "filter-severity", "filter-status", "catalog", "platforms"):
        assert element in page.ids
    row = next(tags for tag, tags in page.tags if "data-detection-row" in tags)
    assert row["data-severity"] == "high" and row["data-status"] == "untested"
    assert "sentinel-kql" in row["data-platforms"].split() and "splunk" in row["data-platforms"].split()
    assert "cmstp" in row["data-search"] and "defense evasion" in row["data-search"]
    assert f'href="{NAVIGATOR_LAYER}"' in html


def test_per_platform_lists(cmstp_site: SiteBuild) -> None:
    listing = parse_page(cmstp_site.out / "platforms" / "splunk.html")
    assert "../detections/t1218.003-cmstp/splunk.html" in listing.links
    assert listing.title.startswith("Splunk · SPL")


def test_navigator_layer(cmstp_site: SiteBuild) -> None:
    layer = json.loads((cmstp_site.out / NAVIGATOR_LAYER).read_text(encoding="utf-8"))
    assert layer["domain"] == "enterprise-attack"
    assert layer["versions"]["layer"] == "4.5"
    entries = [t for t in layer["techniques"] if t["techniqueID"] == "T1218.003"]
    assert entries and entries[0]["tactic"] == "defense-evasion"
    assert entries[0]["score"] == STATUS_SCORE["untested"]


def test_manifest_lists_every_file(cmstp_site: SiteBuild) -> None:
    manifest = json.loads((cmstp_site.out / MANIFEST).read_text(encoding="utf-8"))
    on_disk = {str(p.relative_to(cmstp_site.out)) for p in cmstp_site.out.rglob("*") if p.is_file()}
    assert on_disk == set(manifest["files"])


def test_index_filters_by_the_telemetry_a_user_has(cmstp_site: SiteBuild) -> None:
    index = parse_page(cmstp_site.out / "index.html")
    rows = [attrs for tag, attrs in index.tags if "data-detection-row" in attrs]
    # Each telemetry one of CMSTP's forms runs on alone (assay coverage --have): Sigma on all four, KQL on Defender.
    assert rows[0]["data-sources"] == "sysmon security defender ecs"
    options = [attrs.get("value") for tag, attrs in index.tags if tag == "option"]
    assert {"sysmon", "security", "defender", "ecs"} <= set(options)
    assert "filter-sources" in index.ids


def test_forms_assay_executes_are_not_yet_run_rather_than_not_executed(cmstp_site: SiteBuild) -> None:
    for key in ("sqlite", "spark-sql", "microsoft-xdr"):
        page = parse_page(_page(cmstp_site, key))
        assert "not-runnable" not in page.ids, key
        assert "not-yet-run" in page.ids, key
    assert "not-runnable" in parse_page(_page(cmstp_site, "ibm-qradar-aql")).ids
