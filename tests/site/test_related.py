"""Related detections: named by the author, else found by technique family, tactic and shared data sources, each
listed with the reason it is related."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from assay.catalog.loader import load_catalog
from assay.schema.attack import attack_data
from assay.site.builder import build_model
from assay.site.model import DetectionView, relation
from tests.site.conftest import BUILD_TIME, copy_cmstp


def _variant(root: Path, folder: str, technique: str, *, data_sources: list[str] | None = None,
             tables: list[str] | None = None, related: list[str] | None = None) -> str:
    """A copy of the CMSTP detection under another technique (fresh ids), for relating; returns its id."""
    target = copy_cmstp(root, folder)
    detection = yaml.safe_load((target / "detection.yml").read_text(encoding="utf-8"))
    detection["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, folder))
    detection["technique"] = technique
    detection["title"] = f"Variant {folder}"
    detection["known_differences"] = []
    if data_sources is not None:
        detection["data_sources"] = data_sources
    if tables is not None:
        detection["required_tables"] = tables
    if related is not None:
        detection["related"] = related
    (target / "detection.yml").write_text(yaml.safe_dump(detection, sort_keys=False), encoding="utf-8")
    rule = (target / "rule.sigma.yml").read_text(encoding="utf-8")
    rule = rule.replace("e0c41d4e-a058-4394-894c-372b49a55ee6", str(uuid.uuid5(uuid.NAMESPACE_DNS, folder)))
    (target / "rule.sigma.yml").write_text(rule.replace("attack.t1218.003", f"attack.{technique.lower()}"),
                                          encoding="utf-8")
    return str(detection["id"])


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DetectionView]:
    root = tmp_path_factory.mktemp("related")
    copy_cmstp(root)
    _variant(root, "T1218.011-rundll32", "T1218.011")
    _variant(root, "T1059.001-powershell", "T1059.001")
    _variant(root, "T1003.001-lsass", "T1003.001", data_sources=["Process: OS API Execution"],
             tables=["DeviceEvents"])
    _variant(root, "T1547.001-run-keys", "T1547.001", data_sources=["Windows Registry: Windows Registry Key Modification"],
             tables=["DeviceRegistryEvents"], related=["5c191f9c-ff71-48e7-bebb-1f04e3d6e3f8"])
    catalog = load_catalog(root)
    assert not catalog.errors, catalog.errors
    model, _ = build_model(catalog, attack_data(), None, lambda loaded: [], BUILD_TIME)
    return {view.loaded.path.name: view for view in model.detections}


def test_related_by_family_tactic_and_data_source_with_reasons(views: dict[str, DetectionView]) -> None:
    cmstp = views["T1218.003-cmstp"]
    by_folder = {r.path.split("/")[1] if r.path else r.id: r for r in cmstp.related}
    # Same technique family first, with the family named; then the same data sources in another tactic.
    first = cmstp.related[0]
    assert first.technique == "T1218.011"
    assert first.reasons[0] == "same technique family T1218 System Binary Proxy Execution"
    assert "same tactic Defense Evasion" in first.reasons
    powershell = by_folder["t1059.001-powershell"]
    assert not any("technique" in reason or "tactic" in reason for reason in powershell.reasons)
    assert any(reason.startswith("shared data sources Process: Process Creation") for reason in powershell.reasons)
    assert "reads DeviceProcessEvents too" in powershell.reasons
    # Another tactic, other data sources and tables: not related.
    assert "t1003.001-lsass" not in by_folder
    # A relation named by another detection's author is that detection's, not this one's.
    assert "t1547.001-run-keys" not in by_folder


def test_named_related_ids_come_first_with_their_reason(views: dict[str, DetectionView]) -> None:
    run_keys = views["T1547.001-run-keys"]
    assert run_keys.related[0].technique == "T1218.003"
    assert run_keys.related[0].reasons[0] == "named in detection.yml"
    weight, reasons = relation(run_keys, views["T1003.001-lsass"])
    assert weight < 10 and not reasons


def test_the_page_shows_the_reasons(tmp_path: Path, views: dict[str, DetectionView]) -> None:
    from assay.site.builder import build_site

    catalog_root = Path(views["T1218.003-cmstp"].loaded.path).parent
    build = build_site(load_catalog(catalog_root), tmp_path / "site", conversions=lambda loaded: [], now=BUILD_TIME)
    html = (build.out / "detections" / "t1218.003-cmstp" / "sentinel-kql.html").read_text(encoding="utf-8")
    related = html[html.index('id="related"'):html.index("</section>", html.index('id="related"'))]
    assert "T1218.011 — Variant T1218.011-rundll32" in related
    assert "same technique family T1218 System Binary Proxy Execution · same tactic Defense Evasion" in related
    assert "None yet" not in html
