"""Security of the generated site: catalog text is always escaped, and nothing is written outside --out."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from assay.catalog.loader import load_catalog
from assay.errors import SiteError
from assay.site.builder import build_site
from assay.site.paths import SiteWriter, relative_url, slugify
from tests.site.conftest import (
    BUILD_TIME,
    HOSTILE_DESCRIPTION,
    HOSTILE_TITLE,
    copy_cmstp,
    parse_page,
    write_hostile_detection,
)

#: Markup that must never reach a page unescaped (only our own <script src=…> tags are allowed).
INJECTED = re.compile(r'<script>|<img src=x|<svg onload|<iframe src=//evil|<style>body|"javascript:alert|'
                      r"<b>bold</b>|<b>not bold</b>|</textarea><script>")


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    catalog_root = tmp_path_factory.mktemp("catalog")
    write_hostile_detection(catalog_root)
    copy_cmstp(catalog_root)
    out = tmp_path_factory.mktemp("hostile") / "site"
    build_site(load_catalog(catalog_root), out, now=BUILD_TIME)
    return out


def test_detection_text_is_escaped_everywhere(hostile_site: Path) -> None:
    pages = sorted(hostile_site.rglob("*.html"))
    assert any("t1218.010-regsvr32" in str(p) for p in pages)
    for page in pages:
        html = page.read_text(encoding="utf-8")
        found = INJECTED.findall(html)
        assert not found, f"{page.relative_to(hostile_site)}: unescaped {found}"
        # The only script element on any page is the site's own, loaded from the site.
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert all(re.fullmatch(r'<script src="(\.\./)*static/site\.js" defer>', s) for s in scripts), scripts


def test_hostile_title_and_description_render_as_text(hostile_site: Path) -> None:
    page_path = hostile_site / "detections" / "t1218.010-regsvr32" / "sentinel-kql.html"
    page = parse_page(page_path)
    # What a reader sees is the literal text, tags and all.
    assert HOSTILE_TITLE in page.all_text
    assert " ".join(HOSTILE_DESCRIPTION.split()) in page.all_text
    assert page.title.startswith("T1218.010 Microsoft Sentinel · KQL — Regsvr32 <script>alert(\"title\")</script>")
    html = page_path.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in html
    # Text inside highlighted code and the Sigma rule page is escaped too.
    assert "&lt;script&gt;alert(5)&lt;/script&gt;" in html
    sigma_html = (page_path.parent / "sigma.html").read_text(encoding="utf-8")
    assert "alert(6)" in sigma_html and "<script>alert(6)" not in sigma_html
    # No element or attribute was injected: the description produced no anchor with a javascript: URL.
    assert not any(href.startswith("javascript:") for href in page.links)


def test_index_search_data_is_escaped(hostile_site: Path) -> None:
    index = parse_page(hostile_site / "index.html")
    rows = [tags for tag, tags in index.tags if "data-detection-row" in tags]
    assert len(rows) == 2
    hostile = next(r for r in rows if r["data-detection-row"] == "0b7d1f0e-3c1a-4f43-9d55-2f8e6a9c4b21")
    # The attribute keeps the text (lowercased for search) without breaking out of the attribute.
    assert '<script>alert("title")</script>' in hostile["data-search"]
    assert hostile["data-severity"] == "critical"


def test_related_ids_resolve_or_say_they_are_missing(hostile_site: Path) -> None:
    page = parse_page(hostile_site / "detections" / "t1218.010-regsvr32" / "sentinel-kql.html")
    assert "../../detections/t1218.003-cmstp/sentinel-kql.html" in page.links
    assert "9f1c7a52-41d4-4be8-9a1e-0c2d5f6b7e80 (not in this catalog)" in page.all_text


@pytest.mark.parametrize(("name", "expected"), [
    ("../../etc", "etc"),
    ("T1218.003-cmstp", "t1218.003-cmstp"),
    ("..", "item"),
    ("/etc/passwd", "etc-passwd"),
    ("..\\..\\Windows\\System32", "windows-system32"),
    ("CON", "con-"),
    ("T1059.001 PowerShell <script>", "t1059.001-powershell-script"),
])
def test_slugify(name: str, expected: str) -> None:
    slug = slugify(name)
    assert slug == expected
    assert "/" not in slug and "\\" not in slug and ".." not in slug and not slug.startswith(".")


@pytest.mark.parametrize("relative", ["../escape.html", "detections/../../escape.html", "/etc/passwd",
                                      "detections\\..\\..\\escape.html", ""])
def test_writer_refuses_paths_outside_the_folder(tmp_path: Path, relative: str) -> None:
    writer = SiteWriter(tmp_path / "site")
    with pytest.raises(SiteError, match="refusing to write"):
        writer.write_text(relative, "<p>x</p>")
    assert not (tmp_path / "escape.html").exists()


def test_writer_refuses_a_symlink_out_of_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    site = tmp_path / "site"
    site.mkdir()
    os.symlink(outside, site / "detections")
    writer = SiteWriter(site)
    with pytest.raises(SiteError, match="outside"):
        writer.write_text("detections/t1218.003-cmstp/sentinel-kql.html", "<p>x</p>")
    assert not any(outside.iterdir())


def test_malicious_folder_name_stays_inside(tmp_path: Path) -> None:
    catalog_root = tmp_path / "catalog"
    # Backslashes and dots are legal in a POSIX folder name; on the site they must not climb out.
    write_hostile_detection(catalog_root, folder_name="T1218.010\\..\\..\\..\\etc")
    out = tmp_path / "deep" / "site"
    build = build_site(load_catalog(catalog_root), out, now=BUILD_TIME)
    assert build.detections == 1
    assert (out / "detections" / "t1218.010-etc" / "sentinel-kql.html").is_file()
    for relative in build.files:
        assert (out / relative).resolve().is_relative_to(out.resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog", "deep"]


def test_rebuild_removes_stale_pages_but_nothing_else(tmp_path: Path) -> None:
    catalog_root = tmp_path / "catalog"
    write_hostile_detection(catalog_root)
    out = tmp_path / "site"
    build_site(load_catalog(catalog_root), out, now=BUILD_TIME)
    assert (out / "detections" / "t1218.010-regsvr32" / "sentinel-kql.html").is_file()
    keep = out / "CNAME"
    keep.write_text("detections.example.org\n", encoding="utf-8")
    (catalog_root / "T1218.010-regsvr32").rename(catalog_root / "T1218.010-regsvr32-squiblydoo")
    build_site(load_catalog(catalog_root), out, now=BUILD_TIME)
    assert not (out / "detections" / "t1218.010-regsvr32").exists()
    assert (out / "detections" / "t1218.010-regsvr32-squiblydoo" / "sentinel-kql.html").is_file()
    assert keep.read_text(encoding="utf-8") == "detections.example.org\n"


def test_refuses_a_non_empty_folder_it_did_not_build(tmp_path: Path) -> None:
    catalog_root = tmp_path / "catalog"
    write_hostile_detection(catalog_root)
    out = tmp_path / "home"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(SiteError, match="not empty"):
        build_site(load_catalog(catalog_root), out, now=BUILD_TIME)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_relative_url() -> None:
    assert relative_url("detections/a/sentinel-kql.html", "index.html") == "../../index.html"
    assert relative_url("detections/a/sentinel-kql.html", "detections/a/sigma.html") == "sigma.html"
    assert relative_url("index.html", "platforms/splunk.html") == "platforms/splunk.html"
