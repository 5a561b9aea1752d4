"""openapi.yaml is the contract: these tests fail when it and the server disagree.

* The document is valid OpenAPI 3.1 and its examples fit their own schemas.
* The routes the app serves and the documented paths/methods match both ways,
  and so do the public (token-free) routes and the limits (the problem codes:
  test_problems.py).
* ``check_answer`` holds one real answer against the document; the tests in
  test_contract_examples.py drive every documented operation through it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from jsonschema import Draft202012Validator
from multidict import CIMultiDictProxy
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from itemstore_service.access.scopes import ROUTE_NEEDS
from itemstore_service.app import create_app
from itemstore_service.config import Config
from itemstore_service.query_parameters import ACCEPTED
from itemstore_service.routes import openapi_document
from itemstore_wire.contract import Limits

SPEC_FILE = Path(__file__).resolve().parents[1] / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))
SPEC_URI = "urn:itemstore:openapi"
REGISTRY: Registry[Any] = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(SPEC))
HTTP_METHODS = ("get", "head", "put", "post", "delete", "patch", "options", "trace")
# Headers whose presence on an answer must be documented for that answer.
TRACKED_HEADERS = ("ETag", "Location", "Retry-After", "Allow", "X-Request-ID", "Preference-Applied")


# -- reading the spec ------------------------------------------------------------


def escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def at(pointer: str) -> Any:
    node: Any = SPEC
    for part in pointer.lstrip("/").split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def deref(pointer: str) -> tuple[str, Any]:
    """The node at ``pointer`` after following ``$ref``s, and where it really is."""
    node = at(pointer)
    while isinstance(node, dict) and "$ref" in node:
        pointer = node["$ref"].removeprefix("#")
        node = at(pointer)
    return pointer, node


def check_schema(instance: Any, pointer: str) -> None:
    """Validate ``instance`` against the schema at ``pointer`` (JSON Schema 2020-12)."""
    validator = Draft202012Validator(
        {"$ref": f"{SPEC_URI}#{pointer}"},
        registry=REGISTRY,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]
    assert not problems, f"does not fit {pointer}: {problems}"


def documented_operations() -> list[tuple[str, str, str]]:
    """(path template, METHOD, operationId) of every documented operation."""
    return [
        (path, method.upper(), item[method]["operationId"])
        for path, item in SPEC["paths"].items()
        for method in HTTP_METHODS
        if method in item
    ]


def query_parameters(path: str, method: str) -> frozenset[str]:
    """The names of the query parameters documented for one operation (its
    own and its path's)."""
    item = SPEC["paths"][path]
    listed = [*item.get("parameters", []), *item[method.lower()].get("parameters", [])]
    resolved = [at(p["$ref"].removeprefix("#")) if "$ref" in p else p for p in listed]
    return frozenset(p["name"] for p in resolved if p["in"] == "query")


def without_implicit_head(pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(path, m) for path, m in pairs if not (m == "HEAD" and (path, "GET") in pairs)}


def walk(node: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """Every dict of the spec with its pointer, not descending into examples."""
    if isinstance(node, dict):
        yield pointer, node
        for key, value in node.items():
            if key not in ("example", "examples"):
                yield from walk(value, f"{pointer}/{escape(str(key))}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{pointer}/{index}")


# -- checking one answer ---------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def check_answer(method: str, template: str, answer: Answer) -> None:
    """``answer`` is documented for this operation, in content type, body and headers."""
    op_pointer = f"/paths/{escape(template)}/{method.lower()}"
    documented = at(op_pointer)["responses"]
    assert str(answer.status) in documented, (
        f"{method} {template} answered {answer.status}, not documented: {answer.body[:300]!r}"
    )
    pointer, response = deref(f"{op_pointer}/responses/{answer.status}")
    declared = {name.lower(): name for name in response.get("headers", {})}
    for lowered, name in declared.items():
        header_pointer, header = deref(f"{pointer}/headers/{escape(name)}")
        if lowered in answer.headers:
            check_schema(answer.headers[lowered], f"{header_pointer}/schema")
        else:
            assert not header.get("required"), f"{method} {template} lacks header {name}"
    for name in TRACKED_HEADERS:
        assert name.lower() not in answer.headers or name.lower() in declared, (
            f"{method} {template} {answer.status} sends {name}, which is not documented"
        )
    content = response.get("content")
    if method == "HEAD" or content is None:
        assert answer.body == b""
        return
    media_type = answer.headers.get("Content-Type", "").split(";")[0].strip()
    assert media_type in content, f"{method} {template}: {media_type!r} is not documented"
    if not media_type.endswith("json"):
        assert answer.body
        return
    document = answer.json()
    check_schema(document, f"{pointer}/content/{escape(media_type)}/schema")
    if media_type == "application/problem+json":
        assert document["status"] == answer.status
        assert document["type"] == f"urn:itemstore:problem:{document['code']}"


# -- the document itself ---------------------------------------------------------


def test_spec_is_valid_openapi_3_1() -> None:
    assert SPEC["openapi"].startswith("3.1.")
    validate(SPEC, cls=OpenAPIV31SpecValidator)


def test_the_package_carries_this_document() -> None:
    # The package's openapi.yaml links to the repository's; a copy would drift.
    assert openapi_document() == SPEC_FILE.read_bytes()


def test_served_routes_and_documented_operations_match(sqlite_config: Config) -> None:
    app = create_app(sqlite_config)
    served = {
        (route.resource.canonical, route.method)
        for route in app.router.routes()
        if route.resource is not None
    }
    documented = {(path, method) for path, method, _ in documented_operations()}
    served_only = without_implicit_head(served) - without_implicit_head(documented)
    documented_only = documented - served
    assert not served_only, f"served but not in openapi.yaml: {sorted(served_only)}"
    assert not documented_only, f"in openapi.yaml but not served: {sorted(documented_only)}"


def test_accepted_query_parameters_are_the_documented_ones() -> None:
    documented = {
        (method, path): query_parameters(path, method)
        for path, method, _ in documented_operations()
    }
    for (method, path), names in documented.items():
        accepted = ACCEPTED["GET" if method == "HEAD" else method, path]
        assert names == accepted, f"{method} {path}: documented {names}, accepted {accepted}"
    assert set(ACCEPTED) <= set(documented)


def test_public_routes_are_the_ones_documented_without_security() -> None:
    public = {
        path
        for path, method, _ in documented_operations()
        if at(f"/paths/{escape(path)}/{method.lower()}").get("security") == []
    }
    assert public == {path for (_, path), need in ROUTE_NEEDS.items() if need.scope is None}


def test_examples_fit_their_schemas() -> None:
    checked = 0
    for pointer, node in walk(SPEC):
        if "schema" in node:
            target = f"{pointer}/schema"
            examples = [node["example"]] if "example" in node else []
            examples += [e["value"] for e in node.get("examples", {}).values() if "value" in e]
        elif isinstance(node.get("examples"), list):
            target, examples = pointer, node["examples"]
        else:
            continue
        for example in examples:
            check_schema(example, target)
            checked += 1
    assert checked >= 30


def test_documented_limits_are_the_server_defaults() -> None:
    limits = dataclasses.asdict(Limits())
    schema = SPEC["components"]["schemas"]["Limits"]
    assert set(schema["required"]) == set(limits)
    assert {name: prop["default"] for name, prop in schema["properties"].items()} == limits
    page = SPEC["components"]["parameters"]["Limit"]["schema"]
    assert (page["maximum"], page["default"]) == (
        limits["max_page_size"],
        limits["default_page_size"],
    )
    ops = SPEC["components"]["schemas"]["BatchRequest"]["properties"]["ops"]
    assert ops["maxItems"] == limits["max_batch_ops"]
