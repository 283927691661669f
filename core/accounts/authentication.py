"""`Authorization: Token KEY` against the hashed tokens, throttled per client address by axes."""

from __future__ import annotations

from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from django.contrib.auth.signals import user_login_failed
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from core.accounts.models import ApiToken
from core.accounts.selectors import token_for_key
from core.accounts.services import token_touch

KEYWORD = "Token"


class TokenLockedOut(exceptions.Throttled):
    default_code = "locked_out"


class ApiTokenAuthentication(BaseAuthentication):
    """A bad key counts as a failed sign-in for the client's address; a locked-out address gets
    429 until its cool-off ends, even with a good key."""

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        words = get_authorization_header(request).split()
        if not words or words[0].lower() != KEYWORD.lower().encode():
            return None
        if len(words) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: send `Authorization: Token KEY`, one key.")
        try:
            key = words[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(
                "Invalid token header: the key has characters a key never has."
            ) from None
        http_request = request._request
        if not AxesProxyHandler.is_allowed(http_request, {}):
            raise self._locked_out()
        token = token_for_key(key=key)
        if token is None or not token.user.is_active:
            # axes listens to this signal and counts the failure against the client's address.
            user_login_failed.send(sender=__name__, credentials={}, request=http_request)
            if not AxesProxyHandler.is_allowed(http_request, {}):
                raise self._locked_out()
            raise exceptions.AuthenticationFailed("Invalid token.")
        token_touch(token=token)
        return (token.user, token)

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD

    @staticmethod
    def _locked_out() -> exceptions.Throttled:
        cool_off = get_cool_off()
        wait = int(cool_off.total_seconds()) if cool_off is not None else None
        return TokenLockedOut(
            wait=wait,
            detail="Too many failed sign-ins from this address; wait for the cool-off to end, then try again.",
        )


class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The schema's description of the header, as drf-spectacular gives DRF's token class."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        definition: dict[str, Any] = build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix=KEYWORD
        )
        return definition
