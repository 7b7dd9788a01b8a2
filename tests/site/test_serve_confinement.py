"""``assay site serve`` answers with regular files inside the site only: no links out of it, no folder listings."""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from assay.site.serve import make_server, server_url


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not part of the site\n", encoding="utf-8")
    (outside / "index.html").write_text("<p>outside</p>\n", encoding="utf-8")
    site = tmp_path / "site"
    (site / "detections" / "cmstp").mkdir(parents=True)
    (site / "assets").mkdir()
    (site / "drafts").mkdir()  # no index.html: never listed
    (site / "drafts" / "note.html").write_text("<p>draft</p>\n", encoding="utf-8")
    (site / "index.html").write_text("<h1>Detections</h1>\n", encoding="utf-8")
    (site / "detections" / "cmstp" / "index.html").write_text("<h1>CMSTP</h1>\n", encoding="utf-8")
    (site / "assets" / "site.css").write_text("body { margin: 0 }\n", encoding="utf-8")
    os.symlink(outside / "secret.txt", site / "assets" / "secret.txt")
    os.symlink(outside, site / "linked-out")
    os.symlink(site / "assets" / "site.css", site / "assets" / "alias.css")  # a link that stays inside
    if hasattr(os, "mkfifo"):
        os.mkfifo(site / "assets" / "pipe.css")
    server = make_server(site, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_url(server), site
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_site_files_are_served(served: tuple[str, Path]) -> None:
    base, _site = served
    assert _get(base) == (200, "<h1>Detections</h1>\n")
    assert _get(base + "detections/cmstp/") == (200, "<h1>CMSTP</h1>\n")
    assert _get(base + "detections/cmstp")[0] == 200  # redirected to the folder's index
    assert _get(base + "assets/site.css") == (200, "body { margin: 0 }\n")
    assert _get(base + "assets/alias.css") == (200, "body { margin: 0 }\n")


@pytest.mark.parametrize("path", ["assets/secret.txt", "linked-out/secret.txt", "linked-out/", "linked-out",
                                  "drafts/", "assets/", "assets/pipe.css", "../outside/secret.txt",
                                  "%2e%2e/outside/secret.txt", "missing.html"])
def test_nothing_else_is(served: tuple[str, Path], path: str) -> None:
    base, site = served
    if path == "assets/pipe.css" and not (site / "assets" / "pipe.css").exists():
        pytest.skip("no FIFOs on this system")
    status, body = _get(base + path)
    assert status == 404, (path, status, body[:200])
    assert "not part of the site" not in body and "outside" not in body
