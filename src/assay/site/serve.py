"""``assay site serve``: preview a built site over HTTP on 127.0.0.1 only (never on all interfaces).

The site uses relative links only, so it behaves the same here as from ``file://``; the server exists because some
browsers restrict ``file://`` pages (the clipboard API, for one) and to check the site the way it will be hosted.
"""

from __future__ import annotations

import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from assay.errors import SiteError, SourceSpan

LOCALHOST = "127.0.0.1"


class SiteRequestHandler(SimpleHTTPRequestHandler):
    """Static files from the site folder (the standard handler refuses paths outside it), quiet by default."""

    quiet = True

    def log_message(self, format: str, *args: Any) -> None:
        if not self.quiet:
            super().log_message(format, *args)

    def end_headers(self) -> None:
        # A preview must show the latest build: no caching. The same policy as the pages' own CSP meta tag.
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()


def make_server(out: str | Path, port: int = 8000, *, quiet: bool = True) -> ThreadingHTTPServer:
    """A server for the built site in ``out`` on 127.0.0.1:``port`` (0 picks a free port); call serve_forever()."""
    root = Path(out)
    if not (root / "index.html").is_file():
        raise SiteError("no built site here (index.html is missing)", SourceSpan(str(root)),
                        hint="run `assay site build --out DIR` first, then serve that DIR")
    handler_class = type("QuietSiteRequestHandler" if quiet else "LoggingSiteRequestHandler",
                         (SiteRequestHandler,), {"quiet": quiet})
    handler = functools.partial(handler_class, directory=str(root.resolve()))
    try:
        return ThreadingHTTPServer((LOCALHOST, port), handler)
    except OSError as error:
        raise SiteError(f"cannot listen on {LOCALHOST}:{port}: {error.strerror or error}",
                        hint="choose another --port (0 picks a free one)") from error


def server_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/"
