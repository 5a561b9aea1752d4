"""Load-test itemstore with locust: the same read / write / mixed workloads as ``bench.run``.

Headless, against a running service (mixed 80% GET / 20% PUT by default)::

    locust -f bench/locustfile.py --headless -u 50 -r 50 -t 30s --host http://127.0.0.1:8080

Choose the workload with ``ITEMSTORE_BENCH_WORKLOAD=read|write|mixed`` or with locust
tags (``--tags read`` runs only GETs, ``--tags write`` only PUTs). Other settings, all
environment variables:

* ``ITEMSTORE_BENCH_COLLECTION`` collection to use (default ``bench``)
* ``ITEMSTORE_BENCH_KEYS`` number of keys, ``k00000`` .. (default 10000)
* ``ITEMSTORE_BENCH_VALUE_BYTES`` size of each JSON value (default 1024)
* ``ITEMSTORE_BENCH_PRELOAD`` ``1`` (default) puts every key through the batch endpoint
  when the test starts, so GETs find their keys; ``0`` skips that
* ``ITEMSTORE_TOKEN`` bearer token, when the service was started with one

A GET or PUT counts as failed on any status other than 2xx. The file is standalone
(no import from the rest of the repository), so it can be copied next to a locust
installation.
"""

from __future__ import annotations

import json
import os
import random
import urllib.request
from typing import Any

from locust import FastHttpUser, events, tag, task
from locust.env import Environment

WORKLOADS = {"read": (1, 0), "write": (0, 1), "mixed": (4, 1)}  # GET weight, PUT weight
WORKLOAD = os.environ.get("ITEMSTORE_BENCH_WORKLOAD", "mixed")
if WORKLOAD not in WORKLOADS:
    raise ValueError(f"ITEMSTORE_BENCH_WORKLOAD must be one of {', '.join(WORKLOADS)}")
COLLECTION = os.environ.get("ITEMSTORE_BENCH_COLLECTION", "bench")
KEYS = int(os.environ.get("ITEMSTORE_BENCH_KEYS", "10000"))
VALUE_BYTES = int(os.environ.get("ITEMSTORE_BENCH_VALUE_BYTES", "1024"))
PRELOAD = os.environ.get("ITEMSTORE_BENCH_PRELOAD", "1") != "0"
TOKEN = os.environ.get("ITEMSTORE_TOKEN")
BATCH_OPS = 100


def key_name(index: int) -> str:
    return f"k{index:05d}"


def value_body(key: str) -> bytes:
    """A JSON object of exactly VALUE_BYTES bytes (as bench/payload.py builds it)."""
    envelope = len(json.dumps({"id": key, "payload": ""}, separators=(",", ":")))
    value = {"id": key, "payload": "x" * max(VALUE_BYTES - envelope, 0)}
    return json.dumps(value, separators=(",", ":")).encode()


def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}


# locust's EventHook.add_listener has no annotations.
@events.test_start.add_listener  # type: ignore[untyped-decorator]
def preload(environment: Environment, **_: Any) -> None:
    """Put every key once, 100 per batch call, so that reads find them."""
    if not PRELOAD or environment.host is None:
        return
    url = f"{environment.host.rstrip('/')}/collections/{COLLECTION}/batch"
    headers = {"Content-Type": "application/json", **auth_headers()}
    for start in range(0, KEYS, BATCH_OPS):
        ops = [
            {"op": "put", "key": key_name(i), "value": json.loads(value_body(key_name(i)))}
            for i in range(start, min(start + BATCH_OPS, KEYS))
        ]
        body = json.dumps({"ops": ops}).encode()
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            results = json.load(response)["results"]
        failed = [r["status"] for r in results if r["status"] not in (200, 201)]
        if failed:
            raise RuntimeError(f"preload: batch items answered {sorted(set(failed))}")


class ItemstoreUser(FastHttpUser):
    """One client doing GETs and PUTs of random keys back to back (no think time)."""

    get_weight, put_weight = WORKLOADS[WORKLOAD]

    def on_start(self) -> None:
        self.headers = auth_headers()
        self.put_headers = {"Content-Type": "application/json", **self.headers}

    def _path(self) -> tuple[str, str]:
        key = key_name(random.randrange(KEYS))
        return key, f"/collections/{COLLECTION}/items/{key}"

    @tag("read")
    @task(get_weight)
    def get_item(self) -> None:
        _, path = self._path()
        self.client.get(path, headers=self.headers, name="GET /collections/[c]/items/[key]")

    @tag("write")
    @task(put_weight)
    def put_item(self) -> None:
        key, path = self._path()
        self.client.put(
            path,
            data=value_body(key).decode(),
            headers=self.put_headers,
            name="PUT /collections/[c]/items/[key]",
        )
