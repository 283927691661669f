"""The configuration API: list and retrieve each kind of record, by name; readiness.

Records are addressed by name (routes by alias), as the configuration file refers to them. The
file is the one source of truth (`manage.py load_config` applies it through `core.config.services`):
every write method answers 405 with a detail saying so.
"""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

from django.db.models import QuerySet
from django.http import HttpRequest
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from core.config.api.serializers import (
    AgentSerializer,
    McpServerSerializer,
    ProviderSerializer,
    ReadinessReportSerializer,
    RouteSerializer,
    SkillSerializer,
    TeamSerializer,
    ToolSerializer,
)
from core.config.contracts import Kind
from core.config.selectors import config_instance_get, config_queryset, config_readiness

READ_ONLY = (
    "Configuration is read-only here: the config file is its one source of truth. Edit the file "
    "(AGENTCHAT_CONFIG) and run `manage.py load_config`; a running server uses it from the next turn."
)


class ConfigRecordViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[Any]):
    """One kind of configuration record, read-only; subclasses set `kind` and the serializer.

    Only list and retrieve are routed: any write method is a 405 (with `Allow: GET, HEAD, OPTIONS`)
    whose detail says where configuration is changed.
    """

    kind: ClassVar[Kind]
    lookup_value_regex = "[-a-zA-Z0-9_]+"
    # Records hold URLs, commands and variable names: staff only. Other users read readiness
    # (`/api/config/readiness/`) and the bootstrap, which leave those out.
    permission_classes = [IsAdminUser]

    def get_queryset(self) -> QuerySet[Any]:
        return config_queryset(self.kind)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        record = config_instance_get(self.kind, kwargs[self.lookup_field])
        return Response(self.get_serializer(record).data)

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> NoReturn:
        raise MethodNotAllowed(str(request.method), detail=READ_ONLY)


def _documented(kind: Kind) -> Any:
    """The OpenAPI description of one record kind's endpoints."""
    key = OpenApiParameter(
        kind.key_field, str, OpenApiParameter.PATH, description=f"the {kind.label}'s {kind.key_field}"
    )
    return extend_schema_view(
        list=extend_schema(summary=f"List {kind.value.replace('_', ' ')} (read-only: edit the config file)"),
        retrieve=extend_schema(summary=f"One {kind.label}", parameters=[key]),
    )


def _record_viewset(kind: Kind, output: type[BaseSerializer[Any]]) -> Any:
    """The read-only viewset of one record kind, addressed by the kind's key field, with its OpenAPI description."""
    name = "".join(part.title() for part in kind.name.split("_"))
    attrs = {"kind": kind, "lookup_field": kind.key_field, "serializer_class": output, "__module__": __name__}
    return _documented(kind)(type(f"{name}ViewSet", (ConfigRecordViewSet,), attrs))


ProviderViewSet = _record_viewset(Kind.PROVIDER, ProviderSerializer)
RouteViewSet = _record_viewset(Kind.ROUTE, RouteSerializer)
ToolViewSet = _record_viewset(Kind.TOOL, ToolSerializer)
SkillViewSet = _record_viewset(Kind.SKILL, SkillSerializer)
McpServerViewSet = _record_viewset(Kind.MCP_SERVER, McpServerSerializer)
AgentViewSet = _record_viewset(Kind.AGENT, AgentSerializer)
TeamViewSet = _record_viewset(Kind.TEAM, TeamSerializer)


class ReadinessView(APIView):
    """Whether each provider, route, MCP server, agent and team can be used now, and why not."""

    @extend_schema(
        summary="Configuration readiness (for users who are not staff, reasons name records only)",
        responses={200: ReadinessReportSerializer},
    )
    def get(self, request: Request) -> Response:
        staff = bool(getattr(request.user, "is_staff", False))
        return Response(ReadinessReportSerializer(config_readiness(redacted=not staff)).data)
