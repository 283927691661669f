"""Fixtures of the MCP client tests: a fresh gateway per test, MCP server records, the npm servers."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from core.config.contracts import McpServerConfig
from core.config.services import config_record_create
from core.models import McpServerSpec
from runtime.mcp.gateway import McpGateway
from tests.runtime.mcp.servers import EVERYTHING, PY_SERVER, npm_servers


@pytest.fixture(scope="session")
def npm_installed() -> None:
    """The reference server and the conformance suite, installed from the npm registry by the project's script."""
    npm_servers()


@pytest.fixture
def gateway() -> Iterator[McpGateway]:
    """A gateway of the test's own (the process-wide one is left alone); its servers are stopped after."""
    made = McpGateway()
    try:
        yield made
    finally:
        made.close()


def server_record(name: str, **fields: object) -> McpServerSpec:
    """An MCP server record written through the configuration service, as `load_config` writes it."""
    config_record_create(record=McpServerConfig(name=name, **fields))  # type: ignore[arg-type]
    return McpServerSpec.objects.get(name=name)


def py_stdio(name: str = "py", *, args: tuple[str, ...] = (), **fields: object) -> McpServerSpec:
    """The SDK-written test server over stdio."""
    return server_record(
        name, transport="stdio", command=sys.executable, args=(str(PY_SERVER), "stdio", *args), **fields
    )


def everything_stdio(name: str = "everything", **fields: object) -> McpServerSpec:
    """The reference server over stdio (node on PATH)."""
    return server_record(name, transport="stdio", command="node", args=(str(EVERYTHING), "stdio"), **fields)
