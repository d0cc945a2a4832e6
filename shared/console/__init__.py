"""The admin console's files: static HTML, JavaScript modules and CSS in `static/`, served as they are by
`GET /api/console[/{file}]` (functions/console.py). There is no build step and no console-only back end: the
pages call the public HTTP API with the keys an admin pastes in, kept in the tab's sessionStorage.

Only names of the form FILE_NAME that exist in `static/` are served, read once per process.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from shared.errors import NotFound

STATIC = Path(__file__).resolve().parent / "static"
FILE_NAME = re.compile(r"[a-z0-9-]{1,40}[.](html|js|css)")  # shared.openapi.CONSOLE_FILE_PATTERN
INDEX = "index.html"
CONTENT_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
# Scripts, styles and API calls from this origin only; no inline script, no framing, and no native form
# submission (a form posted without its script would put the pasted keys into a URL).
HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"),
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


class ConsoleOff(NotFound):
    """The console is not enabled on this deployment (CONSOLE_ENABLED): it answers as if it did not exist."""


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


def asset(name: str | None, route_prefix: str) -> Asset:
    """The file `name` (the page itself when empty). The page names its scripts by absolute path under the route
    prefix, so `/api/console` and `/api/console/` load the same files."""
    name = name or INDEX
    if not FILE_NAME.fullmatch(name) or name not in _files():
        raise NotFound("the console has no such file")
    body = _files()[name]
    if name == INDEX:
        body = body.replace(b"%BASE%", f"/{route_prefix.strip('/')}".encode())
    return Asset(body, CONTENT_TYPES[name.rsplit(".", 1)[1]])


@functools.cache
def _files() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in STATIC.iterdir()
            if path.is_file() and FILE_NAME.fullmatch(path.name)}
