"""export, import and copy between real services: every item comes back with
its key type and exact value; an import killed half-way and run again ends
with exactly the right items; bad lines are named by number; memory stays
bounded whatever the size."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.datacli_import import MEASURED, peak_kib
from itemstore import Client
from itemstore_service.datacli import importing
from itemstore_service.datacli.importing import Importer
from itemstore_service.datacli.progress import ProgressLines
from itemstore_service.datacli.records import Record
from itemstore_wire.exactjson import dumps
from tests.datacli.running import (
    Service,
    itemstore,
    json_lines,
    moto_service,
    sqlite_service,
)

BIG = 2**70 + 1
ITEMS: dict[str, dict[Any, Any]] = {
    "users": {
        "ada": {"name": "Ada", "big": BIG, "neg": -BIG, "f": 0.1, "e": 1e300},
        42: [1, 2, {"deep": [[[BIG]]]}],
        -(2**63): "the smallest 64-bit key",
        2**70: "a key beyond 64 bits",
        1.5: "a float key",
        2.0: "a float key that jq would write as 2",
        True: None,
        False: "",
        "ключ/with spaces & ?#": "Unicode ✓",
        "large": "x" * 300_000,  # near the value size limit
    },
    "many": {f"k{n:05}": {"n": n} for n in range(1_234)},  # more than one page and batch
    "empty-values": {"a": {}, "b": [], "c": 0},
}


def seed(url: str, items: dict[str, dict[Any, Any]]) -> None:
    with Client(url) as client:
        for name, pairs in items.items():
            client.collection(name).update(pairs)


def stored(url: str) -> dict[str, list[tuple[type, Any, Any]]]:
    """Every item of every collection, with the type of its key."""
    with Client(url) as client:
        return {
            name: sorted(
                ((type(k), k, v) for k, v in client.collection(name).iter_items()),
                key=lambda entry: (entry[0].__name__, repr(entry[1])),
            )
            for name in client.collections()
        }


def seed_expiring(url: str) -> dict[str, int | None]:
    """A "sessions" collection: two items that expire (an hour and a day from
    now) and one that never does; each key's expiry."""
    now = int(time.time())
    expiries: dict[str, int | None] = {"hour": now + 3600, "day": now + 86_400, "never": None}
    with Client(url) as client:
        sessions = client.collection("sessions")
        for key, at in expiries.items():
            sessions.set(key, {"user": key}, expire_at=at)
    return expiries


def expiries(url: str, collection: str) -> dict[Any, int | None]:
    """Each key of ``collection`` and when its item expires, as the service lists them."""
    with Client(url) as client:
        return {item.key: item.expires_at for item in client.collection(collection).iter_listed()}


def export(url: str, *collections: str) -> bytes:
    result = itemstore("export", *collections, url=url)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_export_then_import_into_an_empty_service_reproduces_every_item(
    new_service: Service, tmp_path: Path
) -> None:
    dump = tmp_path / "dump.jsonl"
    with new_service() as source:
        seed(source, ITEMS)
        dump.write_bytes(export(source))
        expected = stored(source)
    assert {name: {k: v for _, k, v in entries} for name, entries in expected.items()} == ITEMS
    records = json_lines(dump.read_bytes())
    assert len(records) == sum(len(items) for items in ITEMS.values())
    assert {
        "collection": "users",
        "key": 2.0,
        "key_type": "float",
        "value": ITEMS["users"][2.0],
    } in records
    assert b'"big":1180591620717411303425,' in dump.read_bytes()  # every digit, as a number

    with new_service() as target:
        result = itemstore("import", url=target, stdin=dump)
        assert result.returncode == 0, result.stderr
        assert result.stderr.startswith(b"imported 1247 items (1247 written) in ")
        assert stored(target) == expected
        assert sorted(export(target).splitlines()) == sorted(dump.read_bytes().splitlines())

    assert expected["users"][0][:2] == (bool, False)  # keys kept their types
    assert (float, 2.0) in [entry[:2] for entry in expected["users"]]


def test_export_then_import_keeps_every_items_expiry(new_service: Service, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    with new_service() as source:
        expected = seed_expiring(source)
        assert expiries(source, "sessions") == expected
        dump.write_bytes(export(source))
    records: dict[str, dict[str, Any]] = {
        record["key"]: record
        for record in json_lines(dump.read_bytes())
        if isinstance(record, dict)
    }
    assert records["hour"]["expires_at"] == expected["hour"]
    assert records["day"]["expires_at"] == expected["day"]
    assert "expires_at" not in records["never"]

    with new_service() as target:
        result = itemstore("import", url=target, stdin=dump)
        assert result.returncode == 0, result.stderr
        assert result.stderr.startswith(b"imported 3 items (3 written) in ")
        assert expiries(target, "sessions") == expected
        assert export(target) == dump.read_bytes()


def test_import_decides_the_key_type_by_key_type(service_url: str) -> None:
    """jq writes the float key 2.0 as 2: key_type keeps it a float."""
    lines = [
        {"collection": "c", "key": 2, "key_type": "float", "value": "float"},
        {"collection": "c", "key": 3, "value": "int without key_type"},
        {"collection": "c", "key": "s", "key_type": "str", "value": "str"},
    ]
    result = itemstore("import", url=service_url, stdin=b"\n".join(map(dumps, lines)))
    assert result.returncode == 0, result.stderr
    assert stored(service_url)["c"] == [
        (float, 2.0, "float"),
        (int, 3, "int without key_type"),
        (str, "s", "str"),
    ]


def feed_then_kill(url: str, lines: list[bytes], half: int) -> int:
    """Start an import, give it ``half`` of ``lines`` through a pipe, wait
    until the service holds the batches it could send, then SIGKILL it; the
    number of items stored by then."""
    env = {**os.environ, "ITEMSTORE_URL": url}
    process = subprocess.Popen(
        [sys.executable, "-m", "itemstore_service", "import"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert process.stdin is not None
    process.stdin.write(b"".join(lines[:half]))
    process.stdin.flush()
    full_batches = half // 100 * 100
    with Client(url) as client:
        deadline = time.monotonic() + 60
        while client.collection("c").count() < full_batches:
            assert time.monotonic() < deadline, "the import sent nothing"
            time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    process.stdin.close()
    with Client(url) as client:
        return client.collection("c").count()


@pytest.mark.parametrize(
    ("new_service", "mode"),
    [("sqlite", "overwrite"), ("sqlite", "create-only"), ("moto", "overwrite")],
    indirect=["new_service"],
)
def test_an_import_killed_half_way_and_run_again_ends_with_exactly_the_right_items(
    new_service: Service, tmp_path: Path, mode: str
) -> None:
    items = {n: {"n": n, "big": BIG + n} for n in range(1_500)}
    lines = [dumps({"collection": "c", "key": k, "value": v}) + b"\n" for k, v in items.items()]
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(b"".join(lines))
    with new_service() as url:
        stored_when_killed = feed_then_kill(url, lines, half=850)
        assert stored_when_killed == 800  # the last, partial batch was never sent

        result = itemstore("import", "--mode", mode, url=url, stdin=dump)
        assert result.returncode == 0, result.stderr
        with Client(url) as client:
            assert client.collection("c").to_dict() == items  # no loss, no duplicate
        if mode == "create-only":
            assert f"{stored_when_killed} kept (already stored)".encode() in result.stderr


def test_create_only_keeps_stored_items_and_overwrite_replaces_them(service_url: str) -> None:
    seed(service_url, {"c": {"a": "stored", "b": "stored"}})
    dump = b"\n".join(dumps({"collection": "c", "key": k, "value": "imported"}) for k in "abc")
    kept = itemstore("import", "--mode", "create-only", url=service_url, stdin=dump)
    assert kept.returncode == 0, kept.stderr
    assert b"(1 written, 2 kept (already stored))" in kept.stderr
    with Client(service_url) as client:
        assert client.collection("c").to_dict() == {"a": "stored", "b": "stored", "c": "imported"}
        assert itemstore("import", url=service_url, stdin=dump).returncode == 0
        assert client.collection("c").to_dict() == dict.fromkeys("abc", "imported")


def bad_dump() -> bytes:
    lines = [
        b'{"collection": "c", "key": "ok1", "value": 1}',
        b"not json",
        b'{"collection": "c", "key": "x", "key_type": "int", "value": 2}',
        b"",
        b'{"collection": "bad name", "key": "k", "value": 3}',
        b'{"collection": "c", "key": "big", "value": "%s"}' % (b"x" * 2_000),  # the service refuses
        b'{"collection": "c", "key": "ok2", "value": 4, "expire": 5}',
        b'{"collection": "c", "key": "ok3", "value": 5}',
    ]
    return b"\n".join(lines) + b"\n"


def test_bad_lines_are_reported_by_number_and_skipped(tmp_path: Path) -> None:
    with sqlite_service(tmp_path, "--max-value-bytes", "1000") as url:
        result = itemstore("import", "--on-error", "skip", url=url, stdin=bad_dump())
        assert result.returncode == 0, result.stderr
        lines = result.stderr.decode().splitlines()
        assert lines[:5] == [
            "line 2: not JSON (invalid literal, expected 'null': line 1 column 1 (char 0));"
            " skipped",
            "line 3: key 'x' is not of key_type int; skipped",
            "line 5: collection 'bad name' must be 1 to 128 characters of A-Z, a-z, 0-9, "
            "'_', '.', '-'; skipped",
            "line 7: unknown field 'expire': a record has collection, key, key_type, value, "
            "expires_at; skipped",
            "line 6: value is 2002 bytes of JSON; the limit is 1000 bytes; skipped",
        ]
        assert lines[5].startswith("imported 7 items (2 written, 5 skipped) in ")
        with Client(url) as client:
            assert client.collection("c").to_dict() == {"ok1": 1, "ok3": 5}


def test_a_bad_line_stops_the_import_by_default(service_url: str) -> None:
    result = itemstore("import", url=service_url, stdin=bad_dump())
    assert result.returncode == 1
    assert result.stderr == (
        b"itemstore: error: line 2: not JSON "
        b"(invalid literal, expected 'null': line 1 column 1 (char 0)); "
        b"0 items were written. Fix the line (or pass --on-error skip) and import again: "
        b"items are written by key\n"
    )


def test_copy_from_a_sqlite_service_to_a_moto_one_checks_counts(
    tmp_path: Path, moto_endpoint: str
) -> None:
    (tmp_path / "from").mkdir()
    (tmp_path / "to").mkdir()
    with (
        sqlite_service(tmp_path / "from") as source,
        moto_service(tmp_path / "to", moto_endpoint) as target,
    ):
        seed(source, ITEMS)
        expected = seed_expiring(source)
        result = itemstore("copy", "--from", source, "--to", target)
        assert result.returncode == 0, result.stderr
        assert result.stderr.decode().splitlines()[1:] == [
            "empty-values: 3 items at --from, 3 at --to",
            "many: 1234 items at --from, 1234 at --to",
            "sessions: 3 items at --from, 3 at --to",
            "users: 10 items at --from, 10 at --to",
        ]
        assert stored(target) == stored(source)
        assert expiries(target, "sessions") == expected

        seed(target, {"users": {"only-at-target": 1}})
        seed(source, {"many": {"only-at-source": 1}})
        again = itemstore("copy", "--from", source, "--to", target, "users")
        assert again.returncode == 1
        assert again.stderr.endswith(
            b"itemstore: error: item counts differ for users: the target held other items, "
            b"or the source changed during the copy; copy again to bring the changes\n"
        )
        with Client(target) as client:  # only the named collection was copied
            assert "only-at-source" not in client.collection("many")


def peak_rss(*args: str, url: str, stdin: Path | None = None, stdout: Path | None = None) -> int:
    """Run a data command; the peak resident memory of its process, in bytes."""
    with (
        (stdin or Path(os.devnull)).open("rb") as source,
        (stdout or Path(os.devnull)).open("wb") as out,
    ):
        result = subprocess.run(
            [sys.executable, "-c", MEASURED, *args],
            stdin=source,
            stdout=out,
            stderr=subprocess.PIPE,
            env={**os.environ, "ITEMSTORE_URL": url},
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    return peak_kib(result.stderr.decode()) * 1024


def dump_lines(count: int) -> Iterator[bytes]:
    for n in range(count):
        record = {"collection": "c", "key": n, "key_type": "int", "value": {"pad": "x" * 1_000}}
        yield dumps(record) + b"\n"


def test_import_and_export_run_in_bounded_memory(tmp_path: Path) -> None:
    """20 MB of items take no more memory than 1 MB of them."""
    sizes = {"small": 1_000, "large": 20_000}
    peaks: dict[str, tuple[int, int]] = {}
    for name, count in sizes.items():
        dump = tmp_path / f"{name}.jsonl"
        dump.write_bytes(b"".join(dump_lines(count)))
        (tmp_path / name).mkdir()
        with sqlite_service(tmp_path / name) as url:
            imported = peak_rss("import", url=url, stdin=dump)
            exported = peak_rss("export", url=url, stdout=tmp_path / f"{name}.out")
        exported_lines = (tmp_path / f"{name}.out").read_bytes().splitlines()
        assert sorted(exported_lines) == sorted(dump.read_bytes().splitlines())
        peaks[name] = (imported, exported)
    assert (tmp_path / "large.jsonl").stat().st_size > 20_000_000
    for small, large in zip(peaks["small"], peaks["large"], strict=True):
        assert large - small < 8_000_000, peaks


def test_an_expired_item_is_left_out_and_a_later_expiry_is_set(service_url: str) -> None:
    later = int(time.time()) + 3600
    lines = [
        {"collection": "c", "key": "gone", "value": 1, "expires_at": 1_000_000_000},
        {"collection": "c", "key": "later", "value": 2, "expires_at": later},
        {"collection": "c", "key": "kept", "value": 3},
    ]
    dump = b"\n".join(map(dumps, lines))
    result = itemstore("import", url=service_url, stdin=dump)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(b"imported 3 items (2 written, 1 expired) in ")
    assert expiries(service_url, "c") == {"kept": None, "later": later}


def test_an_import_whose_service_stops_says_so_and_finishes_when_run_again(
    tmp_path: Path,
) -> None:
    items = {f"k{n:04}": n for n in range(1_000)}
    lines = [dumps({"collection": "c", "key": k, "value": v}) + b"\n" for k, v in items.items()]
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(b"".join(lines))
    with sqlite_service(tmp_path) as url:
        process = subprocess.Popen(
            [sys.executable, "-m", "itemstore_service", "import", "--url", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert process.stdin is not None and process.stderr is not None
        process.stdin.write(b"".join(lines[:450]))
        process.stdin.flush()
        with Client(url) as client:
            deadline = time.monotonic() + 60
            while client.collection("c").count() < 400:
                assert time.monotonic() < deadline, "the import sent nothing"
                time.sleep(0.05)
    # the service has stopped: the rest of the input cannot be written
    process.stdin.write(b"".join(lines[450:]))
    process.stdin.close()
    assert process.wait(timeout=120) == 1
    told = process.stderr.read().decode().splitlines()
    process.stderr.close()
    assert told[-1].startswith(f"itemstore: error: cannot reach itemstore at {url}")
    assert told[-1].endswith(
        "; 400 items were written. Import again once the service answers: items are written by key"
    )

    with sqlite_service(tmp_path) as url:  # the same SQLite file, served again
        result = itemstore("import", url=url, stdin=dump)
        assert result.returncode == 0, result.stderr
        with Client(url) as client:
            assert client.collection("c").to_dict() == items


def test_an_item_that_expires_while_it_is_sent_counts_as_expired(
    service_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race cannot be timed on a real clock: the importer's clock is set
    back 10 seconds for its first reading only (an injected fault), so a record
    that expired 5 seconds ago is sent, the service refuses it as past, and
    the importer, reading the real time again, counts it as expired."""
    real_now = time.time()
    readings = iter([real_now - 10])
    clock = SimpleNamespace(time=lambda: next(readings, time.time()))
    monkeypatch.setattr(importing, "time", clock)
    told: list[str] = []
    with Client(service_url) as client:
        importer = Importer(
            client,
            mode="overwrite",
            on_error="fail",
            warn=told.append,
            progress=ProgressLines(io.StringIO(), None),
        )
        importer.add("a", Record("c", "just-gone", 1, int(real_now) - 5))
        importer.add("b", Record("c", "kept", 2))
        tally = importer.finish()
        importer.close()
        assert (tally.written, tally.expired, tally.skipped) == (1, 1, 0)
        assert told == []
        assert client.collection("c").to_dict() == {"kept": 2}
