"""The benchmark's keys and values, shared by the harness, the dict server and locust.

Keys are ``k00000`` .. ``k<N-1>`` (str keys, zero-padded to a fixed width) and every
value is a JSON object whose orjson encoding is exactly ``value_bytes`` long, so the
wrk Lua scripts can build the same bodies without a JSON library.
"""

from __future__ import annotations

from typing import Final

import orjson

KEY_WIDTH: Final = 5
COLLECTION: Final = "bench"
BATCH_OPS: Final = 100


def key_name(index: int) -> str:
    """The str key of item ``index``."""
    return f"k{index:0{KEY_WIDTH}d}"


def make_value(key: str, value_bytes: int) -> dict[str, str]:
    """A JSON object whose compact encoding is exactly ``value_bytes`` long.

    Raises ``ValueError`` when ``value_bytes`` is too small for the envelope.
    """
    envelope = len(orjson.dumps({"id": key, "payload": ""}))
    if value_bytes < envelope:
        raise ValueError(f"value_bytes must be at least {envelope}, not {value_bytes}")
    return {"id": key, "payload": "x" * (value_bytes - envelope)}


def preload_batches(keys: int, value_bytes: int, batch_ops: int = BATCH_OPS) -> list[bytes]:
    """Request bodies for ``POST /collections/<c>/batch`` that put keys ``0..keys-1``."""
    bodies = []
    for start in range(0, keys, batch_ops):
        ops = [
            {"op": "put", "key": key_name(i), "value": make_value(key_name(i), value_bytes)}
            for i in range(start, min(start + batch_ops, keys))
        ]
        bodies.append(orjson.dumps({"ops": ops}))
    return bodies
