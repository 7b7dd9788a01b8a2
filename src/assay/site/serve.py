"""``assay site serve``: preview a built site over HTTP on 127.0.0.1 only (never on all interfaces).

The site uses relative links only, so it behaves the same here as from ``file://``; the server exists because some
browsers restrict ``file://`` pages (the clipboard API, for one) and to check the site the way it will be hosted.
"""

from __future__ import annotations

import functools
import os
import stat
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from assay.errors import SiteError, SourceSpan

LOCALHOST = "127.0.0.1"


class SiteRequestHandler(SimpleHTTPRequestHandler):
    """Regular files inside the site folder, quiet by default; anything else is 404.

    The standard handler keeps ``..`` out but follows symbolic links wherever they lead and lists any folder
    without an index.html. Here a request is answered only when its real path (links resolved) lies inside the
    site's real folder and is a regular file, or a folder whose index.html is one; never a listing.
    """

    quiet = True

    def log_message(self, format: str, *args: Any) -> None:
        if not self.quiet:
            super().log_message(format, *args)

    def send_head(self) -> Any:
        path = self.translate_path(self.path)
        root = os.path.realpath(self.directory)
        real = os.path.realpath(path)
        if os.path.isdir(real) and _inside(real, root):
            index = os.path.realpath(os.path.join(real, "index.html"))
            allowed = _inside(index, root) and stat.S_ISREG(_mode(index))
        else:
            allowed = _inside(real, root) and stat.S_ISREG(_mode(real))
        if not allowed:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        return super().send_head()

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(HTTPStatus.NOT_FOUND, "File not found")  # no listings, whatever the folder
        return None

    def end_headers(self) -> None:
        # A preview must show the latest build: no caching. The same policy as the pages' own CSP meta tag.
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except (OSError, ValueError):
        return 0


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
