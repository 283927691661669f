"""Fixtures shared by every app's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from core.conversation.services import session_create
from core.models import AgentSession, ModelRoute, Provider, ProviderKind
from tests.owners import op_user


@pytest.fixture(autouse=True)
def bootstrap_snapshot_forgotten() -> None:
    """Fixtures write configuration rows without the services (which renew the version stamp the
    bootstrap keeps its snapshot by): each test starts with no snapshot kept."""
    from runtime.bootstrap.compose import snapshot_forget

    snapshot_forget()


@pytest.fixture(autouse=True)
def throttle_counts_forgotten() -> None:
    """The turn throttle counts a user's turns in the process's cache, which outlives a test: each
    test starts with none counted, so a long run of turn tests never meets the per-minute limit."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def config_load_record_removed(request: pytest.FixtureRequest) -> Iterator[None]:
    """`load_config` records its outcome in a file per database (under var/), which outlives a test's
    transaction and the bootstrap shows: each database test starts and ends without one."""
    if request.node.get_closest_marker("django_db") is None:
        yield
        return
    request.getfixturevalue("db")  # the test database's settings name the record
    from core.config.selectors import config_load_status_path

    path = config_load_status_path()
    path.unlink(missing_ok=True)
    yield
    path.unlink(missing_ok=True)


@pytest.fixture
def operator(db: None) -> User:
    return op_user()


@pytest.fixture
def api(operator: User) -> APIClient:
    """An API client signed in as the operator."""
    client = APIClient()
    client.force_authenticate(user=operator)
    return client


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()


@pytest.fixture
def replay_route(db: None) -> ModelRoute:
    """An enabled offline provider with the default route (what the example config loads)."""
    provider = Provider.objects.create(name="replay", kind=ProviderKind.REPLAY)
    return ModelRoute.objects.create(
        alias="replay",
        provider=provider,
        model_id="replay-1",
        context_window_tokens=8_000,
        max_output_tokens=1_000,
        is_default=True,
    )


@pytest.fixture
def chat_session(replay_route: ModelRoute, operator: User) -> AgentSession:
    """An active session of the operator on the replay route, created through the service."""
    return session_create(owner=operator, title="test session", route_alias=replay_route.alias)
