"""The error table (problems.PROBLEMS): every error class has a row, and the
rows say what openapi.yaml and the README's errors table say."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

from itemstore_service import errors, problems
from itemstore_service.backends.base import Record
from itemstore_service.problems import PROBLEMS, Problem, from_error, problem_for

ROOT = Path(__file__).resolve().parents[1]
SPEC: dict[str, Any] = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
README = (ROOT / "README.md").read_text(encoding="utf-8")


def error_classes(base: type[errors.ItemstoreError]) -> Iterator[type[errors.ItemstoreError]]:
    """``base`` and every subclass the service defines (in errors or problems)."""
    if base.__module__ in (errors.__name__, problems.__name__):
        yield base
    for sub in base.__subclasses__():
        yield from error_classes(sub)


def test_every_error_class_has_a_row_of_its_own_and_codes_are_distinct() -> None:
    classes = set(error_classes(errors.ItemstoreError))
    assert len(classes) >= 16
    assert classes == set(PROBLEMS)
    codes = [row.code for row in PROBLEMS.values()]
    assert len(codes) == len(set(codes))
    for cls in classes:
        assert problem_for(cls) is PROBLEMS[cls]


def test_a_class_without_a_row_answers_as_its_nearest_ancestor() -> None:
    class OddKey(errors.InvalidKey):
        pass

    class Gone(errors.ShuttingDown):
        pass

    assert problem_for(OddKey) == Problem(400, "invalid-key", "Invalid key")
    assert problem_for(Gone) is PROBLEMS[errors.ShuttingDown]


def test_problem_codes_are_the_documented_codes() -> None:
    documented = SPEC["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
    assert sorted(documented) == sorted(row.code for row in PROBLEMS.values())


def documented_problem_responses() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, response in SPEC["components"]["responses"].items():
        if "application/problem+json" in response.get("content", {}):
            yield name, response


def test_rows_match_the_documented_problem_responses() -> None:
    """Each problem response of openapi.yaml: its status, codes, example
    titles and Retry-After header are those of the table."""
    by_code = {row.code: row for row in PROBLEMS.values()}
    seen: set[str] = set()
    for name, response in documented_problem_responses():
        content = response["content"]["application/problem+json"]
        narrowed = content["schema"]["allOf"][1]["properties"]
        status = narrowed["status"]["const"]
        codes = narrowed["code"].get("enum") or [narrowed["code"]["const"]]
        for code in codes:
            row = by_code[code]
            assert row.status == status, f"{name}: {code}"
            assert (row.retry_after is not None) == ("Retry-After" in response["headers"]), name
        examples = [content["example"]] if "example" in content else []
        examples += [e["value"] for e in content.get("examples", {}).values()]
        for example in examples:
            assert (example["status"], example["title"]) == (
                by_code[example["code"]].status,
                by_code[example["code"]].title,
            ), name
        seen.update(codes)
    # Only the catch-all 500 has no response of its own in the document.
    assert {row.code for row in PROBLEMS.values()} - seen == {"internal-error"}


def test_rows_match_the_readme_errors_table() -> None:
    rows = re.findall(r"^\| (\d{3}) \| ((?:`[a-z-]+`(?:, )?)+) \|", README, re.MULTILINE)
    readme = {
        code: int(status) for status, codes in rows for code in re.findall(r"`([^`]+)`", codes)
    }
    table = {row.code: row.status for row in PROBLEMS.values() if row.code != "internal-error"}
    assert readme == table


def body_of(response: web.Response) -> bytes:
    assert isinstance(response.body, bytes)
    return response.body


def test_a_precondition_failure_carries_the_current_value_and_etag() -> None:
    current = Record(b'{"n": 1.50}', "3f2a")
    present = from_error(errors.PreconditionFailed("not in the expected state", current))
    assert present.status == 412
    assert b'"current":{"n": 1.50},"etag":"\\"3f2a\\""' in body_of(present)  # bytes as stored

    absent = from_error(errors.PreconditionFailed("does not exist", None))
    body = orjson.loads(body_of(absent))
    assert (body["code"], body["current"], body["etag"]) == ("precondition-failed", None, None)


def test_unavailable_answers_ask_for_a_retry_and_others_do_not() -> None:
    for error in (errors.BackendUnavailable("down"), errors.ShuttingDown("stopping")):
        response = from_error(error)
        assert (response.status, response.headers["Retry-After"]) == (503, "1")
    assert "Retry-After" not in from_error(errors.ItemNotFound("gone")).headers


def test_an_unexpected_error_answers_the_catch_all_row() -> None:
    body = orjson.loads(body_of(from_error(errors.ItemstoreError("see the log"))))
    assert body == {
        "type": "urn:itemstore:problem:internal-error",
        "title": "Internal error",
        "status": 500,
        "detail": "see the log",
        "code": "internal-error",
    }
