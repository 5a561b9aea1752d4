"""The ceiling: a minimal aiohttp + orjson server keeping items in a dict.

It answers the same route shapes as itemstore (item GET/HEAD/PUT/DELETE, the batch
endpoint, ``GET /``) with no validation beyond JSON parsing, no storage and no
middlewares, so the benchmark can show how much of the HTTP stack's own speed
itemstore keeps. With ``--workers N`` it forks N processes sharing the port
(SO_REUSEPORT); each has its own dict, so ``--preload`` seeds every worker with the
benchmark's keys (a real shared store would not need that).

    python -m bench.dict_server --port 8081 --workers 2 --preload 10000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from bench.payload import COLLECTION, key_name, make_value

JSON = "application/json"
STORE = web.AppKey("store", dict[tuple[str, str], tuple[bytes, int]])


def _etag(version: int) -> str:
    return f'"{version}"'


def _put(
    store: dict[tuple[str, str], tuple[bytes, int]], ident: tuple[str, str], body: bytes
) -> tuple[int, int]:
    old = store.get(ident)
    version = old[1] + 1 if old else 1
    store[ident] = (body, version)
    return (200 if old else 201), version


async def get_item(request: web.Request) -> web.Response:
    found = request.app[STORE].get((request.match_info["name"], request.match_info["key"]))
    if found is None:
        return web.json_response({"status": 404, "code": "item-not-found"}, status=404)
    return web.Response(body=found[0], content_type=JSON, headers={"ETag": _etag(found[1])})


async def put_item(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return web.json_response({"status": 400, "code": "invalid-json"}, status=400)
    key = request.match_info["key"]
    status, version = _put(request.app[STORE], (request.match_info["name"], key), body)
    answer = orjson.dumps({"key": key, "etag": _etag(version)})
    return web.Response(
        body=answer, status=status, content_type=JSON, headers={"ETag": _etag(version)}
    )


async def delete_item(request: web.Request) -> web.Response:
    found = request.app[STORE].pop((request.match_info["name"], request.match_info["key"]), None)
    if found is None:
        return web.json_response({"status": 404, "code": "item-not-found"}, status=404)
    return web.Response(body=found[0], content_type=JSON, headers={"ETag": _etag(found[1])})


async def batch(request: web.Request) -> web.Response:
    store = request.app[STORE]
    name = request.match_info["name"]
    results: list[dict[str, Any]] = []
    for op in orjson.loads(await request.read())["ops"]:
        ident = (name, str(op["key"]))
        if op["op"] == "put":
            status, version = _put(store, ident, orjson.dumps(op["value"]))
            results.append({"status": status, "etag": _etag(version)})
            continue
        found = store.pop(ident, None) if op["op"] == "delete" else store.get(ident)
        if found is None:
            results.append({"status": 404})
        else:
            value = orjson.loads(found[0])
            results.append({"status": 200, "value": value, "etag": _etag(found[1])})
    return web.Response(body=orjson.dumps({"results": results}), content_type=JSON)


async def root(request: web.Request) -> web.Response:
    return web.json_response({"service": "dict-server", "backend": "memory"})


def create_app(preload: int, value_bytes: int) -> web.Application:
    """The app; ``preload`` keys of ``value_bytes`` each are stored before it serves."""
    app = web.Application()
    app[STORE] = {
        (COLLECTION, key_name(i)): (orjson.dumps(make_value(key_name(i), value_bytes)), 1)
        for i in range(preload)
    }
    item = "/collections/{name}/items/{key}"
    app.router.add_get(item, get_item)  # also answers HEAD
    app.router.add_put(item, put_item)
    app.router.add_delete(item, delete_item)
    app.router.add_post("/collections/{name}/batch", batch)
    app.router.add_get("/", root)
    app.router.add_get("/healthz", root)
    return app


def _serve(host: str, port: int, preload: int, value_bytes: int) -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # uvloop is optional (not on Windows): the default loop also works
        pass
    web.run_app(
        create_app(preload, value_bytes),
        host=host,
        port=port,
        reuse_port=True,
        access_log=None,
        print=None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--preload", type=int, default=0, help="keys to seed in each worker")
    parser.add_argument("--value-bytes", type=int, default=1024)
    args = parser.parse_args(argv)
    if args.workers <= 1:
        _serve(args.host, args.port, args.preload, args.value_bytes)
        return 0
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_serve, args=(args.host, args.port, args.preload, args.value_bytes))
        for _ in range(args.workers)
    ]
    for worker in workers:
        worker.start()

    def stop(signum: int, frame: object) -> None:
        for worker in workers:
            if worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for worker in workers:
        worker.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
