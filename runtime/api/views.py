"""The turn API: `POST /api/sessions/{id}/turns/` queues a turn for the workers (202), and so do
`…/messages/{seq}/regenerate/`, `…/messages/{seq}/edit/` and `POST /api/runs/{id}/retry/`; staff
probe a route with `POST /api/config/routes/{alias}/probe/`. A run awaiting approval resumes
through the workers once `POST /api/runs/{id}/approve/` (approve or deny each call) and
`POST /api/runs/{id}/tool-results/` (a client tool's results) have decided every call it waits on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from core.api.acting import acting_user
from core.api.schema import error_response
from core.api.serializers import StrictInputSerializer
from core.api.views import parsed
from core.config.api.serializers import RouteReadinessSerializer
from core.config.selectors import config_readiness
from core.conversation.api.serializers import (
    MessageSerializer,
    RunSerializer,
)
from core.conversation.invocations import Decided, invocations_decide, invocations_results_post, run_invocations
from core.conversation.selectors import message_seq, run_get
from core.conversation.services import run_retry
from core.errors import ConflictError
from core.models import Run, ToolInvocation
from runtime.api.probe_schema import probe_schema
from runtime.probes import route_probe
from runtime.turns import Accepted, turn_accept
from runtime.worker.tasks import run_enqueue


# A turn's input: its fields are `turn_accept`'s keywords (`text` as `user_text`).
class TurnRequestSerializer(StrictInputSerializer):
    text = serializers.CharField(max_length=100_000, trim_whitespace=False, source="user_text")
    client_id = serializers.CharField(max_length=128, required=False, allow_null=True)


class TurnThrottle(UserRateThrottle):
    """Turns per user per minute (`AGENTCHAT_TURNS_PER_MINUTE`)."""

    scope = "turns"


class TurnAcceptedSerializer(serializers.Serializer[Accepted]):
    run = RunSerializer()
    message = MessageSerializer(help_text="The user message the run answers.")
    stream_url = serializers.SerializerMethodField(help_text="Where the run's events stream (text/event-stream).")

    def get_stream_url(self, accepted: Accepted) -> str:
        return stream_url(accepted.run)


def stream_url(run: Run) -> str:
    return f"/api/runs/{run.pk}/stream/"


def _accepted(accepted: Accepted) -> Response:
    """The turns endpoint's answer: 202 for a queued turn, 200 for a retry that found its run."""
    code = status.HTTP_202_ACCEPTED if accepted.created else status.HTTP_200_OK
    accepted = Accepted(run=run_get(run_id=accepted.run.pk), message=accepted.message, created=accepted.created)
    return Response(TurnAcceptedSerializer(accepted).data, status=code)


TOO_MANY_TURNS = error_response("Too many turns this minute (AGENTCHAT_TURNS_PER_MINUTE).")


class _TurnView(APIView):
    """An endpoint that queues a turn: each user may start `AGENTCHAT_TURNS_PER_MINUTE` a minute."""

    throttle_classes = [TurnThrottle]


class SessionTurnView(_TurnView):
    """Start one turn: the user's text is stored and its run queued; a worker runs it."""

    @extend_schema(
        operation_id="sessions_turns_create",
        request=TurnRequestSerializer,
        responses={
            200: OpenApiResponse(
                TurnAcceptedSerializer,
                description="A retry: this client_id's message already has a run (open or finished); that run "
                "as it stands now, and nothing was written or asked of the model.",
            ),
            202: OpenApiResponse(
                TurnAcceptedSerializer, description="Accepted: the message is stored and its run queued."
            ),
            400: error_response("Invalid text or client_id."),
            404: error_response("No such session."),
            409: error_response(
                "The session has an open run (named), is archived, its route is blocked or disabled, the user has "
                "too many open runs, or the client_id names a different message (or one others already follow)."
            ),
            429: TOO_MANY_TURNS,
        },
        description=(
            "Appends the user message and queues its run, then answers at once: a worker process runs the turn "
            "(`make serve` starts them) and a client that disconnects does not stop it. Watch it at `stream_url`, "
            "or read the run (`GET /api/runs/{id}/`). Retrying with the same client_id and text never runs the "
            "model again: it answers 200 with the run that answers that message."
        ),
    )
    def post(self, request: Request, session_id: UUID) -> Response:
        data = parsed(TurnRequestSerializer, request.data)
        return _accepted(turn_accept(session_id=session_id, owner=acting_user(request), on_commit=run_enqueue, **data))


class TurnEditSerializer(StrictInputSerializer):
    text = serializers.CharField(
        max_length=100_000, trim_whitespace=False, source="user_text", help_text="The user message's new text"
    )
    client_id = serializers.CharField(max_length=128, required=False, allow_null=True)


BRANCH_RESPONSES = {
    202: OpenApiResponse(
        TurnAcceptedSerializer, description="Accepted: the run is queued; its reply becomes a new branch."
    ),
    400: error_response("Invalid text, or the message is not of the kind this action takes."),
    404: error_response("No such session or message."),
    409: error_response("The session has a run in progress, is archived, or its route is blocked or disabled."),
    429: TOO_MANY_TURNS,
}


class MessageRegenerateView(_TurnView):
    """Answer an assistant reply's message again: the new reply becomes a sibling of the old one."""

    @extend_schema(
        operation_id="sessions_messages_regenerate_create",
        request=None,
        responses=BRANCH_RESPONSES,
        description="Queues a turn on the path ending at the reply's parent; its reply becomes the leaf.",
    )
    def post(self, request: Request, session_id: UUID, seq: int) -> Response:
        regenerated = message_seq(seq)
        accepted = turn_accept(
            session_id=session_id,
            owner=acting_user(request),
            regenerate_seq=regenerated,
            on_commit=lambda run: run_enqueue(run, regenerates_seq=regenerated),
        )
        return _accepted(accepted)


class MessageEditView(_TurnView):
    """Edit a user message: the new text is appended as its sibling and a turn answers it."""

    @extend_schema(
        operation_id="sessions_messages_edit_create",
        request=TurnEditSerializer,
        responses={**BRANCH_RESPONSES, 200: OpenApiResponse(TurnAcceptedSerializer, description="A retry.")},
        description="The old message and its replies stay on their branch; the edited one becomes the leaf.",
    )
    def post(self, request: Request, session_id: UUID, seq: int) -> Response:
        data = parsed(TurnEditSerializer, request.data)
        edit_seq = message_seq(seq)
        return _accepted(
            turn_accept(
                session_id=session_id, owner=acting_user(request), edit_seq=edit_seq, on_commit=run_enqueue, **data
            )
        )


PROBE_FAILED = "`probe.ok` is false and `probe.code` says why"
PROBE_DOES = (
    "Sends one short prompt (at most 16 output tokens) through the route's adapter and stores the result: a "
    "refused key or an unknown model blocks the route, a success lifts both. Nothing is probed automatically."
)


class RouteProbeView(APIView):
    """Probe one route with a minimal real request through its provider; staff only (it costs a request)."""

    permission_classes = [IsAdminUser]

    @probe_schema("config_routes_probe", RouteReadinessSerializer, "route", PROBE_FAILED, PROBE_DOES)
    def post(self, request: Request, alias: str) -> Response:
        route_probe(route_alias=alias)
        state = next(item for item in config_readiness().routes if item.name == alias)
        return Response(RouteReadinessSerializer(state).data)


class RunRetryView(_TurnView):
    """Run a failed or interrupted turn again, as a new attempt for the same user message."""

    @extend_schema(
        operation_id="runs_retry_create",
        request=None,
        responses={
            202: OpenApiResponse(TurnAcceptedSerializer, description="The new attempt, queued."),
            404: error_response("No such run."),
            409: error_response(
                "The run is not failed or interrupted, answers no message, other messages follow its message, "
                "or the session has an open run."
            ),
            429: TOO_MANY_TURNS,
        },
    )
    def post(self, request: Request, run_id: UUID) -> Response:
        run = run_retry(run_id=run_id, owner=acting_user(request))
        transaction.on_commit(lambda: run_enqueue(run))
        fresh = run_get(run_id=run.pk)
        if fresh.message is None:  # run_retry refuses a run without a message; this keeps the types honest
            raise ConflictError.for_field("run", "answers no user message; only a chat turn's run can be retried")
        accepted = Accepted(run=fresh, message=fresh.message, created=True)
        return Response(TurnAcceptedSerializer(accepted).data, status=status.HTTP_202_ACCEPTED)


class ToolInvocationSerializer(serializers.ModelSerializer[ToolInvocation]):
    class Meta:
        model = ToolInvocation
        fields = [
            "call_id",
            "tool",
            "arguments",
            "status",
            "result",
            "is_error",
            "created",
            "decided_at",
            "finished_at",
        ]


class RunToolCallsSerializer(serializers.Serializer[Decided]):
    run = RunSerializer()
    resumed = serializers.BooleanField(
        source="resumable", help_text="True when every call was decided: the run is queued for a worker again."
    )
    tool_calls = serializers.SerializerMethodField(help_text="Every tool call of the run, in order.")

    @extend_schema_field(ToolInvocationSerializer(many=True))
    def get_tool_calls(self, decided: Decided) -> list[dict[str, object]]:
        return list(ToolInvocationSerializer(run_invocations(run_id=decided.run.pk), many=True).data)


class ApproveRequestSerializer(StrictInputSerializer):
    decisions = serializers.DictField(
        child=serializers.BooleanField(),
        allow_empty=False,
        help_text="Call id → true (approve: the call runs) or false (deny: the model gets 'denied by the user').",
    )


class ToolResultSerializer(StrictInputSerializer):
    content = serializers.CharField(max_length=100_000, allow_blank=True, trim_whitespace=False)
    is_error = serializers.BooleanField(default=False)


class ToolResultsRequestSerializer(StrictInputSerializer):
    results = serializers.DictField(
        child=ToolResultSerializer(), allow_empty=False, help_text="Call id → the result the client computed."
    )


_DECIDE_ERRORS = {
    400: error_response("A call id that is not in the run, or a value that is not true/false."),
    404: error_response("No such run."),
    409: error_response("The run is not awaiting approval, or the call does not wait for this."),
}

_V = TypeVar("_V", bound="_RunDecisionView")


def _decision_view(operation_id: str, input_class: type[StrictInputSerializer]) -> Callable[[type[_V]], type[_V]]:
    """Declares a decision endpoint: the serializer that parses its body, and its OpenAPI operation."""

    def declare(view: type[_V]) -> type[_V]:
        view.input_class = input_class
        schema = extend_schema(
            operation_id=operation_id, request=input_class, responses={200: RunToolCallsSerializer, **_DECIDE_ERRORS}
        )
        return extend_schema_view(post=schema)(view)

    return declare


class _RunDecisionView(APIView, ABC):
    """Decide the tool calls a run waits on: parse the body, apply the decisions in one transaction; a run
    with every call decided is queued again."""

    input_class: ClassVar[type[StrictInputSerializer]]

    def post(self, request: Request, run_id: UUID) -> Response:
        data = parsed(self.input_class, request.data)
        with transaction.atomic():
            decided = self.decide(run_id, data, acting_user(request))
            if decided.resumable:
                run = decided.run
                transaction.on_commit(lambda: run_enqueue(run))
            return Response(RunToolCallsSerializer(decided).data)

    @abstractmethod
    def decide(self, run_id: UUID, data: dict[str, Any], owner: AbstractBaseUser) -> Decided: ...


@_decision_view("runs_approve_create", ApproveRequestSerializer)
class RunApproveView(_RunDecisionView):
    """Approve or deny the calls a run waits on; once every call is decided the run is queued again."""

    def decide(self, run_id: UUID, data: dict[str, Any], owner: AbstractBaseUser) -> Decided:
        return invocations_decide(run_id=run_id, owner=owner, decisions=data["decisions"])


@_decision_view("runs_tool_results_create", ToolResultsRequestSerializer)
class RunToolResultsView(_RunDecisionView):
    """Post the results of the `client` tool calls a run waits on; once every call is decided the run resumes."""

    def decide(self, run_id: UUID, data: dict[str, Any], owner: AbstractBaseUser) -> Decided:
        results = {call_id: (item["content"], item["is_error"]) for call_id, item in data["results"].items()}
        return invocations_results_post(run_id=run_id, owner=owner, results=results)
