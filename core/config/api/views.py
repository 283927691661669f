"""The configuration API: list, retrieve, create, update and delete each kind of record, by name.

Records are addressed by name (routes by alias), as the configuration file refers to them. A
body is checked by `core.config.validation` (the same checks as `load_config`), written by
`core.config.services`, and answered with the stored record. Deleting a record that something
refers to is a 409 naming what refers to it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from core.config.api.serializers import (
    AgentInputSerializer,
    AgentSerializer,
    McpServerInputSerializer,
    McpServerSerializer,
    ProviderInputSerializer,
    ProviderSerializer,
    ReadinessReportSerializer,
    RouteInputSerializer,
    RouteSerializer,
    SkillInputSerializer,
    SkillSerializer,
    TeamInputSerializer,
    TeamSerializer,
    ToolInputSerializer,
    ToolSerializer,
)
from core.config.contracts import Kind
from core.config.selectors import config_instance_get, config_queryset, config_readiness, config_record_get
from core.config.services import config_record_create, config_record_delete, config_record_update
from core.config.validation import record_from_raw


class ConfigRecordViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[Any]):
    """One kind of configuration record; subclasses set `kind` and the serializer."""

    kind: ClassVar[Kind]
    lookup_value_regex = "[-a-zA-Z0-9_]+"

    def get_queryset(self) -> QuerySet[Any]:
        return config_queryset(self.kind)

    def _shaped(self, key: str, status_code: int = status.HTTP_200_OK) -> Response:
        return Response(self.get_serializer(config_instance_get(self.kind, key)).data, status=status_code)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._shaped(kwargs[self.lookup_field])

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        record = record_from_raw(self.kind, request.data)
        config_record_create(record=record)
        return self._shaped(record.key, status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = kwargs[self.lookup_field]
        base = config_record_get(self.kind, key) if kwargs.get("partial") else None
        if base is None:
            config_instance_get(self.kind, key)  # 404 before reporting problems with the body
        record = record_from_raw(self.kind, request.data, base=base)
        config_record_update(kind=self.kind, key=key, record=record)
        return self._shaped(record.key)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        config_record_delete(kind=self.kind, key=kwargs[self.lookup_field])
        return Response(status=status.HTTP_204_NO_CONTENT)


def _documented(kind: Kind, output: type[BaseSerializer[Any]], body: type[BaseSerializer[Any]]) -> Any:
    """The OpenAPI description of one record kind's endpoints."""
    key = OpenApiParameter(
        kind.key_field, str, OpenApiParameter.PATH, description=f"the {kind.label}'s {kind.key_field}"
    )
    conflict = {409: None}
    return extend_schema_view(
        list=extend_schema(summary=f"List {kind.value.replace('_', ' ')}"),
        retrieve=extend_schema(summary=f"One {kind.label}", parameters=[key]),
        create=extend_schema(summary=f"Create a {kind.label}", request=body, responses={201: output}),
        update=extend_schema(
            summary=f"Replace a {kind.label}", parameters=[key], request=body, responses={200: output}
        ),
        partial_update=extend_schema(
            summary=f"Change some fields of a {kind.label}", parameters=[key], request=body, responses={200: output}
        ),
        destroy=extend_schema(
            summary=f"Delete a {kind.label} nothing refers to",
            parameters=[key],
            responses={204: None, **conflict},
        ),
    )


def _record_viewset(kind: Kind, output: type[BaseSerializer[Any]], body: type[BaseSerializer[Any]]) -> Any:
    """The viewset of one record kind, addressed by the kind's key field, with its OpenAPI description."""
    name = "".join(part.title() for part in kind.name.split("_"))
    attrs = {"kind": kind, "lookup_field": kind.key_field, "serializer_class": output, "__module__": __name__}
    return _documented(kind, output, body)(type(f"{name}ViewSet", (ConfigRecordViewSet,), attrs))


ProviderViewSet = _record_viewset(Kind.PROVIDER, ProviderSerializer, ProviderInputSerializer)
RouteViewSet = _record_viewset(Kind.ROUTE, RouteSerializer, RouteInputSerializer)
ToolViewSet = _record_viewset(Kind.TOOL, ToolSerializer, ToolInputSerializer)
SkillViewSet = _record_viewset(Kind.SKILL, SkillSerializer, SkillInputSerializer)
McpServerViewSet = _record_viewset(Kind.MCP_SERVER, McpServerSerializer, McpServerInputSerializer)
AgentViewSet = _record_viewset(Kind.AGENT, AgentSerializer, AgentInputSerializer)
TeamViewSet = _record_viewset(Kind.TEAM, TeamSerializer, TeamInputSerializer)


class ReadinessView(APIView):
    """Whether each provider, route, MCP server, agent and team can be used now, and why not."""

    @extend_schema(summary="Configuration readiness", responses={200: ReadinessReportSerializer})
    def get(self, request: Request) -> Response:
        return Response(ReadinessReportSerializer(config_readiness()).data)
