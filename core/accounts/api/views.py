"""The signed-in user's API tokens: list, create (the key shown once), revoke."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from core.accounts.api.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
)
from core.accounts.models import ApiToken
from core.accounts.selectors import token_list
from core.accounts.services import token_create, token_revoke
from core.api.errors import ErrorSerializer
from core.errors import NotFoundError

TOKEN_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The token id")


@extend_schema_view(
    list=extend_schema(summary="Your API tokens (never their keys)", tags=["auth"]),
    create=extend_schema(
        summary="Create an API token; the answer shows its key, this once",
        tags=["auth"],
        request=ApiTokenCreateSerializer,
        responses={
            201: ApiTokenCreatedSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Invalid input"),
        },
    ),
    destroy=extend_schema(
        summary="Revoke one of your API tokens",
        tags=["auth"],
        parameters=[TOKEN_ID],
        responses={
            204: None,
            404: OpenApiResponse(ErrorSerializer, description="No such token of yours"),
        },
    ),
)
class ApiTokenViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[ApiToken]):
    serializer_class = ApiTokenSerializer

    def get_queryset(self) -> QuerySet[ApiToken]:
        return token_list(user=self.request.user)  # type: ignore[arg-type]

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = ApiTokenCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        created = token_create(user=request.user, name=form.validated_data["name"])  # type: ignore[arg-type]
        body = ApiTokenCreatedSerializer(created.token).data
        return Response({**body, "key": created.key}, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            token_id = int(str(kwargs["pk"]))
        except ValueError:
            raise NotFoundError(f"No API token {kwargs['pk']!r}; token ids are whole numbers.") from None
        token_revoke(user=request.user, token_id=token_id)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)
