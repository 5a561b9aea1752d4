"""How many items per second moto itself serves, with no itemstore in front.

The DynamoDB figures of ``bench.run`` are bounded by the moto process; this
measures that bound directly: one client, one call at a time, on a moto server
(with keep-alive) that it starts and stops itself, with the same 1 KiB values.

    python -m bench.moto_ceiling
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Callable
from typing import Any

import boto3

from bench.dynamodb_local import moto_command
from bench.procs import HOST, free_port
from bench.targets import child_env
from itemstore_service.backends.dynamodb_setup import TABLE_DEFINITION

TABLE = "ceiling"
KEYS = 3000
VALUE = b'{"id":"k00000","payload":"' + b"x" * 990 + b'"}'


def key(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"c#{i % 8}"}, "sk": {"S": f"sk{i:05d}"}}


def rate(label: str, items_per_call: int, calls: int, call: Callable[[], object]) -> None:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    elapsed = time.perf_counter() - start
    print(f"{label:<48} {items_per_call * calls / elapsed:8,.0f} items/s")


def main() -> None:
    port = free_port()
    env = child_env()
    moto = subprocess.Popen(moto_command(port), env=env, stdout=subprocess.DEVNULL)
    try:
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        client = boto3.client("dynamodb", endpoint_url=f"http://{HOST}:{port}")
        for _ in range(100):
            try:
                client.list_tables()
                break
            except Exception:
                time.sleep(0.1)
        client.create_table(TableName=TABLE, **TABLE_DEFINITION)

        def put(keys: list[int]) -> None:
            items = [
                {"PutRequest": {"Item": {**key(i), "v": {"B": VALUE}, "ver": {"S": "v"}}}}
                for i in keys
            ]
            client.batch_write_item(RequestItems={TABLE: items})

        for start in range(0, KEYS, 25):
            put(list(range(start, start + 25)))

        def get(n: int, **extra: Any) -> Callable[[], object]:
            keys = [key(i) for i in random.sample(range(KEYS), n)]
            return lambda: client.batch_get_item(RequestItems={TABLE: {"Keys": keys, **extra}})

        for n in (32, 64, 100):
            rate(f"BatchGetItem, {n} keys, values", n, max(3, 1200 // n), get(n))
        rate(
            "BatchGetItem, 25 keys, consistent, no values",
            25,
            40,
            get(25, ConsistentRead=True, ProjectionExpression="pk, sk, ver"),
        )
        rate("BatchWriteItem, 25 puts", 25, 40, lambda: put(random.sample(range(KEYS), 25)))

        # The write APIs that could tell created from replaced without a read
        # first (a failed condition per item); far too slow on moto to use.
        def transact() -> None:
            items = [
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": {**key(i), "v": {"B": VALUE}, "ver": {"S": "v"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                }
                for i in random.sample(range(KEYS), 25)
            ]
            client.transact_write_items(TransactItems=items)

        def partiql() -> None:
            statements = [
                {
                    "Statement": f'UPDATE "{TABLE}" SET v=?, ver=? WHERE pk=? AND sk=?',
                    "Parameters": [{"B": VALUE}, {"S": "v"}, k["pk"], k["sk"]],
                }
                for k in (key(i) for i in random.sample(range(KEYS), 25))
            ]
            client.batch_execute_statement(Statements=statements)

        rate("TransactWriteItems, 25 conditional puts", 25, 3, transact)
        rate("BatchExecuteStatement, 25 UPDATEs", 25, 3, partiql)
    finally:
        moto.terminate()
        moto.wait(timeout=10)


if __name__ == "__main__":
    main()
