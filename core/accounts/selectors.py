"""Account reads: a user's API tokens, and the token a presented key belongs to."""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet

from core.accounts.models import ApiToken
from core.accounts.services import token_key_hash


def token_list(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """`user`'s tokens, newest first."""
    return ApiToken.objects.filter(user_id=user.pk).order_by("-created", "-id")


def token_for_key(*, key: str) -> ApiToken | None:
    """The token whose key is `key`, with its user (one query), or None."""
    return ApiToken.objects.select_related("user").filter(key_sha256=token_key_hash(key)).first()


OPERATOR_USERNAME_DEFAULT = "operator"


def operator_username() -> str:
    """The operator account's name: AGENTCHAT_OPERATOR_USERNAME, or 'operator'."""
    return os.environ.get("AGENTCHAT_OPERATOR_USERNAME", "").strip() or OPERATOR_USERNAME_DEFAULT


def user_by_username(*, username: str) -> AbstractBaseUser | None:
    """The account named `username`, or None."""
    user_model = get_user_model()
    found: AbstractBaseUser | None = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
    return found
