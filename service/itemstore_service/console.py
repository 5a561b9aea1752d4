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

from collections.abc import Mapping
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
_TYPES: Final = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    headers: Mapping[str, str]


def is_console_path(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


def _load_files() -> dict[str, StaticFile]:
    loaded = {}
    for entry in (files("itemstore_service") / "static" / "console").iterdir():
        content_type = _TYPES.get(entry.name.rpartition(".")[2])
        if content_type is None:
            continue  # not a kind of file the console has
        policy = WORKER_POLICY if entry.name == SCRIPT_WORKER else PAGE_POLICY
        headers = {**_HEADERS, "Content-Type": content_type, "Content-Security-Policy": policy}
        loaded[entry.name] = StaticFile(entry.read_bytes(), headers)
    return loaded


def add_console_routes(app: web.Application) -> None:
    """Serve the console at ``/console/`` (``/console`` redirects there)."""
    static = _load_files()

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=308, headers={"Location": "/console/"})

    async def serve_file(request: web.Request) -> web.Response:
        name = request.match_info.get("file", "index.html")
        found = static.get(name)
        if found is None:
            raise RouteNotFound(f"the console has no file {name!r}")
        return web.Response(body=found.body, headers=found.headers)

    app.router.add_get("/console", redirect)
    app.router.add_get("/console/", serve_file)
    app.router.add_get("/console/{file}", serve_file)
