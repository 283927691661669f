"""Fixtures shared by every app's tests."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient


@pytest.fixture
def operator(db: None) -> User:
    return User.objects.create_superuser(username="op", password="a-long-test-password-123", email="")


@pytest.fixture
def api(operator: User) -> APIClient:
    """An API client signed in as the operator."""
    client = APIClient()
    client.force_authenticate(user=operator)
    return client


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()
