"""Build the static detection site: index with the ATT&CK matrix, a page per detection × platform, platform lists.

Input: the catalog, the packaged ATT&CK data, the Sigma conversions and (optionally) a proof report. Output: a folder
of plain HTML/CSS/JS with relative links only, so it works the same from ``file://`` and ``assay site serve``; no
CDN, no web fonts, nothing fetched. Jinja autoescaping is on for every template: catalog text is always text.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from assay import __version__
from assay.catalog.loader import Catalog, load_catalog
from assay.catalog.models import SEVERITIES, LoadedDetection
from assay.errors import AssayError, SiteError, SourceSpan
from assay.schema.attack import AttackData, attack_data
from assay.site.highlight import Highlighter, pygments_css
from assay.site.markdown import MarkdownRenderer
from assay.site.model import (
    ConversionInput,
    DetectionView,
    PageView,
    SiteModel,
    build_matrix,
    build_platform_listings,
    detection_slug,
    detection_view,
    form_label,
    with_related,
)
from assay.site.paths import SiteWriter
from assay.verify.coverage import navigator_layer
from assay.verify.report import PROOF_STATUSES, ProofReport, load_report

#: Written in every built site; lists the files of the last build so a rebuild removes stale pages, and marks
#: the folder as ours (the builder refuses to write into a non-empty folder without it).
MANIFEST = ".assay-site.json"
NAVIGATOR_LAYER = "attack-navigator-layer.json"
STATIC_FILES = ("site.css", "site.js")

PROOF_LABELS = {"proven": "Proven", "partial": "Partly proven", "untested": "Untested", "failing": "Failing",
                "not-runnable": "Converted, not executed", "none": "No detection"}
RESULT_LABELS = {"pass": "Pass", "fail": "Fail", "skip": "Skipped", "error": "Error", "not-run": "Not yet run"}
CONVERSION_LABELS = {"native": "Native", "portable": "Portable", "converted": "Converted",
                     "converted-with-warnings": "Converted with warnings", "failed": "Conversion failed",
                     "unavailable": "Backend unavailable"}

ConversionProvider = Callable[[LoadedDetection], Sequence[ConversionInput]]


@dataclass(frozen=True)
class SiteBuild:
    """What a build wrote."""

    out: Path
    index: Path
    detections: int
    detection_pages: int
    files: tuple[str, ...]
    report_run: dt.datetime | None
    warnings: tuple[str, ...] = ()
    statuses: dict[str, int] = field(default_factory=dict)


def sigma_conversions(loaded: LoadedDetection) -> list[ConversionInput]:
    """Every pySigma conversion of the detection's Sigma rule (``assay.sigma.convert_all``), as site inputs."""
    if loaded.sigma_path is None:
        return []
    from assay.sigma.conversion import convert_all

    return [ConversionInput(target=conversion.target, status=conversion.status, query=conversion.query,
                            messages=conversion.messages, language=conversion.language)
            for conversion in convert_all(loaded.sigma_path)]


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("assay.site", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["highlight"] = Highlighter()
    markdown = MarkdownRenderer()
    environment.filters["markdown"] = markdown.block
    environment.filters["markdown_inline"] = markdown.inline
    environment.globals.update(proof_labels=PROOF_LABELS, result_labels=RESULT_LABELS,
                               conversion_labels=CONVERSION_LABELS, search_text=search_text,
                               form_label=form_label)
    return environment


def search_text(view: DetectionView) -> str:
    """What the index search matches: ids, names, tactics, platforms, tables, data sources, severity."""
    detection = view.loaded.detection
    parts = [detection.technique, view.attack.technique_name, detection.title, detection.severity,
             view.proof_status, view.loaded.path.name, detection.id]
    if view.attack.parent is not None:
        parts.append(view.attack.parent.name)
    parts += [tactic.name for tactic in view.attack.tactics]
    parts += [page.platform.heading for page in view.pages]
    parts += list(detection.required_tables) + list(detection.data_sources)
    return " ".join(parts).lower()


#: Platform names a detection title may end with ("Detect CMSTP in Microsoft Sentinel"); the site swaps them for
#: each page's platform.
_TITLE_PLATFORM_SUFFIX = re.compile(
    r"\s+(in|for|on)\s+(Microsoft\s+)?(Sentinel|Defender(\s+(XDR|for\s+Endpoint))?)(\s*/\s*(Microsoft\s+)?"
    r"(Sentinel|Defender(\s+(XDR|for\s+Endpoint))?))?\s*$", re.IGNORECASE)


def base_title(title: str) -> str:
    """The title without a trailing platform ("Detect CMSTP in Microsoft Sentinel" → "Detect CMSTP")."""
    stripped = _TITLE_PLATFORM_SUFFIX.sub("", title)
    return stripped or title


def page_title(view: DetectionView, page: PageView) -> tuple[str, str]:
    """(HTML title, subtitle): "T1218.003 Microsoft Sentinel · KQL — Detect CMSTP in Microsoft Sentinel"."""
    place = "as a portable Sigma rule" if page.origin == "sigma" else f"in {page.platform.label}"
    subtitle = f"{base_title(view.title)} {place}"
    return f"{view.loaded.detection.technique} {page.platform.heading} — {subtitle}", subtitle


def build_model(catalog: Catalog, attack: AttackData, report: ProofReport | None,
                conversions: ConversionProvider, now: dt.datetime | None = None) -> tuple[SiteModel, list[str]]:
    """Every view the templates need, plus warnings (a conversion stage that failed for one detection…)."""
    warnings: list[str] = []
    taken: set[str] = set()
    views: list[DetectionView] = []
    for loaded in sorted(catalog.detections, key=lambda d: (d.detection.technique, d.detection.title, d.id)):
        try:
            detection_conversions = list(conversions(loaded))
        except AssayError as error:
            warnings.append(f"{loaded.path.name}: conversions failed: {error}")
            detection_conversions = []
        view = detection_view(loaded, detection_slug(loaded, taken), attack, report, detection_conversions)
        if not view.pages:
            warnings.append(f"{loaded.path.name}: neither sentinel.kql nor rule.sigma.yml: no page to publish")
            continue
        views.append(view)
    resolved = with_related(views)
    counts: dict[str, int] = {}
    for view in resolved:
        counts[view.proof_status] = counts.get(view.proof_status, 0) + 1
    if report is not None:
        known = {view.id for view in resolved}
        for detection_report in report.detections:
            if detection_report.id not in known:
                warnings.append(f"proof report has results for {detection_report.id} ({detection_report.title}), "
                                "which is not in the catalog: ignored")
    model = SiteModel(
        detections=resolved, attack=attack, report=report, matrix=build_matrix(attack, resolved),
        platforms=build_platform_listings(resolved), generated=now or dt.datetime.now(dt.UTC),
        catalog_errors=tuple(str(error) for error in catalog.errors), status_counts=counts,
    )
    return model, warnings


def _prepare_out(out: Path) -> SiteWriter:
    """The writer for ``out``, after removing the files of the previous build (only those we wrote)."""
    if out.exists() and not out.is_dir():
        raise SiteError("the output path exists and is not a folder", SourceSpan(str(out)),
                        hint="choose another --out")
    manifest = out / MANIFEST
    if out.is_dir() and any(out.iterdir()) and not manifest.is_file():
        raise SiteError("the output folder is not empty and was not built by `assay site build`",
                        SourceSpan(str(out)), hint="choose an empty or new folder for --out, or remove this one")
    writer = SiteWriter(out)
    if manifest.is_file():
        try:
            previous = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
        except (OSError, ValueError, AttributeError):
            previous = []
        for relative in previous if isinstance(previous, list) else []:
            try:
                target = writer.resolve(str(relative))
            except SiteError:
                continue  # a tampered manifest must not make us delete outside the folder
            if target.is_file():
                target.unlink()
    return writer


def _remove_empty_folders(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def build_site(catalog: Catalog | str | Path, out: str | Path, *, report: ProofReport | str | Path | None = None,
               conversions: ConversionProvider | None = None, attack: AttackData | None = None,
               now: dt.datetime | None = None) -> SiteBuild:
    """Build the site for the whole catalog into ``out``; returns what was written."""
    if not isinstance(catalog, Catalog):
        catalog = load_catalog(catalog)
    if isinstance(report, str | Path):
        report = load_report(report)
    attack = attack or attack_data()
    model, warnings = build_model(catalog, attack, report, conversions or sigma_conversions, now)

    out_path = Path(out)
    writer = _prepare_out(out_path)
    environment = _environment()
    run = report.run if report is not None else None
    common: dict[str, Any] = {
        "assay_version": __version__, "generated": model.generated, "attack_version": attack.version,
        "detection_count": len(model.detections), "run": run, "navigator_layer": NAVIGATOR_LAYER,
    }

    static = resources.files("assay.site").joinpath("static")
    for name in STATIC_FILES:
        writer.write_bytes(f"static/{name}", static.joinpath(name).read_bytes())
    writer.write_text("static/highlight.css", pygments_css())
    layer = navigator_layer(report, catalog.detections, attack=attack)
    writer.write_text(NAVIGATOR_LAYER, json.dumps(layer, indent=2, ensure_ascii=False) + "\n")

    detection_pages = 0
    template = environment.get_template("detection.html")
    for view in model.detections:
        if view.sigma_download is not None and view.loaded.sigma_path is not None:
            writer.copy_file(view.loaded.sigma_path, view.sigma_download)
        for page in view.pages:
            title, subtitle = page_title(view, page)
            html = template.render(**common, root="../../", view=view, page=page, page_title=title,
                                   subtitle=subtitle)
            writer.write_text(page.path, html)
            detection_pages += 1

    platform_template = environment.get_template("platform.html")
    for listing in model.platforms:
        writer.write_text(listing.path, platform_template.render(**common, root="../", listing=listing))

    from assay.verify.coverage import DATA_SOURCES, data_source_coverage

    sources = {row.id: row.sources for row in data_source_coverage(
        [view.loaded for view in model.detections], frozenset(DATA_SOURCES))}
    index_html = environment.get_template("index.html").render(
        data_sources=DATA_SOURCES, sources_by_id=sources,
        **common, root="", detections=model.detections, matrix=model.matrix, platforms=model.platforms,
        proof_statuses=PROOF_STATUSES, severities=SEVERITIES, status_counts=model.status_counts,
        catalog_errors=model.catalog_errors, page_count=detection_pages,
        covered_techniques=len({v.attack.technique_id for v in model.detections}),
    )
    index = writer.write_text("index.html", index_html)
    files = [*writer.written]
    writer.write_text(MANIFEST, json.dumps({"generator": f"assay {__version__}", "files": [*files, MANIFEST]},
                                           indent=2) + "\n")
    _remove_empty_folders(writer.root)
    return SiteBuild(out=writer.root, index=index, detections=len(model.detections), detection_pages=detection_pages,
                     files=tuple(files), report_run=run.started if run else None, warnings=tuple(warnings),
                     statuses=dict(model.status_counts))
