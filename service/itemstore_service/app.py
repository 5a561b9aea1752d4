"""The application factory: wires config, backend, store, middlewares and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware

from .appkeys import CONFIG, STORE
from .auth import auth_middleware
from .backends import open_backend
from .batching import Tuning
from .config import Config
from .health import add_health_routes
from .observability import InstrumentedBackend, observability_middleware
from .problems import problem_middleware
from .routes import routes
from .store import Store

# Batch sizes follow each backend's costs: SQLite commits any number of rows in
# one transaction on one writer thread; DynamoDB reads 100 keys and writes 25
# items per call (a write batch of 100 is four calls in parallel). Few calls in
# flight make big batches: against moto, 2 reads / 1 write in flight served
# 1.6x the requests of 8 / 4 (bench, mixed workload).
TUNING = {
    "sqlite": Tuning(read_batch=256, read_in_flight=2, write_batch=256, write_in_flight=1),
    "dynamodb": Tuning(read_batch=100, read_in_flight=2, write_batch=100, write_in_flight=1),
}


def create_app(config: Config) -> web.Application:
    """A ready-to-run application. The backend opens on startup; on cleanup
    the store drains every queued write before the backend closes."""
    # Observability is outermost so it sees the final status of every answer.
    middlewares: list[Middleware] = [
        observability_middleware(access_log=config.access_log),
        problem_middleware,
    ]
    if config.token:
        middlewares.append(auth_middleware(config.token))
    app = web.Application(middlewares=middlewares, client_max_size=config.limits.max_request_bytes)
    app[CONFIG] = config

    async def storage(app: web.Application) -> AsyncIterator[None]:
        async with open_backend(config) as backend:
            instrumented = InstrumentedBackend(backend)
            app[STORE] = Store(instrumented, TUNING[config.backend], coalesce=config.coalesce)
            yield
            await app[STORE].drain()

    app.cleanup_ctx.append(storage)
    app.add_routes(routes)
    add_health_routes(app)
    return app
