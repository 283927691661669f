"""Account writes: the local operator account that `make run` makes sure exists, and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.accounts.models import ApiToken
from core.errors import InvalidInputError, NotFoundError

TOKEN_NAME_MAX = 100
TOKEN_PREFIX_LENGTH = 8
# A token's `last_used` is written at most this often, so a busy client costs no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class OperatorResult:
    username: str
    created: bool
    generated_password: str | None
    # True when the account existed without a usable password and got its first one (`created` too).
    password_set: bool = False


def operator_ensure(*, username: str, password: str | None) -> OperatorResult:
    """Create the superuser `username` once; never touch an existing account that has a password.

    An account without a usable password (the one the ownership migration creates to hold the
    records made before accounts existed) gets its first password here, as a new one would.

    With no password given, a random one is generated and returned so the caller can show it once.
    """
    if not username.strip():
        raise InvalidInputError.for_field("username", "empty; give the operator's user name")
    user_model = get_user_model()
    with transaction.atomic():
        existing = user_model._default_manager.select_for_update().filter(username=username).first()
        if existing is not None and existing.has_usable_password():
            return OperatorResult(username=username, created=False, generated_password=None)
        generated = None
        if password is None:
            generated = secrets.token_urlsafe(18)
            password = generated
        candidate = user_model(username=username)
        try:
            validate_password(password, user=candidate)
        except ValidationError as exc:
            raise InvalidInputError.for_field(
                "AGENTCHAT_OPERATOR_PASSWORD", " ".join(exc.messages) + " Choose a stronger password."
            ) from None
        if existing is not None:
            # Made by the ownership migration to hold the records that existed before accounts did:
            # it has no password yet, so this is its first one.
            existing.set_password(password)
            existing.save(update_fields=["password"])
        else:
            user_model._default_manager.create_superuser(username=username, password=password, email="")
    return OperatorResult(
        username=username, created=True, generated_password=generated, password_set=existing is not None
    )


@dataclass(frozen=True)
class TokenCreated:
    token: ApiToken
    key: str


def token_key_hash(key: str) -> str:
    """The SHA-256 (hex) under which a key is stored and looked up."""
    return hashlib.sha256(key.encode()).hexdigest()


def token_create(*, user: AbstractBaseUser, name: str, revoke_others: bool = False) -> TokenCreated:
    """Issue a new key for `user`; the clear key is returned here once and stored only hashed.

    With `revoke_others`, the user's existing tokens are revoked in the same transaction.
    """
    name = name.strip()
    if not name:
        raise InvalidInputError.for_field("name", "empty; give the token a name, such as laptop or ci")
    if len(name) > TOKEN_NAME_MAX:
        raise InvalidInputError.for_field("name", f"longer than {TOKEN_NAME_MAX} characters; shorten it")
    key = secrets.token_hex(20)
    with transaction.atomic():
        if revoke_others:
            ApiToken.objects.filter(user_id=user.pk).delete()
        token = ApiToken.objects.create(
            user_id=user.pk, name=name, key_sha256=token_key_hash(key), prefix=key[:TOKEN_PREFIX_LENGTH]
        )
    return TokenCreated(token=token, key=key)


def token_revoke(*, user: AbstractBaseUser, token_id: int) -> None:
    """Delete one of `user`'s tokens; another user's token is not found, as a missing one is."""
    with transaction.atomic():
        deleted, _ = ApiToken.objects.filter(pk=token_id, user_id=user.pk).delete()
    if not deleted:
        raise NotFoundError(f"No API token {token_id} of yours; list yours at /api/auth/tokens/.")


def token_touch(*, token: ApiToken) -> None:
    """Record that `token` was used: one conditional UPDATE, at most once a `LAST_USED_RESOLUTION`."""
    now = timezone.now()
    if token.last_used is not None and now - token.last_used < LAST_USED_RESOLUTION:
        return
    stale = Q(last_used__isnull=True) | Q(last_used__lt=now - LAST_USED_RESOLUTION)
    with transaction.atomic():
        ApiToken.objects.filter(stale, pk=token.pk).update(last_used=now)
    token.last_used = now
