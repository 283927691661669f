"""The pieces every app shares: the route resolver, the page query, the admin bases and filters."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.admin import SimpleListFilter
from django.contrib.admin.sites import site
from django.db.models import Model, QuerySet
from django.test import RequestFactory
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from pytest_django.fixtures import Settings
from rest_framework import serializers

from core.admin_base import ConditionFilter, SessionFilter, choice_conditions, columns
from core.api.serializers import PageQuerySerializer, dataclass_output_serializer
from core.config.selectors import route_resolve
from core.conversation.api.serializers import MessageSerializer, SessionListQuerySerializer
from core.conversation.api.views import RunViewSet
from core.conversation.services import session_create
from core.errors import InvalidInputError
from core.models import AgentSession, ModelRoute, Run, SessionStatus, TraceEvent
from memory.models import DailyEpisode
from telemetry.selectors import local_day
from telemetry.services import usage_record
from tests.owners import op_user

pytestmark = pytest.mark.django_db


# --- the route resolver -----------------------------------------------------------------------


def test_route_resolve_names_the_route_or_takes_the_default(replay_route: ModelRoute) -> None:
    assert route_resolve("replay") == replay_route
    assert route_resolve(None) == replay_route
    assert route_resolve("") == replay_route


@pytest.mark.fault
@pytest.mark.parametrize(
    ("alias", "problem"),
    [
        ("nope", "no model route 'nope'; use an alias from /api/config/routes/"),
        ("replay", "route 'replay' is disabled; enable it or pick another"),
    ],
)
def test_route_resolve_refuses_unknown_and_disabled_routes(replay_route: ModelRoute, alias: str, problem: str) -> None:
    ModelRoute.objects.filter(pk=replay_route.pk).update(enabled=False)
    with pytest.raises(InvalidInputError) as caught:
        route_resolve(alias)
    assert caught.value.fields == {"route": [problem]}


@pytest.mark.fault
def test_route_resolve_without_a_default_says_what_to_do(replay_route: ModelRoute) -> None:
    ModelRoute.objects.filter(pk=replay_route.pk).update(is_default=False)
    with pytest.raises(InvalidInputError) as caught:
        route_resolve(None)
    assert caught.value.fields == {
        "route": ["no route given and no default route is configured; name a route or mark one as default"]
    }


def test_usage_is_recorded_under_a_disabled_route(replay_route: ModelRoute) -> None:
    """A route disabled after a call still counts that call's usage (the session services refuse it)."""
    ModelRoute.objects.filter(pk=replay_route.pk).update(enabled=False)
    assert route_resolve("replay", enabled_only=False) == ModelRoute.objects.get(pk=replay_route.pk)
    result = usage_record(owner=op_user(), request_id="req-disabled-route", route_alias="replay", input_tokens=3)
    assert result.created
    assert result.event.route_id == replay_route.pk
    with pytest.raises(InvalidInputError):
        session_create(owner=op_user(), title="refused", route_alias="replay")


# --- the local day ----------------------------------------------------------------------------


def test_local_day_cuts_days_in_the_configured_zone(settings: Settings) -> None:
    settings.AGENTCHAT_TIMEZONE = "Pacific/Kiritimati"  # UTC+14
    moment = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert local_day(moment) == (dt.date(2026, 1, 2), "Pacific/Kiritimati")
    settings.AGENTCHAT_TIMEZONE = "America/Los_Angeles"
    assert local_day(moment) == (dt.date(2026, 1, 1), "America/Los_Angeles")
    assert local_day()[0] == timezone.localdate(timezone.now(), ZoneInfo("America/Los_Angeles"))


# --- the page query ---------------------------------------------------------------------------


@pytest.mark.fault
def test_page_query_refuses_unknown_keys_listing_the_filters_first() -> None:
    serializer = SessionListQuerySerializer(data={"colour": "red", "page_size": "5"})
    assert not serializer.is_valid()
    assert serializer.errors == {
        "colour": ["unknown field; this endpoint accepts status, needs_compaction, tag, cursor, page_size"]
    }
    assert list(PageQuerySerializer().fields) == ["cursor", "page_size"]


@pytest.mark.fault
def test_page_query_refuses_a_page_size_below_one() -> None:
    serializer = SessionListQuerySerializer(data={"page_size": "0"})
    assert not serializer.is_valid()
    assert list(serializer.errors) == ["page_size"]


# --- the admin bases --------------------------------------------------------------------------


def _filtered(
    filter_class: type[SimpleListFilter], params: dict[str, str], model: type[Model], queryset: QuerySet[Any]
) -> QuerySet[Any]:
    request = RequestFactory().get("/", params)
    lists: dict[str, Any] = {key: [value] for key, value in params.items()}  # Django passes each value as a list
    list_filter = filter_class(request, lists, model, site.get_model_admin(model))
    filtered = list_filter.queryset(request, queryset)
    assert filtered is not None
    return filtered


class _StatusFilter(ConditionFilter):
    title = parameter_name = "status"
    conditions = choice_conditions("status", SessionStatus.choices)


def test_condition_filter_selects_a_choice_and_ignores_an_unknown_value(chat_session: AgentSession) -> None:
    sessions = AgentSession.objects.all()
    assert list(_filtered(_StatusFilter, {"status": "active"}, AgentSession, sessions)) == [chat_session]
    assert list(_filtered(_StatusFilter, {"status": "archived"}, AgentSession, sessions)) == []
    assert list(_filtered(_StatusFilter, {"status": "bogus"}, AgentSession, sessions)) == [chat_session]


@pytest.mark.fault
def test_session_filter_treats_a_malformed_id_as_no_session(chat_session: AgentSession) -> None:
    episodes = DailyEpisode.objects.all()
    assert list(_filtered(SessionFilter, {"session": "not-a-uuid"}, DailyEpisode, episodes)) == []
    chosen = _filtered(SessionFilter, {"session": str(chat_session.pk)}, DailyEpisode, episodes)
    assert "session_id" in str(chosen.query)


def test_columns_lists_every_stored_column_but_the_key() -> None:
    assert columns(TraceEvent) == ("run", "index", "type", "payload", "created")
    assert columns(TraceEvent, "text") == ("run", "index", "type", "payload", "created", "text")


# --- the output serializer of a dataclass -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Shown:
    id: int
    day: dt.date
    at: dt.datetime
    owner: uuid.UUID | None
    note: str | None
    kind: str
    done: bool


def test_dataclass_output_serializer_follows_the_annotations_in_field_order() -> None:
    shown_serializer = dataclass_output_serializer(
        _Shown, "ShownSerializer", kind=serializers.ChoiceField(choices=["a", "b"])
    )
    fields = shown_serializer().fields
    assert shown_serializer.__name__ == "ShownSerializer"
    assert list(fields) == ["id", "day", "at", "owner", "note", "kind", "done"]
    assert [type(field).__name__ for field in fields.values()] == [
        "IntegerField",
        "DateField",
        "DateTimeField",
        "UUIDField",
        "CharField",
        "ChoiceField",
        "BooleanField",
    ]
    assert [field.allow_null for field in fields.values()] == [False, False, False, True, True, False, False]
    owner = uuid.UUID(int=7)
    item = _Shown(7, dt.date(2026, 1, 2), dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC), owner, None, "b", True)
    assert shown_serializer(item).data == {
        "id": 7,
        "day": "2026-01-02",
        "at": "2026-01-02T03:04:00Z",
        "owner": str(owner),
        "note": None,
        "kind": "b",
        "done": True,
    }


def test_dataclass_output_serializer_refuses_an_annotation_it_cannot_show() -> None:
    @dataclasses.dataclass
    class Listed:
        items: list[int]

    with pytest.raises(TypeError, match=r"Listed.items: no output field for list\[int\]; pass one"):
        dataclass_output_serializer(Listed, "ListedSerializer")
    listed = dataclass_output_serializer(Listed, "ListedSerializer", items=serializers.ListField())
    assert listed(Listed([1, 2])).data == {"items": [1, 2]}


# --- the API bases --------------------------------------------------------------------------------


def test_read_only_model_serializer_makes_every_field_read_only_and_keeps_its_options() -> None:
    fields = MessageSerializer().fields
    assert [name for name, field in fields.items() if not field.read_only] == []
    assert fields["parent"].help_text == "The id of the message this one follows (null for a first message)"
    # An output never parses input: a body gives it nothing.
    parsed = MessageSerializer(data={"role": "user", "content": "Hello", "seq": 4})
    assert parsed.is_valid()
    assert parsed.validated_data == {}


def test_paged_viewset_names_its_model_through_its_serializer(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):  # an empty queryset: no query at all
        rows = RunViewSet().get_queryset()
        assert rows.model is Run
        assert list(rows) == []


def test_path_parameters_describes_the_parameter_on_every_named_action() -> None:
    generator = SchemaGenerator()  # type: ignore[no-untyped-call]
    schema: dict[str, Any] = generator.get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    paths = schema["paths"]
    described = {
        (path, method): [(p["name"], p["schema"]["type"], p["description"]) for p in operation["parameters"]]
        for path, operations in paths.items()
        if path.startswith("/api/memory/long-term/{id}/")
        for method, operation in operations.items()
    }
    record_id = [("id", "integer", "The record id")]
    assert described == {
        ("/api/memory/long-term/{id}/", "get"): record_id,
        ("/api/memory/long-term/{id}/", "put"): record_id,
        ("/api/memory/long-term/{id}/", "patch"): record_id,
        ("/api/memory/long-term/{id}/", "delete"): record_id,
        ("/api/memory/long-term/{id}/forget/", "post"): record_id,
        ("/api/memory/long-term/{id}/restore/", "post"): record_id,
    }
