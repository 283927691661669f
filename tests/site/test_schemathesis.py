"""Property-based API check: every operation of the OpenAPI schema, signed in, against the WSGI app.

Schemathesis generates requests from the schema (valid and invalid ones) for each endpoint and
method, sends them in-process to Django's WSGI application with a token, and checks that no
response is a 5xx, that every status code is documented, and that every body matches its schema.
Examples are bounded and derandomized so a run is reproducible; the database holds the example
configuration, a session with a replay turn and a memory, so lists and details return real rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from core.accounts.services import token_create
from core.api.fields import INT64_MAX, INT64_MIN
from core.config.loading import config_file_read
from core.config.services import config_document_apply
from core.conversation.services import session_create
from memory.services import memory_write
from runtime.turns import turn_run
from tests.owners import op_user

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES_PER_OPERATION = 25
CHECKS = [not_a_server_error, response_schema_conformance]
HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


def _openapi() -> dict[str, object]:
    document: dict[str, object] = SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    return document


def _int64_bounded(node: object) -> None:
    """Give every unbounded integer the 64-bit range the API promises, so that the coverage phase
    sends the values just outside it (2**63, -2**63 - 1): each must be a 400 naming the field."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            node.setdefault("minimum", INT64_MIN)
            node.setdefault("maximum", INT64_MAX)
        for child in node.values():
            _int64_bounded(child)
    elif isinstance(node, list):
        for child in node:
            _int64_bounded(child)


def _fuzzed_openapi() -> dict[str, object]:
    document = _openapi()
    _int64_bounded(document)
    return document


schema = schemathesis.openapi.from_dict(_fuzzed_openapi())
schema.app = get_wsgi_application()


@pytest.fixture
def token(operator: User) -> str:
    """The operator's API token, with a realistic database behind it."""
    config_document_apply(document=config_file_read(ROOT / "config" / "agentchat.example.toml"), prune=False)
    session = session_create(owner=op_user(), title="schemathesis", route_alias="replay")
    turn_run(session_id=session.pk, user_text="hello")
    memory_write(owner=op_user(), kind="fact", content="The operator prefers short answers.", pinned=True)
    key: str = token_create(user=operator, name="schemathesis").key
    return key


@pytest.fixture(autouse=True)
def keep_test_connection() -> Iterator[None]:
    """Requests run inside the test's transaction: do not let Django close the connection after each one."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: Any, token: str) -> None:
    response = case.call(headers={"Authorization": f"Token {token}", "Host": "localhost"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}"
    case.validate_response(response, checks=CHECKS)


# The operations the hostile-input defects were found in: the run must keep generating requests for them.
MUST_COVER = {
    ("GET", "/api/memory/attachments/"),
    ("POST", "/api/memory/attachments/"),
    ("POST", "/api/memory/long-term/"),
    # Configuration is read-only over the API now (the file is its source of truth): its records
    # are still generated for reading.
    ("GET", "/api/config/providers/{name}/"),
    ("GET", "/api/config/skills/{name}/"),
}


def test_the_run_covers_every_operation_of_the_schema() -> None:
    paths: dict[str, dict[str, object]] = _openapi()["paths"]  # type: ignore[assignment]
    in_schema = {(method.upper(), path) for path, item in paths.items() for method in item if method in HTTP_METHODS}
    generated: set[tuple[str, str]] = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # every operation of the schema can be generated
        generated.add((result.ok().method.upper(), result.ok().path))
    assert in_schema >= MUST_COVER
    assert generated == in_schema
    # Bodies are generated for every media type the schema declares, form and multipart included.
    body_types = {
        media
        for item in paths.values()
        for method, operation in item.items()
        if method in HTTP_METHODS and isinstance(operation, dict)
        for media in operation.get("requestBody", {}).get("content", {})
    }
    assert {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"} <= body_types
