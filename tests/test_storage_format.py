"""Storage format 2 (numbers in numeric order) against storage of format 1:
a SQLite file or DynamoDB table with number keys written as text is refused at
open with a message naming ``itemstore migrate``, which converts it in place."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import zlib
from pathlib import Path

import aioboto3
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from itemstore_service.app import create_app
from itemstore_service.backends import dynamodb, sqlite
from itemstore_service.config import Config
from itemstore_service.keys import StorageFormatOutdated

# Format 1 wrote a number key as "n" and its text: listed 10 before 9, -5 after 3.
LEGACY_NUMBERS = {"n10": 10, "n9": 9, "n-5": -5, "n3": 3, "n2.5": 2.5, "n0": 0}


def write_format_1_file(path: str, *, numbers: bool = True) -> None:
    """A SQLite file as itemstore wrote it before storage formats had versions."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE items (collection TEXT NOT NULL, sk BLOB NOT NULL, value BLOB NOT NULL,"
        " version TEXT NOT NULL, float_key INTEGER NOT NULL DEFAULT 0,"
        " PRIMARY KEY (collection, sk))"
    )
    rows = [("c", b"sname", b'"ada"', "v0", 0)]
    if numbers:
        rows += [
            ("c", sk.encode(), orjson.dumps(n), f"v{sk}", int(isinstance(n, float)))
            for sk, n in LEGACY_NUMBERS.items()
        ]
    conn.executemany("INSERT INTO items VALUES (?,?,?,?,?)", rows)
    conn.commit()
    conn.close()


async def migrate(*args: str) -> tuple[int, str]:
    """Run ``itemstore migrate`` as its own process: its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "itemstore_service",
        "migrate",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return await process.wait(), output.decode()


async def listed_keys(config: Config) -> list[object]:
    async with TestClient(TestServer(create_app(config))) as client:
        response = await client.get("/collections/c/items")
        assert response.status == 200, await response.text()
        items = (await response.json())["items"]
    assert all(item["value"] == item["key"] for item in items if item["key"] != "name")
    return [item["key"] for item in items]


async def test_sqlite_file_of_format_1_is_refused_then_migrated(tmp_path: Path) -> None:
    path = str(tmp_path / "old.sqlite3")
    write_format_1_file(path)
    config = Config(sqlite_path=path)
    with pytest.raises(StorageFormatOutdated, match=r"itemstore migrate --sqlite-path"):
        async with sqlite.open(config):
            pass

    assert await migrate("--sqlite-path", path) == (0, f"sqlite {path}: 6 key(s) converted\n")
    assert await listed_keys(config) == [-5, 0, 2.5, 3, 9, 10, "name"]
    # Once converted, running it again changes nothing.
    assert await migrate("--sqlite-path", path) == (0, f"sqlite {path}: 0 key(s) converted\n")


async def test_sqlite_file_of_format_1_without_number_keys_opens_as_is(tmp_path: Path) -> None:
    path = str(tmp_path / "old.sqlite3")
    write_format_1_file(path, numbers=False)
    assert await listed_keys(Config(sqlite_path=path)) == ["name"]
    (version,) = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()
    assert version == 2


async def test_migrate_of_a_missing_file_fails_clearly(tmp_path: Path) -> None:
    code, output = await migrate("--sqlite-path", str(tmp_path / "nowhere.sqlite3"))
    assert code == 1
    assert "itemstore: error: no SQLite file at" in output


async def test_dynamodb_table_of_format_1_is_refused_then_migrated(moto_config: Config) -> None:
    config = moto_config
    async with dynamodb.open(config) as backend:
        shards = backend.shards
    # Make the table look as format 1 left it: no format record, number keys as text.
    async with aioboto3.Session().client(
        "dynamodb", endpoint_url=config.dynamodb_endpoint, region_name=config.dynamodb_region
    ) as client:
        table = config.dynamodb_table
        await client.delete_item(TableName=table, Key={"pk": {"S": "#meta"}, "sk": {"S": "format"}})
        for sk, n in LEGACY_NUMBERS.items():
            item = {
                "pk": {"S": f"c#{zlib.crc32(sk.encode()) % shards}"},  # the backend's layout
                "sk": {"S": sk},
                "v": {"B": orjson.dumps(n)},
                "ver": {"S": f"v{sk}"},
            }
            if isinstance(n, float):
                item["fk"] = {"BOOL": True}
            await client.put_item(TableName=table, Item=item)
    with pytest.raises(StorageFormatOutdated, match=r"itemstore migrate --backend dynamodb"):
        async with dynamodb.open(config):
            pass

    args = ["--backend", "dynamodb", "--dynamodb-table", table]
    code, output = await migrate(*args, "--dynamodb-endpoint", str(config.dynamodb_endpoint))
    assert (code, output) == (0, f"dynamodb {table}: 6 key(s) converted\n")
    assert await listed_keys(config) == [-5, 0, 2.5, 3, 9, 10]
