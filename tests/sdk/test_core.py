"""The sans-I/O core alone: requests it builds and answers it decodes, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import unquote, urlsplit

import orjson
import pytest

from itemstore import PreconditionFailed, Unauthorized, Unavailable, ValidationError
from itemstore._batch import BatchOp, split_ops
from itemstore._keys import check_key, key_tag, path_segment
from itemstore._protocol import Core, Response, problem_error
from itemstore._retry import Replay, RetryPolicy, parse_retry_after
from itemstore.errors import ItemstoreError
from itemstore_wire.contract import Limits, key_type

CORE = Core("http://example.test:9000/", token="tok")


def problem(status: int, code: str, **extra: object) -> Response:
    body = {"type": f"urn:itemstore:problem:{code}", "title": code, "status": status}
    body |= {"detail": f"detail of {code}", "code": code, **extra}
    return Response(status, {"Content-Type": "application/problem+json"}, orjson.dumps(body))


@pytest.mark.parametrize(
    ("key", "segment"),
    [
        ("plain", "plain"),
        ("a/b", "a%2Fb"),
        ("what?#", "what%3F%23"),
        ("100%", "100%25"),
        ("a b", "a%20b"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("é", "%C3%A9"),
        ("{id}", "%7Bid%7D"),
        (42, "42"),
        (-7, "-7"),
        (1.5, "1%2E5"),
        (1e20, "1e%2B20"),
        (True, "true"),
        (False, "false"),
    ],
)
def test_key_is_one_path_segment(key: str | int | float | bool, segment: str) -> None:
    assert path_segment(key) == segment
    assert "/" not in segment and "?" not in segment and "#" not in segment


def test_key_types_and_tags_keep_bool_apart_from_numbers() -> None:
    assert [key_type(k) for k in ("1", 1, 1.0, True)] == ["str", "int", "float", "bool"]
    assert key_tag(1) == key_tag(1.0)
    assert len({key_tag(k) for k in ("1", 1, True)}) == 3
    with pytest.raises(TypeError):
        check_key((1, 2))
    with pytest.raises(ValidationError) as info:
        check_key(float("nan"))
    assert info.value.code == "invalid-key"


def test_get_request_carries_type_token_and_encoded_key() -> None:
    call = CORE.get("users", "a/b.c", consistent=True)
    req = call.request
    parts = urlsplit(req.url)
    assert req.method == "GET"
    assert parts.netloc == "example.test:9000"
    assert parts.path == "/collections/users/items/a%2Fb%2Ec"
    assert unquote(parts.path.rsplit("/", 1)[1]) == "a/b.c"
    assert parts.query == "key_type=str&consistent=true"
    assert req.headers["Authorization"] == "Bearer tok"
    assert req.body is None and req.replay is Replay.SAFE


def test_get_decodes_value_etag_and_missing() -> None:
    call = CORE.get("users", 3)
    item = call.decode(Response(200, {"ETag": '"v1"'}, b'{"a":[1,2]}'))
    assert item is not None and item.value == {"a": [1, 2]} and item.etag == '"v1"'
    assert call.decode(problem(404, "item-not-found")) is None
    # an unknown route is an error, not a missing item
    with pytest.raises(ItemstoreError) as info:
        call.decode(problem(404, "not-found"))
    assert info.value.code == "not-found"


def test_conditional_puts_and_setdefault() -> None:
    plain = CORE.put("c", 1.5, b"[]")
    assert plain.request.replay is Replay.SAFE
    assert plain.request.headers["Content-Type"] == "application/json"
    assert "key_type=float" in plain.request.url
    assert plain.decode(Response(201, {"ETag": '"e"'}, b'{"key":1.5,"etag":"\\"e\\""}')) == (
        True,
        '"e"',
    )
    cas = CORE.put("c", "k", b"1", if_match='"e"')
    assert cas.request.headers["If-Match"] == '"e"' and cas.request.replay is Replay.IF_NOT_APPLIED

    sd = CORE.setdefault("c", "k", [1])
    assert sd.request.headers["If-None-Match"] == "*"
    assert sd.request.body == b"[1]"
    assert sd.decode(Response(201, {"ETag": '"e"'}, b'{"key":"k","etag":"\\"e\\""}')) == [1]
    assert sd.decode(problem(412, "precondition-failed", current={"x": 1}, etag='"o"')) == {"x": 1}


def test_delete_decodes_removed_value() -> None:
    call = CORE.delete("c", False)
    assert call.request.method == "DELETE" and "key_type=bool" in call.request.url
    item = call.decode(Response(200, {"ETag": '"z"'}, b"null"))
    assert item is not None and item.value is None
    assert call.decode(problem(404, "item-not-found")) is None


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "invalid-json", ValidationError),
        (413, "value-too-large", ValidationError),
        (415, "unsupported-media-type", ValidationError),
        (401, "unauthorized", Unauthorized),
        (412, "precondition-failed", PreconditionFailed),
        (503, "backend-unavailable", Unavailable),
        (500, "internal-error", ItemstoreError),
    ],
)
def test_problem_bodies_become_typed_errors(
    status: int, code: str, kind: type[ItemstoreError]
) -> None:
    error = problem_error(problem(status, code, errors=[{"index": 0}]), "http://x/y")
    assert type(error) is kind
    assert (error.status, error.code, error.detail) == (status, code, f"detail of {code}")
    assert error.extras["errors"] == [{"index": 0}]


def test_non_problem_answer_names_the_url() -> None:
    error = problem_error(Response(502, {}, b"<html>bad gateway</html>"), "http://x/y")
    assert isinstance(error, Unavailable)
    assert "http://x/y" in error.detail and "bad gateway" in error.detail


def test_precondition_failed_exposes_current_and_etag() -> None:
    error = problem_error(problem(412, "precondition-failed", current=None, etag=None), "u")
    assert isinstance(error, PreconditionFailed)
    assert error.current is None and error.etag is None


def test_batch_body_and_replay_class() -> None:
    ops = [BatchOp("put", "a", b'{"x":1}'), BatchOp("get", 2)]
    call = CORE.batch("c", ops)
    assert orjson.loads(call.request.body or b"") == {
        "ops": [{"op": "put", "key": "a", "value": {"x": 1}}, {"op": "get", "key": 2}]
    }
    assert call.request.replay is Replay.SAFE
    assert CORE.batch("c", [BatchOp("delete", True)]).request.replay is Replay.IF_NOT_APPLIED
    results = call.decode(
        Response(200, {}, b'{"results":[{"status":201,"etag":"e"},{"status":404}]}')
    )
    assert [(r.status, r.etag) for r in results] == [(201, "e"), (404, None)]
    with pytest.raises(Unavailable):
        call.decode(Response(200, {}, b'{"results":[{"status":503,"detail":"later"}]}'))


def test_split_ops_keeps_order_and_limits() -> None:
    ops = [BatchOp("put", i, b"0") for i in range(250)]
    chunks = split_ops(ops, 100, 10**6)
    assert [len(c) for c in chunks] == [100, 100, 50]
    assert [op for c in chunks for op in c] == ops
    small = split_ops(ops, 100, 200)
    assert all(sum(len(op.encoded) + 1 for op in c) <= 200 for c in small)
    assert [op for c in small for op in c] == ops


def test_limits_from_info_ignore_unknown_fields() -> None:
    limits = Limits.from_info({"limits": {"max_batch_ops": 7, "new_limit": 1}})
    assert limits.max_batch_ops == 7 and limits.max_page_size == 1000


def test_invalid_names_and_urls_fail_before_sending() -> None:
    with pytest.raises(ValidationError):
        CORE.get("no/slash", "k")
    with pytest.raises(ValueError):
        Core("ftp://example.test")


def problem_body(code: str, detail: str) -> bytes:
    return orjson.dumps({"status": 503, "code": code, "detail": detail})


MAY_HAVE_BEEN_APPLIED = problem_body(
    "backend-unavailable", "no answer from storage; the write may have been applied"
)
NOT_APPLIED = problem_body(
    "backend-unavailable", "no answer from storage; the write was not applied"
)
OVERLOADED = problem_body("overloaded", "this worker is handling 128 requests, its limit")


def test_retry_policy_by_replay_class() -> None:
    policy = RetryPolicy(retries=2, backoff=0.01, max_backoff=0.02, max_retry_after=5)
    # connection never opened: anything may be sent again
    for replay in Replay:
        assert policy.after_failure(replay, "connect", 0) is not None
    # broken after sending: only what is safe to replay
    assert policy.after_failure(Replay.SAFE, "io", 0) is not None
    assert policy.after_failure(Replay.IF_NOT_APPLIED, "io", 0) is None
    assert policy.after_failure(Replay.NEVER, "io", 0) is None
    # other statuses never
    assert policy.after_status(Replay.SAFE, 500, None, 0) is None
    # 429/503 answers: what is safe to replay, and the rest only when not applied
    assert policy.after_status(Replay.SAFE, 503, None, 0) is not None
    for replay in (Replay.IF_NOT_APPLIED, Replay.NEVER):
        assert policy.after_status(replay, 503, None, 0) is None  # who knows
        assert policy.after_status(replay, 429, None, 0, body=OVERLOADED) is not None
        for body in (MAY_HAVE_BEEN_APPLIED, b"<html>Service Unavailable</html>"):
            assert policy.after_status(replay, 503, None, 0, body=body) is None
        for body in (NOT_APPLIED, OVERLOADED):
            assert policy.after_status(replay, 503, None, 0, body=body) is not None
    # bounded
    assert policy.after_status(Replay.SAFE, 429, None, 2) is None
    assert policy.after_failure(Replay.SAFE, "connect", 2) is None
    delay = policy.after_status(Replay.SAFE, 503, None, 1)
    assert delay is not None and 0.01 <= delay <= 0.02
    # Retry-After is honoured, unless it asks for too long
    assert policy.after_status(Replay.SAFE, 503, "3", 0) == 3.0
    assert policy.after_status(Replay.SAFE, 503, "60", 0) is None


def test_retries_fit_in_the_total_time_budget() -> None:
    policy = RetryPolicy(retries=10, backoff=0.5, max_backoff=0.5, total=2.0)
    assert policy.after_status(Replay.SAFE, 503, "1", 0, elapsed=0.5) == 1.0
    assert policy.after_status(Replay.SAFE, 503, "1", 3, elapsed=1.5) is None  # would end at 2.5
    assert policy.after_failure(Replay.SAFE, "connect", 0, elapsed=1.0) is not None
    assert policy.after_failure(Replay.SAFE, "connect", 0, elapsed=1.9) is None
    assert RetryPolicy().total == 5.0  # a few seconds unless told


def test_retry_after_http_date() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=4), usegmt=True), now) == 4.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
