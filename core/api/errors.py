"""One JSON shape for every API error: `{"detail", "code", "fields"}`.

`fields` maps a dotted path (`parts[0].type`) to its messages, so a client can put each
message beside the input it concerns. Paths and messages are built from the request's own keys
and values, and either may be a credential: every credential-shaped part of a path, a message or
the detail is cut to its prefix (`redact_all`) before the response is written.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponseRedirect
from drf_spectacular.utils import inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.config.secrets import redact_all
from core.errors import DomainError

# The error body in the OpenAPI description (every app's 400, 404 and 409 answers).
ErrorSerializer = inline_serializer(
    name="ApiError",
    fields={
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
        "fields": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
    },
)


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into `{"a.b[0].c": ["message"]}`."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            for sub_key, messages in flatten_errors(value, path).items():
                flat.setdefault(sub_key, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            flat.setdefault(prefix or "non_field_errors", []).extend(str(item) for item in detail)
        else:
            for index, item in enumerate(detail):
                for sub_key, messages in flatten_errors(item, f"{prefix}[{index}]").items():
                    flat.setdefault(sub_key, []).extend(messages)
    else:
        flat.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return flat


def _safe_paths(fields: dict[str, list[str]]) -> dict[str, list[str]]:
    safe: dict[str, list[str]] = {}
    for path, messages in fields.items():
        safe.setdefault(redact_all(path), []).extend(redact_all(str(message)) for message in messages)
    return safe


def _summary(fields: dict[str, list[str]]) -> str:
    return "; ".join(f"{key}: {messages[0]}" for key, messages in fields.items() if messages)


def _browser_sign_in(exc: Exception, context: dict[str, Any]) -> HttpResponseRedirect | None:
    """A signed-out browser page load (GET asking for text/html, no Authorization header) goes to the
    sign-in page (`settings.LOGIN_URL`) and back through `?next=`; API clients keep the JSON 401."""
    request = context.get("request")
    if not isinstance(exc, exceptions.NotAuthenticated) or request is None or request.method not in {"GET", "HEAD"}:
        return None
    if "text/html" not in request.META.get("HTTP_ACCEPT", "") or request.META.get("HTTP_AUTHORIZATION"):
        return None
    return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | HttpResponseRedirect | None:
    sign_in = _browser_sign_in(exc, context)
    if sign_in is not None:
        return sign_in
    if isinstance(exc, DomainError):
        return Response(
            {"detail": redact_all(exc.message), "code": exc.code, "fields": _safe_paths(dict(exc.fields))},
            status=exc.status_code,
        )
    if isinstance(exc, DjangoValidationError):
        fields = _safe_paths(flatten_errors(exc.message_dict if hasattr(exc, "error_dict") else exc.messages))
        return Response(
            {"detail": _summary(fields), "code": "invalid", "fields": fields},
            status=status.HTTP_400_BAD_REQUEST,
        )
    # Django's own 404/403 (an unknown format suffix, get_object_or_404) get the same shape as DRF's.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _safe_paths(flatten_errors(exc.detail))
        response.data = {"detail": _summary(fields) or "Invalid input.", "code": "invalid", "fields": fields}
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = detail.code if isinstance(detail, exceptions.ErrorDetail) else exc.default_code
        response.data = {"detail": redact_all(str(detail)), "code": str(code), "fields": {}}
    return response
