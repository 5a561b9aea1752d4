"""The application factory: wires config, backend, store, middlewares and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware

from .admission import ADMISSION, Admission, admission_middleware, queue_bound
from .appkeys import CONFIG, STORE
from .auth import auth_middleware
from .backends import backend_module
from .breaker import BREAKER, GuardedBackend, breaker_middleware
from .config import Config
from .connections import CONNECTIONS, ConnectionLimits, connection_middleware
from .console import add_console_routes
from .deadlines import deadline_middleware
from .health import add_health_routes
from .observability.instrumented import InstrumentedBackend, count_unprocessed_retries
from .observability.middleware import observability_middleware
from .problems import problem_middleware
from .query_parameters import query_parameter_middleware
from .routes import routes
from .store import Store


def create_app(config: Config) -> web.Application:
    """A ready-to-run application. The backend opens on startup; on cleanup
    the store drains every queued write before the backend closes."""
    # Observability is outermost so it sees the final status of every answer.
    middlewares: list[Middleware] = [
        observability_middleware(access_log=config.access_log),
        connection_middleware,
        problem_middleware,
    ]
    # Admission first: a refused request costs no more than a counter.
    admission = Admission(config.max_inflight, config.max_queue_delay, config.max_loop_lag)
    middlewares.append(admission_middleware(admission))
    if config.token:
        middlewares.append(auth_middleware(config.token))
    middlewares.append(query_parameter_middleware)
    # Innermost: an open breaker refuses before the deadline starts; the
    # deadline covers the handler (body read, queue, backend calls).
    middlewares += [breaker_middleware(), deadline_middleware(config.request_timeout)]
    app = web.Application(middlewares=middlewares, client_max_size=config.limits.max_request_bytes)
    app[CONFIG] = config
    app[CONNECTIONS] = ConnectionLimits(
        max_connections=config.max_connections,
        read_timeout=config.read_timeout,
        write_timeout=config.write_timeout,
    )
    app[ADMISSION] = admission
    backend = backend_module(config.backend)

    async def storage(app: web.Application) -> AsyncIterator[None]:
        async with backend.open(config, on_retry=count_unprocessed_retries) as opened:
            guarded = GuardedBackend(
                InstrumentedBackend(opened),
                failures=config.breaker_failures,
                probe_timeout=config.request_timeout,
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
            yield
            await app[STORE].drain()
            await guarded.breaker.stop()

    app.cleanup_ctx.append(admission.watch_loop)
    app.cleanup_ctx.append(storage)
    app.add_routes(routes)
    add_health_routes(app)
    if config.console:
        add_console_routes(app)
    return app
