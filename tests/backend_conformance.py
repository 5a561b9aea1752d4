"""One test suite that every storage backend must pass, unchanged.

A test module per backend subclasses :class:`BackendConformance` and provides
the ``open_backend`` fixture: a callable that opens the backend on the test's
own storage (a SQLite file, a DynamoDB table). Calling it again opens a fresh
backend on the same storage, which is how durability is checked.

Sort keys come from ``itemstore_service.keys.encode_key``, so the tests store
exactly what the service stores.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import orjson
import pytest

from itemstore_service.backends.base import (
    Backend,
    ConditionFailed,
    ItemKey,
    Listed,
    Record,
    TransactionFailed,
    TxOp,
    Update,
)
from itemstore_service.conditions import matches, parse_where
from itemstore_service.keys import decode_key, encode_key, str_prefix
from itemstore_wire.contract import Key

Opener = Callable[[], AbstractAsyncContextManager[Backend]]

# Keys whose sort keys disagree between byte, UTF-16 and case-folded orders:
# U+FF01 sorts before U+1F600 by UTF-8 bytes but after it by UTF-16 units.
ODD_KEYS: list[Key] = [
    "a", "A", "Z", "z", "a/b", "a#b", "a%20b", "a b", ".", "..", "/", "#", "%", " ",
    "é", "é/x", "ÿ", "Ā", "中文", "\uff01", "😀", "😀😀", "a😀", "a\uffff", "ab", "a.b",
    "{", "}", "{id}",
    1, -5, 10, 2.5, 1e-7, True, False,
]  # fmt: skip


# Items and (where, matching keys in key order: bools, numbers, strings)
# shared by every backend.
QUERY_ITEMS: dict[Key, object] = {
    "ada": {"age": 36, "name": "Ada", "tags": ["math", "poet"], "profile": {"country": "UK"}},
    "alan": {"age": 41, "name": "Alan", "tags": ["math"], "profile": {"country": "UK"}},
    "grace": {"age": 85.5, "name": "Grace", "tags": [], "profile": {"country": "US"}},
    "kid": {"age": "12", "name": "Kid", "profile": None},
    "bot": {"age": True, "name": None, "tags": [1, True]},
    "nums": [1, 2, 3],
    "text": "plain text",
    3: {"age": 30},
    10: {"age": 10},
    -2.5: {"age": -2.5},
    True: {"age": 0},
}
QUERY_CASES: list[tuple[object, list[Key]]] = [
    ({"age?gte": 30}, [3, "ada", "alan", "grace"]),
    ({"age": 36}, ["ada"]),
    ({"age": "12"}, ["kid"]),
    ({"age?ne": 36}, [True, -2.5, 3, 10, "alan", "grace"]),
    ({"age": True}, ["bot"]),
    ({"age?lt": 10}, [True, -2.5]),
    ({"age?gt": "1"}, ["kid"]),
    ({"profile.country": "UK"}, ["ada", "alan"]),
    ({"name?pfx": "A"}, ["ada", "alan"]),
    ({"name": None}, ["bot"]),
    ({"tags?contains": "math"}, ["ada", "alan"]),
    ({"tags?contains": 1}, ["bot"]),
    ({"tags?contains": True}, ["bot"]),
    ({"name?contains": "ra"}, ["grace"]),
    ({"name?in": ["Ada", "Grace", 36]}, ["ada", "grace"]),
    ({"tags?exists": False}, [True, -2.5, 3, 10, "kid", "nums", "text"]),
    ({"profile?exists": True, "profile.country?exists": False}, ["kid"]),
    ([{"age": 10}, {"name": "Alan"}], [10, "alan"]),
    ({"@key?gte": 3}, [3, 10]),
    ({"@key?lt": "b"}, ["ada", "alan"]),
    ({"@key?pfx": "a"}, ["ada", "alan"]),
    ({"@key?contains": "ra"}, ["grace"]),
    ({"@key": True}, [True]),
    ({"@key?in": [10, "kid", None]}, [10, "kid"]),
    ({"@key?ne": 3}, [-2.5, 10]),
    ({"age?gte": 30, "@key?pfx": "a"}, ["ada", "alan"]),
]


def rec(value: object, version: str = "v1", float_key: bool = False) -> Record:
    return Record(orjson.dumps(value), version, float_key)


def key(collection: str, k: Key) -> ItemKey:
    return collection, encode_key(k)


def byte_order(sks: list[str]) -> list[str]:
    return sorted(sks, key=lambda sk: sk.encode("utf-8"))


async def walk(backend: Backend, collection: str, *, page: int, prefix: str = "") -> list[Listed]:
    """Every item of a listing, page by page, each page starting after the last."""
    seen: list[Listed] = []
    after: str | None = None
    while True:
        got = await backend.query(
            collection, after=after, prefix=prefix, limit=page, keys_only=False
        )
        assert len(got) <= page
        if not got:
            return seen
        seen += got
        after = got[-1].sk


class BackendConformance:
    """The behaviour of ``backends.base.Backend``, for any implementation."""

    @pytest.fixture
    def open_backend(self) -> Opener:
        raise NotImplementedError("a backend test module provides open_backend")

    @pytest.fixture
    async def backend(self, open_backend: Opener) -> AsyncIterator[Backend]:
        async with open_backend() as backend:
            yield backend

    async def _put(self, backend: Backend, items: dict[ItemKey, Record]) -> None:
        assert await backend.write_many(items, [], previous=items) == {}

    # -- basics -----------------------------------------------------------

    async def test_fresh_storage_is_empty_and_answers_ping(self, backend: Backend) -> None:
        await backend.ping()
        assert await backend.get_many([key("c", "a")], consistent=True) == {}
        assert await backend.count("c") == 0
        assert await backend.query("c", after=None, prefix="", limit=10, keys_only=False) == []
        assert await backend.list_collections(after=None, limit=10) == []
        assert await backend.write_many({}, [], previous=()) == {}
        assert await backend.get_many([], consistent=False) == {}

    async def test_get_many_across_collections(self, backend: Backend) -> None:
        await self._put(
            backend,
            {key("c1", "a"): rec(1), key("c2", "a"): rec(2), key("c1", 7): rec({"n": 7}, "v7")},
        )
        for consistent in (True, False):
            got = await backend.get_many(
                [key("c1", "a"), key("c2", "a"), key("c1", 7), key("c1", "b"), key("c3", "a")],
                consistent=consistent,
            )
            assert got == {
                key("c1", "a"): rec(1),
                key("c2", "a"): rec(2),
                key("c1", 7): rec({"n": 7}, "v7"),
            }

    async def test_values_round_trip_byte_for_byte(self, backend: Backend) -> None:
        raw = b'{"b" : 1.10, "a": [1e400, "\xc3\xa9\\u00e9", null] }'
        await self._put(backend, {key("c", "raw"): Record(raw, "ver-1")})
        got = await backend.get_many([key("c", "raw")], consistent=True)
        assert got[key("c", "raw")].value == raw

    async def test_many_keys_beyond_one_request(self, backend: Backend) -> None:
        items = {key("c", i): rec(i, f"v{i}") for i in range(230)}
        await self._put(backend, items)
        wanted = [*items, *(key("c", i) for i in range(1000, 1050))]
        assert await backend.get_many(wanted, consistent=True) == items
        assert await backend.count("c") == 230

    # aiohttp (under aiobotocore) warns about request bodies over 1 MiB; Python
    # ignores ResourceWarning outside tests, and these bodies must be sent.
    @pytest.mark.filterwarnings("ignore:Sending a large body:ResourceWarning")
    async def test_large_values(self, backend: Backend) -> None:
        big = b'"' + b"x" * (350 * 1024 - 2) + b'"'
        await self._put(backend, {key("c", "big"): Record(big, "v")})
        assert await backend.get_many([key("c", "big")], consistent=True) == {
            key("c", "big"): Record(big, "v")
        }
        # Together these exceed what one DynamoDB batch read may return (16 MB).
        many = {key("c", i): Record(big[:-2] + bytes([48 + i % 10]) + b'"', "v") for i in range(50)}
        await self._put(backend, many)
        assert await backend.get_many(list(many), consistent=True) == many

    # -- write_many ---------------------------------------------------------

    async def test_write_many_returns_previous_records(self, backend: Backend) -> None:
        await self._put(backend, {key("c", "a"): rec("a1"), key("c", "b"): rec("b1")})
        previous = await backend.write_many(
            {key("c", "a"): rec("a2", "v2"), key("c", "d"): rec("d1")},
            [key("c", "b"), key("c", "absent")],
            previous=[key("c", k) for k in ("a", "d", "b", "absent")],
        )
        assert previous.keys() == {key("c", "a"), key("c", "b")}
        assert previous[key("c", "b")] == rec("b1")  # a deleted item's value comes back
        replaced = previous[key("c", "a")]  # a replaced item's value may be left out
        assert replaced.version == rec("a1").version
        assert replaced.value in (rec("a1").value, b"")
        got = await backend.get_many(
            [key("c", k) for k in ("a", "b", "d", "absent")], consistent=True
        )
        assert got == {key("c", "a"): rec("a2", "v2"), key("c", "d"): rec("d1")}

    async def test_write_many_returns_previous_records_of_the_keys_asked_only(
        self, backend: Backend
    ) -> None:
        olds = {key("c", k): rec(f"{k}1", f"v{k}") for k in ("a", "b", "c", "e")}
        await self._put(backend, olds)
        previous = await backend.write_many(
            {key("c", "a"): rec("a2", "v2"), key("c", "e"): rec("e2", "v2"), key("c", "d"): rec(1)},
            [key("c", "b"), key("c", "c")],
            previous=[key("c", "a"), key("c", "b"), key("c", "d")],
        )
        # e (put) and c (delete) are blind: their records are not returned.
        assert previous.keys() == {key("c", "a"), key("c", "b")}
        assert previous[key("c", "b")] == olds[key("c", "b")]
        assert previous[key("c", "a")].version == "va"
        got = await backend.get_many([key("c", k) for k in "abcde"], consistent=True)
        assert got == {
            key("c", "a"): rec("a2", "v2"),
            key("c", "d"): rec(1),
            key("c", "e"): rec("e2", "v2"),
        }

    async def test_blind_write_many_returns_nothing(self, backend: Backend) -> None:
        await self._put(backend, {key("c", "a"): rec("a1"), key("c", "b"): rec("b1")})
        written = {key("c", "a"): rec("a2", "v2"), key("c", "n"): rec("n1")}
        assert await backend.write_many(written, [key("c", "b")], previous=()) == {}
        keys = [key("c", k) for k in "abn"]
        assert await backend.get_many(keys, consistent=True) == written
        assert await backend.count("c") == 2

    async def test_writes_are_durable_across_reopen(self, open_backend: Opener) -> None:
        async with open_backend() as first:
            await first.write_many({key("c", i): rec(i) for i in range(30)}, [], previous=())
            await first.write_many({}, [key("c", 0)], previous=())
        async with open_backend() as second:
            got = await second.get_many([key("c", i) for i in range(30)], consistent=True)
            assert got == {key("c", i): rec(i) for i in range(1, 30)}
            assert await second.count("c") == 29
            assert await second.list_collections(after=None, limit=10) == ["c"]

    # -- update_many ----------------------------------------------------------

    async def test_update_many_sees_the_current_record_and_writes_its_result(
        self, backend: Backend
    ) -> None:
        await self._put(backend, {key("c", "a"): rec(1, "v1"), key("c", "b"): rec(2, "v2")})
        seen: dict[ItemKey, Record | None] = {}

        def bump(k: ItemKey) -> Update:
            def update(current: Record | None) -> Record | None:
                seen[k] = current
                n = 0 if current is None else orjson.loads(current.value)
                return rec(n + 10, f"new-{n}", float_key=k[1] == key("c", 2.5)[1])

            return update

        updates = {k: bump(k) for k in (key("c", "a"), key("c", "new"), key("c", 2.5))}
        updates[key("c", "b")] = lambda current: None  # leaves the item as it is
        assert await backend.update_many(updates) == []
        assert seen == {key("c", "a"): rec(1, "v1"), key("c", "new"): None, key("c", 2.5): None}
        got = await backend.get_many(list(updates), consistent=True)
        assert got == {
            key("c", "a"): rec(11, "new-1"),
            key("c", "b"): rec(2, "v2"),
            key("c", "new"): rec(10, "new-0"),
            key("c", 2.5): rec(10, "new-0", float_key=True),
        }
        assert await backend.list_collections(after=None, limit=10) == ["c"]
        assert await backend.update_many({}) == []

    async def test_concurrent_updates_from_two_openings_all_count(
        self, open_backend: Opener
    ) -> None:
        counter = key("c", "n")

        def increment(current: Record | None) -> Record:
            n = 0 if current is None else orjson.loads(current.value)
            return rec(n + 1, f"v{n + 1}")

        async with open_backend() as first, open_backend() as second:
            calls = [b.update_many({counter: increment}) for b in (first, second) * 4]
            contended = await asyncio.gather(*calls)
            done = sum(1 for keys in contended if not keys)
            # Every update that says it applied counts once. None is given up
            # on: a conditional write fails only when another one landed, so
            # 8 racers need at most 8 attempts each.
            assert await first.get_many([counter], consistent=True) == {
                counter: rec(done, f"v{done}")
            }
            assert done == len(calls)

    # -- expiry ---------------------------------------------------------------

    async def test_expired_items_are_absent_to_every_read(self, backend: Backend) -> None:
        past, future = int(time.time()) - 10, int(time.time()) + 3600
        gone = {
            key("c", "gone"): Record(b"1", "v1", expires_at=past),
            key("expired-only", "x"): Record(b"2", "v2", expires_at=past),
        }
        live = {key("c", "live"): Record(b"3", "v3", expires_at=future), key("c", "z"): rec(4)}
        assert await backend.write_many(gone | live, [], previous=list(gone)) == {}
        assert await backend.get_many([*gone, *live], consistent=True) == live
        assert await backend.get_many([*gone, *live], consistent=False) == live
        assert await backend.count("c") == 2
        assert await backend.count("expired-only") == 0
        assert await backend.list_collections(after=None, limit=10) == ["c"]
        for keys_only in (False, True):
            listed = await backend.query("c", after=None, prefix="", limit=10, keys_only=keys_only)
            assert [entry.sk for entry in listed] == [key("c", "live")[1], key("c", "z")[1]]
            assert [entry.record.expires_at for entry in listed] == [future, None]
        assert await walk(backend, "c", page=1) == await backend.query(
            "c", after=None, prefix="", limit=10, keys_only=False
        )

    async def test_expired_items_are_absent_to_every_condition(self, backend: Backend) -> None:
        past = int(time.time()) - 10
        items = {key("c", k): Record(b"1", f"v{k}", expires_at=past) for k in "abcdef"}
        await backend.write_many(items, [], previous=())
        with pytest.raises(ConditionFailed) as failed:
            await backend.delete_if(key("c", "a"), expected="va")
        assert failed.value.current is None
        with pytest.raises(ConditionFailed) as failed:
            await backend.put_if(key("c", "b"), rec(2), expected="vb")
        assert failed.value.current is None
        assert await backend.put_if(key("c", "c"), rec(3), expected=None) is None
        seen: list[Record | None] = []
        assert await backend.update_many({key("c", "d"): lambda r: seen.append(r)}) == []
        assert seen == [None]
        previous = await backend.write_many(
            {key("c", "e"): rec(5)}, [key("c", "f")], previous=[key("c", "e"), key("c", "f")]
        )
        assert previous == {}
        got = await backend.get_many(list(items), consistent=True)
        assert got == {key("c", "c"): rec(3), key("c", "e"): rec(5)}
        assert await backend.delete_collection("c") == 2

    # -- conditional writes ---------------------------------------------------

    async def test_put_if_absent(self, backend: Backend) -> None:
        assert await backend.put_if(key("c", "k"), rec("first"), expected=None) is None
        with pytest.raises(ConditionFailed) as failed:
            await backend.put_if(key("c", "k"), rec("second", "v2"), expected=None)
        assert failed.value.current == rec("first")
        assert await backend.get_many([key("c", "k")], consistent=True) == {
            key("c", "k"): rec("first")
        }
        assert await backend.list_collections(after=None, limit=10) == ["c"]

    async def test_put_if_version_matches(self, backend: Backend) -> None:
        await self._put(backend, {key("c", "k"): rec("one", "v1")})
        previous = await backend.put_if(key("c", "k"), rec("two", "v2"), expected="v1")
        assert previous == rec("one", "v1")
        with pytest.raises(ConditionFailed) as failed:
            await backend.put_if(key("c", "k"), rec("three", "v3"), expected="v1")
        assert failed.value.current == rec("two", "v2")
        with pytest.raises(ConditionFailed) as absent:
            await backend.put_if(key("c", "nope"), rec("x"), expected="v1")
        assert absent.value.current is None
        got = await backend.get_many([key("c", "k"), key("c", "nope")], consistent=True)
        assert got == {key("c", "k"): rec("two", "v2")}

    async def test_delete_if(self, backend: Backend) -> None:
        await self._put(backend, {key("c", "k"): rec("one", "v1"), key("c", "j"): rec("j")})
        with pytest.raises(ConditionFailed) as failed:
            await backend.delete_if(key("c", "k"), expected="v0")
        assert failed.value.current == rec("one", "v1")
        assert await backend.delete_if(key("c", "k"), expected="v1") == rec("one", "v1")
        with pytest.raises(ConditionFailed) as absent:
            await backend.delete_if(key("c", "k"), expected="v1")
        assert absent.value.current is None
        got = await backend.get_many([key("c", "k"), key("c", "j")], consistent=True)
        assert got == {key("c", "j"): rec("j")}

    # -- listings ---------------------------------------------------------

    async def test_query_orders_by_utf8_bytes(self, backend: Backend) -> None:
        await self._put(backend, {key("c", k): rec(i, f"v{i}") for i, k in enumerate(ODD_KEYS)})
        await self._put(backend, {key("other", "0"): rec(0)})
        got = await backend.query("c", after=None, prefix="", limit=1000, keys_only=False)
        expected = byte_order([encode_key(k) for k in ODD_KEYS])
        assert [item.sk for item in got] == expected
        values = {item.sk: item.record for item in got}
        assert all(values[encode_key(k)] == rec(i, f"v{i}") for i, k in enumerate(ODD_KEYS))
        assert expected.index(encode_key("\uff01")) < expected.index(encode_key("😀"))

    async def test_query_limit_and_after(self, backend: Backend) -> None:
        await self._put(backend, {key("c", k): rec(0) for k in ODD_KEYS})
        order = byte_order([encode_key(k) for k in ODD_KEYS])
        first = await backend.query("c", after=None, prefix="", limit=5, keys_only=False)
        assert [item.sk for item in first] == order[:5]
        rest = await backend.query("c", after=order[10], prefix="", limit=1000, keys_only=False)
        assert [item.sk for item in rest] == order[11:]
        # ``after`` need not be a stored key.
        gap = await backend.query("c", after="sa!", prefix="", limit=3, keys_only=False)
        assert [item.sk for item in gap] == [sk for sk in order if sk > "sa!"][:3]
        assert await backend.query("c", after=order[-1], prefix="", limit=5, keys_only=False) == []
        # An empty ``after`` is before every sort key.
        from_start = await backend.query("c", after="", prefix="", limit=4, keys_only=True)
        assert [item.sk for item in from_start] == order[:4]

    @pytest.mark.parametrize("page", [1, 3, 7, 100])
    async def test_walking_pages_yields_every_item_once(self, backend: Backend, page: int) -> None:
        items = {key("c", k): rec(k) for k in ODD_KEYS}
        await self._put(backend, items)
        seen = await walk(backend, "c", page=page)
        assert [item.sk for item in seen] == byte_order([encode_key(k) for k in ODD_KEYS])
        assert {("c", item.sk): item.record for item in seen} == items

    async def test_query_prefix(self, backend: Backend) -> None:
        await self._put(backend, {key("c", k): rec(0) for k in ODD_KEYS})
        order = byte_order([encode_key(k) for k in ODD_KEYS])
        in_a = [sk for sk in order if sk.startswith("sa")]
        assert len(in_a) >= 6
        prefix = str_prefix("a")
        assert [i.sk for i in await walk(backend, "c", page=2, prefix=prefix)] == in_a
        cases: list[tuple[str | None, list[str]]] = [
            (None, in_a),
            ("s", in_a),  # before the prefix range
            (in_a[2], in_a[3:]),  # inside it
            ("sa\U0010ffff", []),  # past every key with the prefix
            ("sz", []),
        ]
        for after, expected in cases:
            got = await backend.query("c", after=after, prefix=prefix, limit=100, keys_only=False)
            assert [item.sk for item in got] == expected, after
        assert await backend.query("c", after=None, prefix="sq", limit=9, keys_only=False) == []
        numbers = await backend.query("c", after=None, prefix="n", limit=100, keys_only=True)
        assert [decode_key(item.sk) for item in numbers] == [-5, 1e-7, 1, 2.5, 10]  # numeric order

    async def test_numbers_list_in_numeric_order(self, backend: Backend) -> None:
        numbers: list[int | float] = [
            10, 9, -5, 3, 0, -0.5, 1e-300, -1e300, 10**20 + 1, 1e20, 2**53 + 1, 0.1, -10, 1.5,
        ]  # fmt: skip
        await self._put(
            backend, {key("c", n): rec(str(n), float_key=isinstance(n, float)) for n in numbers}
        )
        listed = await walk(backend, "c", page=4)
        keys = [decode_key(item.sk, item.record.float_key) for item in listed]
        assert keys == sorted(numbers)
        assert [orjson.loads(item.record.value) for item in listed] == [str(n) for n in keys]

    # -- transactions -----------------------------------------------------

    @pytest.fixture
    def transactions(self, request: pytest.FixtureRequest) -> None:
        """Skips where the storage implements no transactions (dynalite)."""
        if "dynalite" in request.node.name:
            pytest.skip("dynalite implements no TransactWriteItems")

    async def test_transact_applies_all_or_none(self, backend: Backend, transactions: None) -> None:
        await self._put(backend, {key("a", 1): rec("one", "v1"), key("b", "x"): rec("x", "vx")})
        ops = [
            TxOp(key("a", 1), "put", rec("uno", "v2"), conditional=True, expected="v1"),
            TxOp(key("b", "x"), "delete"),
            TxOp(key("b", "new"), "put", rec("new", "vn"), conditional=True, expected=None),
            TxOp(key("a", 2), "check", conditional=True, expected=None),
        ]
        await backend.transact(ops, token=None)
        found = await backend.get_many(
            [key("a", 1), key("b", "x"), key("b", "new")], consistent=True
        )
        assert found == {key("a", 1): rec("uno", "v2"), key("b", "new"): rec("new", "vn")}

        failing = [
            TxOp(key("a", 3), "put", rec(3, "v3")),
            TxOp(key("b", "new"), "check", conditional=True, expected="v-old"),
            TxOp(key("a", 1), "delete", conditional=True, expected="v2"),
        ]
        with pytest.raises(TransactionFailed) as failed:
            await backend.transact(failing, token=None)
        assert (failed.value.index, failed.value.current) == (1, rec("new", "vn"))
        with pytest.raises(TransactionFailed) as failed:
            await backend.transact(
                [TxOp(key("a", 9), "check", conditional=True, expected="v9")], token=None
            )
        assert (failed.value.index, failed.value.current) == (0, None)
        found = await backend.get_many([key("a", 1), key("a", 3)], consistent=True)
        assert found == {key("a", 1): rec("uno", "v2")}  # nothing of the failed ones

    async def test_transact_patches_what_it_reads(
        self, backend: Backend, transactions: None
    ) -> None:
        """A patch op's update sees the item as stored and its result is
        written with the rest; an update answering None fails the op (with
        the record it saw); one answering the record it got writes nothing
        (the transaction is there already)."""
        far = int(time.time()) + 3600
        await self._put(backend, {key("a", "n"): Record(b"1", "v1", expires_at=far)})

        def plus_one(current: Record | None) -> Record | None:
            if current is None:
                return None
            value = str(int(current.value) + 1).encode()
            return Record(value, "v2", expires_at=current.expires_at)

        ops = [TxOp(key("a", "n"), "patch", update=plus_one), TxOp(key("b", 1), "put", rec(0, "w"))]
        written = await backend.transact(ops, token=None)
        assert written == {key("a", "n"): Record(b"2", "v2", expires_at=far)}
        found = await backend.get_many([key("a", "n"), key("b", 1)], consistent=True)
        assert found == {
            key("a", "n"): Record(b"2", "v2", expires_at=far),
            key("b", 1): rec(0, "w"),
        }

        failing = [
            TxOp(key("b", 2), "put", rec(3, "v3")),
            TxOp(key("a", "n"), "patch", update=lambda current: None),
        ]
        with pytest.raises(TransactionFailed) as failed:
            await backend.transact(failing, token=None)
        assert (failed.value.index, failed.value.current) == (1, Record(b"2", "v2", expires_at=far))
        with pytest.raises(TransactionFailed) as failed:
            await backend.transact([TxOp(key("a", "gone"), "patch", update=plus_one)], token=None)
        assert (failed.value.index, failed.value.current) == (0, None)

        applied = [
            TxOp(key("b", 3), "put", rec(3, "v3")),
            TxOp(key("a", "n"), "patch", update=lambda current: current),
        ]
        assert await backend.transact(applied, token=None) == {
            key("a", "n"): Record(b"2", "v2", expires_at=far)
        }
        found = await backend.get_many([key("b", 2), key("b", 3)], consistent=True)
        assert found == {}

    # -- scans (queries) ----------------------------------------------------

    async def test_scan_filters_with_every_op_as_the_reference_does(self, backend: Backend) -> None:
        await self._put(backend, {key("c", k): rec(v) for k, v in QUERY_ITEMS.items()})
        for where_json, expected in QUERY_CASES:
            where = parse_where(where_json)
            got = await backend.scan(
                "c", after=None, where=where, limit=100, budget=100, keys_only=False
            )
            keys = [decode_key(entry.sk, entry.record.float_key) for entry in got.matches]
            assert keys == expected, where_json
            reference = [k for k, v in QUERY_ITEMS.items() if matches(where, k, v)]
            assert sorted(reference, key=lambda k: encode_key(k).encode()) == expected
            assert (got.scanned, got.done) == (len(QUERY_ITEMS), True)

    async def test_scan_reads_only_the_prefix_after_its_start(self, backend: Backend) -> None:
        await self._put(backend, {key("c", k): rec(k) for k in ("a1", "b1", "b2", "b3", "c1", 5)})
        got = await backend.scan(
            "c", after=None, prefix="sb", where=(), limit=10, budget=10, keys_only=False
        )
        assert [e.sk for e in got.matches] == ["sb1", "sb2", "sb3"]
        assert (got.scanned, got.last_sk, got.done) == (3, "sb3", True)
        got = await backend.scan(
            "c", after="sb1", prefix="sb", where=(), limit=1, budget=10, keys_only=True
        )
        assert ([e.sk for e in got.matches], got.scanned, got.done) == (["sb2"], 1, False)
        got = await backend.scan(
            "c", after="sa1", prefix="", where=(), limit=10, budget=2, keys_only=True
        )
        assert ([e.sk for e in got.matches], got.last_sk, got.done) == (
            ["sb1", "sb2"],
            "sb2",
            False,
        )

    async def test_scan_is_bounded_and_resumes(self, backend: Backend) -> None:
        await self._put(backend, {key("c", i): rec({"even": i % 2 == 0}) for i in range(20)})
        where = parse_where({"even": True})
        seen: list[Key] = []
        after: str | None = None
        pages = []
        while True:
            got = await backend.scan(
                "c", after=after, where=where, limit=3, budget=5, keys_only=True
            )
            assert got.scanned <= 5 and len(got.matches) <= 3
            assert all(entry.record.value == b"" for entry in got.matches)
            seen += [decode_key(entry.sk) for entry in got.matches]
            pages.append((len(got.matches), got.scanned, got.done))
            after = got.last_sk
            if got.done:
                break
        assert seen == list(range(0, 20, 2))
        # Full pages end at their third match; others where the budget ran out.
        assert pages == [(3, 5, False), (2, 5, False), (3, 5, False), (2, 5, True)]
        empty = await backend.scan(
            "c", after=after, where=where, limit=3, budget=5, keys_only=False
        )
        assert (empty.matches, empty.scanned, empty.last_sk, empty.done) == ([], 0, None, True)

    async def test_query_keys_only(self, backend: Backend) -> None:
        await self._put(backend, {key("c", "a"): rec("long value", "va"), key("c", 2.0): rec(2)})
        await backend.write_many({key("c", 2.0): rec(2.0, "vf", float_key=True)}, [], previous=())
        got = await backend.query("c", after=None, prefix="", limit=10, keys_only=True)
        assert got == [
            Listed(encode_key(2.0), Record(b"", "vf", True)),
            Listed(encode_key("a"), Record(b"", "va", False)),
        ]

    async def test_float_keys_round_trip(self, backend: Backend) -> None:
        await self._put(backend, {key("c", 2.0): rec("f", float_key=True), key("c", 3): rec("i")})
        assert key("c", 2.0) == key("c", 2)  # one key space for numbers
        got = await backend.get_many([key("c", 2), key("c", 3)], consistent=True)
        assert got[key("c", 2)].float_key and not got[key("c", 3)].float_key
        listed = await backend.query("c", after=None, prefix="", limit=10, keys_only=False)
        keys = [decode_key(item.sk, item.record.float_key) for item in listed]
        assert keys == [2.0, 3] and isinstance(keys[0], float) and isinstance(keys[1], int)

    async def test_count(self, backend: Backend) -> None:
        await self._put(backend, {key("c", i): rec(i) for i in range(57)})
        await self._put(backend, {key("d", i): rec(i) for i in range(3)})
        assert await backend.count("c") == 57
        await backend.write_many({}, [key("c", i) for i in range(7)], previous=())
        assert (await backend.count("c"), await backend.count("d")) == (50, 3)
        assert await backend.count("none") == 0

    async def test_delete_collection(self, backend: Backend) -> None:
        await self._put(backend, {key("c", i): rec(i) for i in range(40)})
        await self._put(backend, {key("keep", i): rec(i) for i in range(3)})
        assert await backend.delete_collection("c") == 40
        assert await backend.count("c") == 0
        assert await backend.get_many([key("c", i) for i in range(40)], consistent=True) == {}
        assert await backend.query("c", after=None, prefix="", limit=10, keys_only=True) == []
        assert await backend.count("keep") == 3
        assert await backend.list_collections(after=None, limit=10) == ["keep"]
        assert await backend.delete_collection("c") == 0
        # The collection can be filled again and is listed again.
        await self._put(backend, {key("c", "again"): rec(1)})
        assert await backend.list_collections(after=None, limit=10) == ["c", "keep"]

    async def test_list_collections(self, backend: Backend) -> None:
        names = ["gamma", "a_b", "alpha", "a.b", "a-b", "A", "beta", "B9"]
        for name in names:
            await self._put(backend, {key(name, "x"): rec(name), key(name, 1): rec(1)})
        await self._put(backend, {key("emptied", "x"): rec(0)})
        await backend.write_many({}, [key("emptied", "x")], previous=())
        ordered = byte_order(names)
        assert await backend.list_collections(after=None, limit=100) == ordered
        assert await backend.list_collections(after=None, limit=3) == ordered[:3]
        assert await backend.list_collections(after=ordered[2], limit=3) == ordered[3:6]
        assert await backend.list_collections(after="b", limit=100) == [
            n for n in ordered if n > "b"
        ]
        assert await backend.list_collections(after=ordered[-1], limit=3) == []
        assert await backend.list_collections(after="", limit=2) == ordered[:2]
        pages: list[str] = []
        after: str | None = None
        while page := await backend.list_collections(after=after, limit=2):
            pages += page
            after = page[-1]
        assert pages == ordered
