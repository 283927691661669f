"""Fixtures for the telemetry tests: a priced route, a session and a run on it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.conversation.services import run_create, session_create
from core.models import AgentSession, ModelRoute, Provider, ProviderKind, Run
from tests.owners import op_user


@pytest.fixture
def priced_route(db: None) -> ModelRoute:
    """An OpenAI route priced 2.50 / 1.25 (cached) / 10.00 USD per million tokens."""
    provider = Provider.objects.create(name="openai", kind=ProviderKind.OPENAI, api_key_env="OPENAI_API_KEY")
    return ModelRoute.objects.create(
        alias="gpt",
        provider=provider,
        model_id="gpt-4o",
        context_window_tokens=128_000,
        max_output_tokens=16_000,
        price_input_per_mtok=Decimal("2.5"),
        price_cached_input_per_mtok=Decimal("1.25"),
        price_output_per_mtok=Decimal("10"),
    )


@pytest.fixture
def usage_session(priced_route: ModelRoute) -> AgentSession:
    return session_create(owner=op_user(), title="usage", route_alias=priced_route.alias)


@pytest.fixture
def usage_run(usage_session: AgentSession) -> Run:
    return run_create(session_id=usage_session.id)
