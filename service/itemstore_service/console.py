"""The browser console: static files under ``/console/``, shipped in the package.

The console is a single-page app that talks to the public HTTP API only, with
the token the user signs in with; these routes serve its files and nothing
else, so they need no token. Every file is read once, when the app is made.

Its pages get a strict Content-Security-Policy: scripts from this origin only,
no inline script or style, no eval, calls to this origin only. The one
exception is the script worker (the script panel runs the user's code in a
dedicated worker, away from the page): its own policy allows ``eval`` there,
where there is no DOM and no stored token to reach.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from importlib.resources import files
from typing import Final

from aiohttp import web

from .problems import RouteNotFound

CONSOLE_PATHS: Final = frozenset({"/console", "/console/", "/console/{file}"})
"""The console's route templates (public: they serve static files only)."""

PAGE_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; worker-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
WORKER_POLICY: Final = "default-src 'none'; script-src 'self' 'unsafe-eval'; connect-src 'self'"
SCRIPT_WORKER: Final = "script-worker.js"

_HEADERS: Final = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_TYPES: Final = {".js": "text/javascript", ".txt": "text/plain", ".css": "text/css"}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str


def is_console_path(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


def _load_files() -> dict[str, StaticFile]:
    loaded = {}
    for entry in (files("itemstore_service") / "static" / "console").iterdir():
        if entry.is_file():
            suffix = "." + entry.name.rpartition(".")[2]
            content_type = _TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0]
            loaded[entry.name] = StaticFile(entry.read_bytes(), content_type or "text/plain")
    return loaded


def add_console_routes(app: web.Application) -> None:
    """Serve the console at ``/console/`` (``/console`` redirects there)."""
    static = _load_files()

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=308, headers={"Location": "/console/"})

    async def page(request: web.Request) -> web.Response:
        name = request.match_info.get("file", "index.html")
        found = static.get(name)
        if found is None:
            raise RouteNotFound(f"the console has no file {name!r}")
        policy = WORKER_POLICY if name == SCRIPT_WORKER else PAGE_POLICY
        charset = "; charset=utf-8" if found.content_type.startswith("text/") else ""
        headers = {
            **_HEADERS,
            "Content-Security-Policy": policy,
            "Content-Type": found.content_type + charset,
        }
        return web.Response(body=found.body, headers=headers)

    app.router.add_get("/console", redirect)
    app.router.add_get("/console/", page)
    app.router.add_get("/console/{file}", page)
