"""Safe output paths for the static site: slugs for file names and a writer that never leaves its folder.

Detection folder names, technique ids and platform keys end up in file names. They come from the catalog (which a
contributor controls), so every one is slugified and every path is resolved and checked against the output folder
before anything is written: a name like ``../../etc`` becomes ``etc`` and a symlink pointing outside is refused.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path, PurePosixPath

from assay.errors import SiteError, SourceSpan

_NOT_SLUG = re.compile(r"[^a-z0-9.]+")
_DOT_RUNS = re.compile(r"\.{2,}")
#: Windows reserves these device names whatever the extension; a site copied to Windows must still open.
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
MAX_SLUG_LENGTH = 80


def slugify(text: str, *, fallback: str = "item") -> str:
    """A file-name-safe slug: lowercase ASCII letters, digits, single dots and dashes; never '.', '..' or empty.

    Dots are kept because technique ids carry them (``T1218.003-cmstp`` → ``t1218.003-cmstp``).
    """
    slug = _NOT_SLUG.sub("-", text.lower())
    slug = _DOT_RUNS.sub(".", slug)
    # A dot next to a dash ("-." / ".-") is what is left of a path separator run: drop the dot.
    slug = re.sub(r"-\.|\.-", "-", slug)
    slug = re.sub(r"-{2,}", "-", slug).strip("-.")
    slug = slug[:MAX_SLUG_LENGTH].strip("-.")
    if not slug:
        slug = fallback
    if slug.split(".")[0] in _WINDOWS_RESERVED:
        slug = f"{slug}-"
        slug = slug.rstrip(".")
    return slug


def relative_url(from_page: str, to_path: str) -> str:
    """The relative URL from one site page to another site path (both POSIX paths relative to the site root).

    Relative links make the site work the same from ``file://`` and from a local HTTP server.
    """
    source_dir = PurePosixPath(from_page).parent
    target = PurePosixPath(to_path)
    depth = len(source_dir.parts)
    common = 0
    for a, b in zip(source_dir.parts, target.parts, strict=False):
        if a != b:
            break
        common += 1
    ups = [".."] * (depth - common)
    rest = list(target.parts[common:])
    return "/".join(ups + rest) or "."


class SiteWriter:
    """Writes files under one output folder; every target path is resolved and must stay inside it."""

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.root = out.resolve(strict=True)
        self.written: list[str] = []

    def resolve(self, relative: str) -> Path:
        """The absolute path of a site path, or SiteError when it would land outside the output folder."""
        posix = PurePosixPath(relative)
        if posix.is_absolute() or ".." in posix.parts or "\\" in relative or not relative.strip():
            raise SiteError(f"refusing to write {relative!r}: site paths must be relative and stay inside "
                            f"{self.out}", span=SourceSpan(str(self.out)),
                            hint="site paths are built from slugified ids; this is a bug or a hostile id")
        target = (self.root / Path(*posix.parts)).resolve()
        if not target.is_relative_to(self.root):
            raise SiteError(f"refusing to write {relative!r}: it resolves to {target}, outside {self.root}",
                            span=SourceSpan(str(self.out)),
                            hint="remove the symlink inside the output folder or choose another --out")
        return target

    def write_text(self, relative: str, text: str) -> Path:
        target = self.resolve(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Re-check after creating folders: a symlinked folder created by someone else could redirect the write.
        self.resolve(relative)
        target.write_text(text, encoding="utf-8", newline="\n")
        self.written.append(relative)
        return target

    def write_bytes(self, relative: str, data: bytes) -> Path:
        target = self.resolve(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.resolve(relative)
        target.write_bytes(data)
        self.written.append(relative)
        return target

    def copy_file(self, source: Path, relative: str) -> Path:
        """Copy a file byte for byte (the Sigma download must be the rule file exactly)."""
        target = self.resolve(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.resolve(relative)
        shutil.copyfile(source, target)
        self.written.append(relative)
        return target
