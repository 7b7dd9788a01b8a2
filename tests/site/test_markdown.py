"""Catalog prose is Markdown, rendered by markdown-it-py with raw HTML off: it reads as formatted text, and hostile
text in any Markdown field (raw HTML, script URLs in links and images, entity-encoded schemes) renders inert."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from assay.catalog.loader import load_catalog
from assay.site.builder import build_site
from assay.site.markdown import MarkdownRenderer
from tests.site.conftest import BUILD_TIME, CMSTP_FOLDER, copy_cmstp, parse_page

#: Markdown built to smuggle markup or script through every construct CommonMark has for it.
HOSTILE_MARKDOWN = (
    "Read *this* and `code` then [click](javascript:alert(1)) ![img](javascript:alert(2)) "
    "<javascript:alert(3)> [ref][evil] [data](data:text/html;base64,PHNjcmlwdD4=) [vb](vbscript:msgbox(1)) "
    "[entity](&#106;avascript:alert(5)) <script>alert(6)</script> <img src=x onerror=alert(7)>\n\n"
    "<div onclick=\"alert(8)\">raw block</div>\n\n"
    "- item one with C:\\Program Files\\<VPN vendor>\\\n"
    "- item two\n\n"
    "[evil]: javascript:alert(4)\n"
)
#: What must never appear in a page (the site's own script tag is checked separately).
INJECTED = re.compile(r"<script>|<img src=x|<div onclick|href=\"(javascript|vbscript|data):|"
                      r"src=\"javascript:|href=\"&#106;|onerror=alert\(7\)>", re.IGNORECASE)


@pytest.fixture(scope="module")
def markdown_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CMSTP detection with hostile Markdown in every Markdown field."""
    root = tmp_path_factory.mktemp("markdown-catalog")
    folder = copy_cmstp(root)
    detection = yaml.safe_load((folder / "detection.yml").read_text(encoding="utf-8"))
    for key in ("description", "explanation", "tuning", "investigation"):
        detection[key] = f"{key}: {HOSTILE_MARKDOWN}"
    detection["false_positives"] = [f"fp: {HOSTILE_MARKDOWN.splitlines()[0]}", *detection["false_positives"][1:]]
    detection["alert"]["reason"] = f"alert: {HOSTILE_MARKDOWN}"
    for difference in detection["known_differences"]:
        difference["reason"] = f"difference: {HOSTILE_MARKDOWN.splitlines()[0]}"
    for step in detection["response"]:
        step["title"] = f"step *{step['title']}* <svg onload=alert(9)>"
        step["action"] = f"action: {HOSTILE_MARKDOWN}"
    for hunt in detection["hunting"]:
        hunt["purpose"] = f"purpose: {HOSTILE_MARKDOWN}"
    (folder / "detection.yml").write_text(yaml.safe_dump(detection, sort_keys=False), encoding="utf-8")
    tests = yaml.safe_load((folder / "tests.yml").read_text(encoding="utf-8"))
    for scenario in tests["scenarios"]:
        scenario["notes"] = f"notes: {HOSTILE_MARKDOWN}"
    (folder / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")
    out = tmp_path_factory.mktemp("markdown-site") / "site"
    build_site(load_catalog(root), out, now=BUILD_TIME)
    return out / "detections" / "t1218.003-cmstp"


def test_hostile_markdown_renders_inert_in_every_field(markdown_site: Path) -> None:
    html = (markdown_site / "sentinel-kql.html").read_text(encoding="utf-8")
    # Each field's hostile text made it onto the page (else the test proves nothing)...
    for marker in ("description:", "explanation:", "tuning:", "investigation:", "fp:", "alert:", "difference:",
                   "action:", "purpose:", "notes:"):
        assert marker in html, marker
    # ...and none of it became markup: raw HTML is text, script/data/vbscript links are not links, no image.
    main = html[html.index("<main"):html.index("</main>")]
    assert not INJECTED.findall(main), INJECTED.findall(main)
    assert "<img" not in main
    assert "<svg onload" not in html
    assert "&lt;script&gt;alert(6)&lt;/script&gt;" in html
    assert "&lt;div onclick=&quot;alert(8)&quot;&gt;raw block&lt;/div&gt;" in html
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts == ['<script src="../../static/site.js" defer>']
    page = parse_page(markdown_site / "sentinel-kql.html")
    assert not [link for link in page.links if re.match(r"\s*(javascript|vbscript|data):", link, re.IGNORECASE)]


def test_markdown_is_formatted_not_shown_raw(markdown_site: Path) -> None:
    html = (markdown_site / "sentinel-kql.html").read_text(encoding="utf-8")
    tuning = html[html.index('id="tuning"'):html.index("</div>", html.index('id="tuning"'))]
    assert "<em>this</em>" in tuning and "<code>code</code>" in tuning
    assert "<li>item one with C:\\Program Files\\&lt;VPN vendor&gt;\\</li>" in tuning  # backslashes kept
    assert "*this*" not in tuning and "- item two" not in tuning
    # Response step titles are inline Markdown: emphasis, no paragraph.
    assert "<strong>step <em>Scope the alert</em> &lt;svg onload=alert(9)&gt;</strong>" in html


def test_the_catalogs_own_tuning_renders_as_a_list() -> None:
    detection = yaml.safe_load((CMSTP_FOLDER / "detection.yml").read_text(encoding="utf-8"))
    rendered = MarkdownRenderer().block(detection["tuning"])
    assert rendered.count("<li>") == detection["tuning"].count("\n- ")
    assert "<em>path and signer</em>" in rendered
    assert "<code>or ProcessVersionInfoOriginalFileName =~ &quot;CMSTP.EXE&quot;</code>" in rendered
    # Windows paths keep every backslash (backslash escapes are off).
    assert "C:\\Windows\\CCM\\CcmExec.exe" in rendered
