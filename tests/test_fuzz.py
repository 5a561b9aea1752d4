"""Schema-driven fuzzing of the real service with schemathesis: requests made
from openapi.yaml, valid and invalid, must never get a server error, and every
answer must match the contract (status, content type, headers, body schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from tests.live_service import itemstore_serve, serve

OPENAPI = Path(__file__).resolve().parents[1] / "openapi.yaml"
schema = schemathesis.openapi.from_path(OPENAPI)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with itemstore_serve(tmp_path_factory.mktemp("fuzz")) as url:
        yield url


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_service_keeps_its_contract(case: schemathesis.Case[Any], service: str) -> None:
    # Left out: "schema-valid data is accepted". Some rules are beyond JSON
    # Schema: a key must parse as its key_type (key "abc" with key_type=int is a
    # 400), and a cursor must be one the server gave out.
    case.call_and_validate(base_url=service, excluded_checks=[positive_data_acceptance])


TOKEN = "fuzz-bootstrap-token"


@pytest.fixture(scope="module")
def secured_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("fuzz-keys"), env={"ITEMSTORE_TOKEN": TOKEN}) as served:
        yield served.url


@schema.include(path_regex="^/keys").parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_access_keys_keep_their_contract_for_an_admin(
    case: schemathesis.Case[Any], secured_service: str
) -> None:
    # On the open service above, /keys answers 403; here the admin's calls are
    # made, valid and invalid.
    case.call_and_validate(
        base_url=secured_service,
        headers={"Authorization": f"Bearer {TOKEN}"},
        excluded_checks=[positive_data_acceptance],
    )
