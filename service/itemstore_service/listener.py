"""Serving an application on a TCP port with every connection guarded.

aiohttp's ``web.run_app`` makes its sites itself; ``run_guarded`` does what it
does (signals, graceful shutdown, loop clean-up) with a ``GuardedTCPSite``,
whose connections pass through ``connections.ConnectionGuard``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from .connections import CONNECTIONS
from .errors import ItemstoreError
from .problems import MalformedRequest, from_error

SERVER: Final = "itemstore"
"""The ``Server`` header: no Python or aiohttp version for a scanner to match."""


class ProblemRequestHandler(RequestHandler):
    """aiohttp's connection handler, except for a request it cannot parse or
    serve: aiohttp answers it in plain text that echoes the offending header
    line (a token included); this answers problem+json naming only the kind
    of error."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs it; raises if answered
        if status < 500:
            kind = f" ({type(exc).__name__})" if exc is not None else ""
            error: ItemstoreError = MalformedRequest(
                f"the request is not well-formed HTTP{kind}; nothing was done"
            )
        else:
            error = ItemstoreError("unexpected error; see the server log")
        response = from_error(error)
        response.set_status(status)
        response.headers["Server"] = SERVER
        response.force_close()
        return response


def _problem_handler(make: web.Server) -> RequestHandler:
    handler = make()
    handler.__class__ = ProblemRequestHandler  # same layout: only handle_error differs
    return handler


class CannotListen(Exception):
    """The address could not be listened on; ``error`` says why."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class GuardedTCPSite(web.BaseSite):
    """A TCP site whose every connection goes through the app's ``ConnectionLimits``."""

    __slots__ = ("_app", "_host", "_port", "_reuse_port")

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        backlog: int = 128,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._app = runner.app
        self._host = host
        self._port = port
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # the runner is set up: BaseSite checked it
        limits = self._app[CONNECTIONS]
        self._server = await asyncio.get_running_loop().create_server(
            lambda: limits.protocol_factory(lambda: _problem_handler(server)),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
            reuse_port=self._reuse_port or None,
        )


def run_guarded(
    app: web.Application,
    *,
    host: str,
    port: int,
    reuse_port: bool,
    shutdown_timeout: float,
    loop: asyncio.AbstractEventLoop,
    on_listening: Callable[[], None],
    metrics_port: int | None = None,
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, then shut down as ``web.run_app``
    does: stop listening, finish in-flight requests (up to
    ``shutdown_timeout``), run the app's cleanup, close the loop.
    ``on_listening`` is called once the port is bound; CannotListen is raised
    when it cannot be. With ``metrics_port``, the app listens there too (it
    serves only /metrics there)."""
    asyncio.set_event_loop(loop)
    runner = web.AppRunner(
        app, handle_signals=True, access_log=None, shutdown_timeout=shutdown_timeout
    )

    async def main() -> None:
        await runner.setup()
        try:
            site = GuardedTCPSite(runner, host, port, reuse_port=reuse_port)
            try:
                await site.start()
                if metrics_port is not None:  # the app serves only /metrics there
                    metrics = GuardedTCPSite(runner, host, metrics_port, reuse_port=reuse_port)
                    await metrics.start()
            except OSError as exc:
                raise CannotListen(exc) from exc
            on_listening()
            await asyncio.Event().wait()  # until a stop signal raises GracefulExit
        finally:
            await runner.cleanup()

    task = loop.create_task(main())
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(task)
        finally:
            _cancel_remaining(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
