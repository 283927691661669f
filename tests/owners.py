"""The accounts tests own their records with."""

from __future__ import annotations

from django.contrib.auth.models import User

OP_USERNAME = "op"
OP_PASSWORD = "a-long-test-password-123"  # nosec B105: a test account's


def op_user() -> User:
    """The test operator ("op", a superuser; the `operator` fixture's): the owner of records tests make directly."""
    found = User.objects.filter(username=OP_USERNAME).first()
    return found or User.objects.create_superuser(username=OP_USERNAME, password=OP_PASSWORD, email="")


def plain_user(username: str) -> User:
    """A signed-up account that is not staff."""
    found = User.objects.filter(username=username).first()
    return found or User.objects.create_user(username=username, password=OP_PASSWORD + username)
