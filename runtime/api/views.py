"""`POST /api/sessions/{id}/turns/`: run one chat turn and answer with what it wrote.

`…/messages/{seq}/regenerate/` and `…/messages/{seq}/edit/` start their turns through the same
entry (`turn_run`) and answer the same way.
"""

from __future__ import annotations

from uuid import UUID

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.acting import acting_user
from core.api.serializers import StrictInputSerializer
from core.api.views import error_response, parsed
from core.config.api.serializers import RouteReadinessSerializer
from core.config.selectors import config_readiness
from core.conversation.api.serializers import (
    CheckpointSerializer,
    MessageSerializer,
    RunSerializer,
)
from core.conversation.contracts import FINISH_REASONS
from core.conversation.selectors import message_seq
from runtime.probes import route_probe
from runtime.turns import TurnResult, turn_run
from telemetry.api.serializers import UsageEventSerializer


class TurnRequestSerializer(StrictInputSerializer):
    text = serializers.CharField(max_length=100_000, trim_whitespace=False)
    client_id = serializers.CharField(max_length=128, required=False, allow_null=True)


class TurnResultSerializer(serializers.Serializer[TurnResult]):
    run = RunSerializer()
    messages = MessageSerializer(many=True, help_text="The messages this turn appended, in seq order.")
    text = serializers.CharField(help_text="The assistant's reply, as streamed (empty if the run failed).")
    usage = UsageEventSerializer(allow_null=True, help_text="The usage recorded for the turn, if any.")
    checkpoint = CheckpointSerializer(
        allow_null=True, help_text="The run_end checkpoint, when the turn crossed the compaction threshold."
    )
    finish_reason = serializers.ChoiceField(
        choices=FINISH_REASONS,
        allow_null=True,
        help_text="Why the model stopped: `length` means the reply was cut short at the route's max_output_tokens; "
        "null when the provider did not say (or the run failed).",
    )


class SessionTurnView(APIView):
    """Run one turn: the user's text in, the streamed reply stored, the run closed, usage recorded."""

    @extend_schema(
        operation_id="sessions_turns_create",
        request=TurnRequestSerializer,
        responses={
            200: OpenApiResponse(
                TurnResultSerializer,
                description="A retry: this client_id's message already has a run (open or finished); that run "
                "as it stands now, and nothing was written or asked of the model.",
            ),
            201: OpenApiResponse(TurnResultSerializer, description="The turn ran; what it wrote."),
            400: error_response("Invalid text or client_id."),
            404: error_response("No such session."),
            409: error_response(
                "The session is archived, its route is blocked or disabled, or the client_id names a "
                "different message (or one that other messages already follow)."
            ),
        },
        description=(
            "Runs the turn synchronously. A provider error still answers 201, with the run `failed` and its "
            "error recorded; nothing of the reply is stored then. Retrying with the same client_id and text "
            "never runs the model again: it answers 200 with the run that already answers that message, "
            "even while it is still streaming."
        ),
    )
    def post(self, request: Request, session_id: UUID) -> Response:
        data = parsed(TurnRequestSerializer, request.data)
        result = turn_run(
            session_id=session_id, owner=acting_user(request), user_text=data["text"], client_id=data.get("client_id")
        )
        return _answer(result)


class TurnEditSerializer(StrictInputSerializer):
    text = serializers.CharField(max_length=100_000, trim_whitespace=False, help_text="The user message's new text")
    client_id = serializers.CharField(max_length=128, required=False, allow_null=True)


BRANCH_RESPONSES = {
    201: OpenApiResponse(
        TurnResultSerializer, description="The turn ran; what it wrote (its messages are a new branch)."
    ),
    400: error_response("Invalid text, or the message is not of the kind this action takes."),
    404: error_response("No such session or message."),
    409: error_response("The session has a run in progress, is archived, or its route is blocked or disabled."),
}


def _answer(result: TurnResult) -> Response:
    """The turns endpoint's answer: 201 for a turn that ran, 200 for a retry."""
    code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
    return Response(TurnResultSerializer(result).data, status=code)


class MessageRegenerateView(APIView):
    """Answer an assistant reply's message again: the new reply becomes a sibling of the old one."""

    @extend_schema(
        operation_id="sessions_messages_regenerate_create",
        request=None,
        responses=BRANCH_RESPONSES,
        description="Runs a turn from the path ending at the reply's parent; the new reply becomes the leaf.",
    )
    def post(self, request: Request, session_id: UUID, seq: int) -> Response:
        return _answer(turn_run(session_id=session_id, owner=acting_user(request), regenerate_seq=message_seq(seq)))


class MessageEditView(APIView):
    """Edit a user message: the new text is appended as its sibling and a turn answers it."""

    @extend_schema(
        operation_id="sessions_messages_edit_create",
        request=TurnEditSerializer,
        responses={**BRANCH_RESPONSES, 200: OpenApiResponse(TurnResultSerializer, description="A retry.")},
        description="The old message and its replies stay on their branch; the edited one becomes the leaf.",
    )
    def post(self, request: Request, session_id: UUID, seq: int) -> Response:
        data = parsed(TurnEditSerializer, request.data)
        result = turn_run(
            session_id=session_id,
            owner=acting_user(request),
            user_text=data["text"],
            client_id=data.get("client_id"),
            edit_seq=message_seq(seq),
        )
        return _answer(result)


class RouteProbeView(APIView):
    """Probe one route with a minimal real request through its provider; staff only (it costs a request)."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="config_routes_probe",
        request=None,
        responses={
            200: OpenApiResponse(
                RouteReadinessSerializer,
                description="The route's readiness after the probe, with the probe's result (a failed probe is "
                "still a 200: `probe.ok` is false and `probe.code` says why).",
            ),
            403: error_response("Not staff: probes are an operator action."),
            404: error_response("No such route."),
        },
        description=(
            "Sends one short prompt (at most 16 output tokens) through the route's adapter and stores the "
            "result: a refused key or an unknown model blocks the route, a success lifts both. Nothing is "
            "probed automatically."
        ),
    )
    def post(self, request: Request, alias: str) -> Response:
        route_probe(route_alias=alias)
        state = next(item for item in config_readiness().routes if item.name == alias)
        return Response(RouteReadinessSerializer(state).data)
