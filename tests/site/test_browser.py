"""The site in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright for Python.

Loads the index and the CMSTP Sentinel page from a ``site serve`` server on 127.0.0.1 and from ``file://``, checks the
matrix cell, the copy button, the search and filters, that hostile detection text never runs, and that no request
leaves localhost (every request is routed through a handler that aborts and records anything else). Screenshots go
to ``test-artifacts/`` (gitignored). Skipped with the reason when Chromium or Playwright is missing.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from assay.catalog.loader import load_catalog
from assay.site.builder import build_site
from assay.site.serve import make_server, server_url
from tests.conftest import ROOT
from tests.site.conftest import (
    BUILD_TIME,
    CMSTP_FOLDER,
    CMSTP_SLUG,
    copy_cmstp,
    make_report,
    write_hostile_detection,
)

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts"
HOSTILE_ID = "0b7d1f0e-3c1a-4f43-9d55-2f8e6a9c4b21"


@dataclass
class Browser:
    context: Any
    base_url: str
    site: Path
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("file", "data", "about", "blob"):
        return True
    return parts.scheme in ("http", "https") and parts.hostname in ("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[browser]')")
    if not CHROMIUM.is_file() and shutil.which("chromium") is None:
        pytest.skip(f"chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    executable = str(CHROMIUM) if CHROMIUM.is_file() else str(shutil.which("chromium"))

    root = tmp_path_factory.mktemp("browser")
    catalog = root / "catalog"
    copy_cmstp(catalog)
    write_hostile_detection(catalog)
    site = root / "site"
    build_site(load_catalog(catalog), site, report=make_report(catalog / CMSTP_FOLDER.name), now=BUILD_TIME)
    server = make_server(site, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as playwright:
            try:
                context = playwright.chromium.launch_persistent_context(
                    str(root / "user-data"), executable_path=executable, args=CHROMIUM_ARGS, headless=True,
                    viewport={"width": 1400, "height": 900},
                    permissions=["clipboard-read", "clipboard-write"],
                )
            except PlaywrightError as error:
                pytest.skip(f"chromium at {executable} does not start: {str(error).splitlines()[0]}")
            state = Browser(context=context, base_url=server_url(server), site=site)

            def route(route: Any) -> None:
                url = route.request.url
                state.requests.append(url)
                if _is_local(url):
                    route.continue_()
                else:
                    state.blocked.append(url)
                    route.abort()

            context.route("**/*", route)
            context.on("request", lambda request: state.requests.append(request.url))
            context.on("page", lambda page: _watch(page, state))
            yield state
            context.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _watch(page: Any, state: Browser) -> None:
    page.on("dialog", lambda dialog: (state.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: state.errors.append(str(error)))
    page.on("console", lambda message: state.errors.append(message.text) if message.type == "error" else None)


def _new_page(browser: Browser) -> Any:
    page = browser.context.new_page()
    _watch(page, browser)
    return page


def test_index_matrix_and_filters(browser: Browser) -> None:
    page = _new_page(browser)
    page.goto(browser.base_url + "index.html")
    cell = page.locator('.technique[data-technique="T1218"]')
    assert cell.count() == 1
    assert "status-proven" in (cell.get_attribute("class") or "")
    assert cell.locator("a").first.get_attribute("href") == f"detections/{CMSTP_SLUG}/sentinel-kql.html"
    header = page.locator("#tactic-TA0005 .tactic-header .count")
    assert header.inner_text().startswith("2 detections")  # CMSTP and Regsvr32 are both Defense Evasion

    rows = page.locator("tr[data-detection-row]")
    assert rows.count() == 2
    page.fill("#search", "cmstp")
    assert page.locator("tr[data-detection-row]:visible").count() == 1
    assert page.locator("#result-count").inner_text() == "1 of 2 detections"
    assert "filtered-out" not in (cell.get_attribute("class") or "")
    page.fill("#search", "kerberoasting")
    assert page.locator("tr[data-detection-row]:visible").count() == 0
    assert page.locator("#no-results").is_visible()
    assert "filtered-out" in (cell.get_attribute("class") or "")
    page.fill("#search", "")
    page.select_option("#filter-severity", "critical")
    visible = page.locator("tr[data-detection-row]:visible")
    assert visible.count() == 1 and visible.first.get_attribute("data-detection-row") == HOSTILE_ID
    page.select_option("#filter-severity", "")
    page.select_option("#filter-status", "proven")
    assert page.locator("tr[data-detection-row]:visible").count() == 1
    page.select_option("#filter-status", "")
    page.select_option("#filter-platform", "splunk")
    assert page.locator("tr[data-detection-row]:visible").count() == 2
    page.select_option("#filter-platform", "")
    page.check("#covered-only")
    assert page.locator(".technique.status-none:visible").count() == 0
    assert cell.is_visible()
    page.screenshot(path=str(ARTIFACTS / "site-index.png"), full_page=False)
    # Pressing Enter in the search box filters in place instead of reloading the page.
    page.fill("#search", "regsvr32")
    page.press("#search", "Enter")
    assert page.locator("#result-count").inner_text() == "1 of 2 detections"
    page.close()


def test_cmstp_sentinel_page_and_copy_button(browser: Browser) -> None:
    page = _new_page(browser)
    page.goto(browser.base_url + f"detections/{CMSTP_SLUG}/sentinel-kql.html")
    assert page.title() == "T1218.003 Microsoft Sentinel · KQL — Detect CMSTP in Microsoft Sentinel"
    for section in ("description", "attack", "query", "explanation", "data-sources", "required-tables",
                    "false-positives", "sigma-download", "other-platforms", "testing", "response",
                    "investigation", "hunting", "related"):
        assert page.locator(f"#{section}").is_visible(), section
    assert page.locator("#run-date").inner_text() == "2026-11-28 09:41 UTC"
    button = page.locator('button[data-copy-target="query-code"]')
    assert button.is_visible()  # the script un-hides copy buttons
    button.click()
    page.wait_for_selector('button[data-copy-target="query-code"][data-state="copied"]', timeout=5000)
    assert button.inner_text() == "Copied"
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == (CMSTP_FOLDER / "sentinel.kql").read_text(encoding="utf-8")
    page.screenshot(path=str(ARTIFACTS / "site-cmstp-sentinel.png"), full_page=False)
    page.locator("#testing").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "site-cmstp-testing.png"), full_page=False)
    # The download link serves the rule file byte for byte.
    href = page.locator("#sigma-download a.download").get_attribute("href")
    response = page.request.get(page.url.rsplit("/", 1)[0] + "/" + href)
    assert response.body() == (CMSTP_FOLDER / "rule.sigma.yml").read_bytes()
    page.close()


def test_hostile_detection_text_never_runs(browser: Browser) -> None:
    page = _new_page(browser)
    page.goto(browser.base_url + "detections/t1218.010-regsvr32/sentinel-kql.html")
    assert page.locator("#page-subtitle").inner_text() == (
        'Regsvr32 <script>alert("title")</script> Squiblydoo <img src=x onerror=alert(1)> in Microsoft Sentinel')
    assert page.evaluate("document.querySelectorAll('img, iframe, svg').length") == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 1
    assert page.title().startswith("T1218.010")
    page.screenshot(path=str(ARTIFACTS / "site-hostile-detection.png"), full_page=False)
    page.close()
    assert browser.dialogs == []


def test_works_from_file_url(browser: Browser) -> None:
    page = _new_page(browser)
    page.goto((browser.site / "index.html").as_uri())
    page.fill("#search", "regsvr32")
    assert page.locator("tr[data-detection-row]:visible").count() == 1
    page.locator(f'.technique[data-technique="T1218"] a[href$="{CMSTP_SLUG}/sentinel-kql.html"]').click()
    page.wait_for_load_state()
    assert page.url.startswith("file://") and page.url.endswith("sentinel-kql.html")
    assert page.locator("#query-code").inner_text().startswith("DeviceProcessEvents")
    # The stylesheet applied (the code block is dark), so relative links to static/ resolved from file://.
    background = page.evaluate("getComputedStyle(document.querySelector('.code-block pre')).backgroundColor")
    assert background == "rgb(39, 40, 34)"
    page.close()


SECTION_NAV = {"Query": "query", "Explanation": "explanation", "Tests": "testing",
               "False positives & tuning": "false-positives", "Response": "response", "Hunting": "hunting",
               "Other platforms": "other-platforms"}


def test_section_nav_and_collapsed_evidence(browser: Browser) -> None:
    page = _new_page(browser)
    page.goto(browser.base_url + f"detections/{CMSTP_SLUG}/sentinel-kql.html")
    links = page.locator("#section-nav a")
    assert [links.nth(i).inner_text() for i in range(links.count())] == list(SECTION_NAV)
    # One click reaches the response playbook, however long the tests above it are.
    page.locator("#section-nav a", has_text="Response").click()
    page.wait_for_function("location.hash === '#response'")
    top = page.evaluate("document.getElementById('response').getBoundingClientRect().top")
    assert 0 <= top < 200, top
    # Evidence is collapsed: every scenario is a closed <details>, its evidence tables hidden, its verdict shown.
    scenarios = page.locator("li.scenario > details")
    assert scenarios.count() == len(load_catalog(CMSTP_FOLDER).detections[0].scenarios)
    assert page.evaluate("[...document.querySelectorAll('li.scenario > details')].every(d => !d.open)")
    atomic = page.locator("#scenario-atomic-remote-scriptlet")
    assert not atomic.locator("table.evidence-rows").first.is_visible()
    assert "expected to fire" in atomic.locator("summary").inner_text()
    assert "Pass" in atomic.locator("summary").inner_text()
    # The verdict table: one row per scenario, a column per form that ran, each cell a verdict.
    rows = page.locator("#verdict-table tbody tr")
    assert rows.count() == scenarios.count()
    assert page.locator("#verdict-table thead th").count() == 2 + 3  # test, expected, sigma, kql, converted
    assert rows.first.locator("td.verdict").first.inner_text() == "✓ fired"
    # A link to a scenario opens it.
    page.locator('#verdict-table a[href="#scenario-atomic-remote-scriptlet"]').click()
    page.wait_for_function("document.querySelector('#scenario-atomic-remote-scriptlet details').open")
    assert atomic.locator("table.evidence-rows").first.is_visible()
    page.screenshot(path=str(ARTIFACTS / "site-cmstp-verdicts.png"), full_page=False)
    page.close()


def test_collapsed_evidence_opens_without_javascript(browser: Browser) -> None:
    page = _new_page(browser)
    # The site's only script answers empty: what is left is plain HTML.
    page.route("**/static/site.js", lambda route: route.fulfill(body="", content_type="text/javascript"))
    page.goto(browser.base_url + f"detections/{CMSTP_SLUG}/sentinel-kql.html")
    scenario = page.locator("#scenario-atomic-remote-scriptlet")
    assert not scenario.locator("table.evidence-rows").first.is_visible()
    scenario.locator("summary").click()
    assert scenario.locator("table.evidence-rows").first.is_visible()
    page.close()


def test_markdown_renders_as_formatted_text(browser: Browser) -> None:
    page = _new_page(browser)
    page.goto(browser.base_url + f"detections/{CMSTP_SLUG}/sentinel-kql.html")
    tuning = page.locator("#tuning")
    assert tuning.locator("li").count() >= 5
    assert tuning.locator("em").first.inner_text() == "path and signer"
    assert "- Deployment agents" not in tuning.inner_text() and "*path" not in tuning.inner_text()
    assert page.locator("#investigation ol > li").count() == 6
    page.close()


@pytest.mark.parametrize("path", ["index.html", f"detections/{CMSTP_SLUG}/sentinel-kql.html",
                                  f"detections/{CMSTP_SLUG}/elastic-esql.html", "platforms/splunk.html"])
def test_nothing_scrolls_sideways_at_phone_width(browser: Browser, path: str) -> None:
    page = _new_page(browser)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(browser.base_url + path)
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert inner_width == 390
    assert scroll_width <= inner_width, f"{path}: the page is {scroll_width}px wide at {inner_width}px"
    if path in ("index.html", "platforms/splunk.html"):
        # The detection list is a card per detection, not a table wider than the screen.
        assert page.evaluate("getComputedStyle(document.querySelector('tr[data-detection-row]')).display") == "block"
    name = path.replace("/", "-").removesuffix(".html")
    page.screenshot(path=str(ARTIFACTS / f"site-390-{name}.png"), full_page=False)
    page.close()


def test_no_request_left_localhost(browser: Browser) -> None:
    # Runs last in this module: every page above has loaded by now.
    assert browser.requests, "the route handler saw no requests"
    assert browser.blocked == [], f"requests to other hosts: {browser.blocked}"
    assert all(_is_local(url) for url in browser.requests)
    assert browser.errors == [], browser.errors
