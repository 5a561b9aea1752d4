"""The application factory: wires config, backend, store, middlewares and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import CIMultiDict

from .access.check import KEYRING, LIMITER, rate_limit_headers
from .access.keyring import KeyRing
from .access.ratelimit import RateLimiter
from .access.routes import routes as key_routes
from .admission import ADMISSION, Admission, queue_bound
from .appkeys import CONFIG, STORE
from .backends import backend_module
from .breaker import BREAKER, GuardedBackend
from .config import Config
from .connections import CONNECTIONS, ConnectionLimits, connection_middleware
from .console import add_console_routes
from .cors import cors_middleware
from .gate import gate_middleware
from .health import add_health_routes
from .host import HostState
from .listener import SERVER
from .observability.instrumented import InstrumentedBackend, count_unprocessed_retries
from .observability.middleware import observability_middleware
from .observability.request_metrics import REQUEST_METRICS, RequestMetrics
from .routes import routes
from .store import Store


def create_app(config: Config, host: HostState | None = None) -> web.Application:
    """A ready-to-run application. The backend opens on startup; on cleanup
    the store drains every queued write before the backend closes.
    ``host``: what the workers of one host share (by default, state of this
    process alone)."""
    host = host or HostState.make(shared=False)
    # Observability is outermost so it sees the final status of every answer;
    # CORS headers go on every answer, problems included; the gate checks
    # and refuses, runs the handler, and turns errors into problems.
    request_metrics = RequestMetrics()
    middlewares: list[Middleware] = [
        observability_middleware(
            request_metrics, access_log=config.access_log, answer_headers=_answer_headers
        ),
        connection_middleware,
    ]
    if config.cors_origins:
        middlewares.append(cors_middleware(config.cors_origins))
    admission = Admission(config.max_inflight, config.max_queue_delay, config.max_loop_lag)
    middlewares.append(gate_middleware(config, admission))
    app = web.Application(middlewares=middlewares, client_max_size=config.limits.max_request_bytes)
    app[CONFIG] = config
    app[REQUEST_METRICS] = request_metrics
    app[CONNECTIONS] = ConnectionLimits(
        max_connections=config.max_connections,
        read_timeout=config.read_timeout,
        write_timeout=config.write_timeout,
    )
    app[ADMISSION] = admission
    app[LIMITER] = RateLimiter(host.rate_buckets)
    backend = backend_module(config.backend)

    async def storage(app: web.Application) -> AsyncIterator[None]:
        async with backend.open(config, on_retry=count_unprocessed_retries) as opened:
            guarded = GuardedBackend(
                InstrumentedBackend(opened),
                failures=config.breaker_failures,
                probe_timeout=config.request_timeout,
                host=host.breaker,
            )
            app[BREAKER] = guarded.breaker
            app[STORE] = Store(
                guarded,
                backend.TUNING,
                coalesce=config.coalesce,
                max_queued=queue_bound(config.max_inflight, config.limits.max_batch_ops),
                max_value_bytes=config.limits.max_value_bytes,
            )
            admission.queue_delay = app[STORE].queue_delay
            app[KEYRING] = KeyRing(app[STORE], refresh=config.key_refresh)
            async for _ in app[KEYRING].keep_fresh():
                yield
            await app[STORE].drain()
            await guarded.breaker.stop()

    app.cleanup_ctx.append(admission.watch_loop)
    app.cleanup_ctx.append(storage)
    app.add_routes(routes)
    app.add_routes(key_routes)
    add_health_routes(app)
    if config.console:
        add_console_routes(app)
    return app


def _answer_headers(request: web.Request, headers: CIMultiDict[str]) -> None:
    headers["Server"] = SERVER
    rate_limit_headers(request, headers)
