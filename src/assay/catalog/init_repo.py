"""``assay init``: scaffold a detections repository: an example detection whose scenarios pass, CI workflows for
GitHub Actions and GitLab CI, a pre-commit configuration and a README.

The templates are package data (``templates/init``), so it works the same from a checkout or an installed wheel.
Nothing is overwritten: a target file that exists is an error naming it, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from assay import __version__
from assay.errors import SourceSpan, UsageError

#: Template file (under templates/init) -> where it goes in the new repository.
_RENAMES = {
    "ci/github-workflow.yml": ".github/workflows/assay.yml",
    "ci/gitlab-ci.yml": ".gitlab-ci.yml",
    "ci/pre-commit-config.yaml": ".pre-commit-config.yaml",
}
#: Files whose ``{name}`` / ``{package}`` placeholders are filled in.
_FILLED = {"README.md", "ci/github-workflow.yml", "ci/gitlab-ci.yml"}


@dataclass(frozen=True)
class InitResult:
    root: Path
    files: tuple[Path, ...]


def _walk(node: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        relative = f"{prefix}{child.name}"
        if child.is_dir():
            found.extend(_walk(child, relative + "/"))
        elif not child.name.endswith((".pyc", ".py")):
            found.append((relative, child))
    return found


def init_repository(target: str | Path, *, package: str | None = None) -> InitResult:
    """Write a new detections repository into ``target`` (created if needed; existing files are never replaced).

    ``package`` is what the CI files ``pip install`` (default ``assay==<this version>``)."""
    root = Path(target)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a folder", hint="pass a new or empty folder")
    templates = resources.files("assay.catalog").joinpath("templates", "init")
    plan = [(_RENAMES.get(relative, relative), source, relative) for relative, source in _walk(templates)]
    clashes = [destination for destination, _, _ in plan if (root / destination).exists()]
    if clashes:
        raise UsageError(f"already exists ({len(clashes)} file(s) would be replaced)",
                         SourceSpan(str(root / clashes[0])),
                         hint="assay init never overwrites: pass a new folder, or move those files away")
    values = {"name": root.resolve().name, "package": package or f"assay=={__version__}"}
    written = []
    for destination, source, relative in plan:
        path = root / destination
        path.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text(encoding="utf-8")
        if relative in _FILLED:
            for key, value in values.items():
                text = text.replace("{" + key + "}", value)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return InitResult(root, tuple(written))
