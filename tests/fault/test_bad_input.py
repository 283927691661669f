"""Bad input: a table of malformed requests to every write endpoint of the API.

The write operations (POST, PUT, PATCH, DELETE) are read from the OpenAPI schema, and every one
must have cases in `CASES`: a new endpoint without cases fails `test_every_write_endpoint_has_cases`.
Every operation with a JSON body also gets the generic cases (a list, a string, a number, null,
malformed JSON). Each case asserts the exact status (400, 404, 409 or 415), the error body
`{"detail", "code", "fields"}` with the fields it names, and that no table of the database changed.
"""

from __future__ import annotations

import functools
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection, transaction
from drf_spectacular.generators import SchemaGenerator
from pytest_django import DjangoDbBlocker
from rest_framework.test import APIClient

from core.config.services import config_document_apply
from core.config.validation import document_parse
from core.conversation.invocations import NewInvocation, invocations_create
from core.conversation.models import InvocationStatus
from core.conversation.services import (
    checkpoint_create,
    message_append,
    run_await_tools,
    run_create,
    run_finish,
    session_archive,
    session_create,
)
from memory.services import attachment_record, memory_write
from telemetry.services import usage_record
from tests.fault.conftest import FAULT_CONFIG, db_snapshot, snapshot_changes
from tests.owners import op_user

pytestmark = [pytest.mark.fault, pytest.mark.django_db]

WRITE_METHODS = ("post", "put", "patch", "delete")
UNKNOWN_UUID = "00000000-0000-4000-8000-00000000dead"
UNKNOWN_INT = 987_654_321
SHA_A = "a" * 64
SHA_B = "b" * 64


@dataclass(frozen=True)
class Ref:
    """A value taken from the records the `world` fixture created (ids are not known in advance)."""

    name: str


NO_BODY = object()


@dataclass(frozen=True)
class Case:
    """One malformed request: the operation (by OpenAPI operationId), its path parameters and body,
    the exact status it must get, and the fields the error must name."""

    op: str
    label: str
    status: int
    body: Any = NO_BODY
    path: dict[str, Any] = field(default_factory=dict)
    fields: tuple[str, ...] = ()
    raw: str | None = None

    @property
    def id(self) -> str:
        return f"{self.op}:{self.label}"


# --- The records the cases point at -----------------------------------------------------------


def _world_build() -> dict[str, Any]:
    """Sessions (active, other, archived), messages, checkpoints, runs (open, finished, of another
    session, waiting on tool calls), a usage event, two keyed memories and an attachment, all written
    through services."""
    config_document_apply(document=document_parse(tomllib.loads(FAULT_CONFIG)), prune=False)
    active = session_create(owner=op_user(), title="active", route_alias="main")
    first = message_append(session_id=active.id, role="user", content="hello", client_id="c-1").record
    message_append(session_id=active.id, role="assistant", content="hi there")
    message_append(session_id=active.id, role="user", content="plan a trip")
    checkpoint = checkpoint_create(session_id=active.id, through_seq=2, reason="manual", summary="greetings")
    # A session holds one open chat run at a time: the finished one first.
    done_run = run_create(session_id=active.id, status="running")
    run_finish(run_id=done_run.id, status="completed")
    open_run = run_create(session_id=active.id, status="running")

    other = session_create(owner=op_user(), title="other", route_alias="main")
    other_message = message_append(session_id=other.id, role="user", content="elsewhere").record
    other_checkpoint = checkpoint_create(session_id=other.id, through_seq=1, reason="manual")
    other_run = run_create(session_id=other.id, status="running")

    archived = session_create(owner=op_user(), title="archived", route_alias="main")
    message_append(session_id=archived.id, role="user", content="old")
    session_archive(session_id=archived.id)

    # A run parked on two tool calls: one waiting for the user's approval, one for a client's result.
    waiting = session_create(owner=op_user(), title="waiting", route_alias="main")
    call_message = message_append(session_id=waiting.id, role="assistant", content="calling tools").record
    waiting_run = run_create(session_id=waiting.id, status="running")
    invocations_create(
        run=waiting_run,
        call_seq=call_message.seq,
        calls=[
            NewInvocation("call-approve", "calculator", {"expression": "1+1"}, InvocationStatus.AWAITING_APPROVAL),
            NewInvocation("call-client", "geolocate", {}, InvocationStatus.AWAITING_RESULT),
        ],
    )
    run_await_tools(
        run_id=waiting_run.id,
        lease_owner=waiting_run.lease_owner,
        calls=[
            {"id": "call-approve", "name": "calculator", "arguments": {"expression": "1+1"}, "waits_for": "approval"},
            {"id": "call-client", "name": "geolocate", "arguments": {}, "waits_for": "result"},
        ],
    )

    # On `fast`, whose provider needs OPENAI_API_KEY: blocked while the variable is unset.
    blocked = session_create(owner=op_user(), title="blocked", route_alias="fast")

    usage_record(
        owner=op_user(), request_id="u-1", route_alias="main", session_id=active.id, input_tokens=100, output_tokens=20
    )
    units = memory_write(owner=op_user(), kind="preference", content="Prefers metric units.", key="units").memory
    memory_write(owner=op_user(), kind="fact", content="Lives in Lisbon.", key="home")
    attachment_record(
        session_id=active.id,
        message_id=first.pk,
        sha256=SHA_A,
        kind="file",
        display_name="notes.txt",
        mime_type="text/plain",
        size_bytes=100,
    )
    return {
        "session": str(active.id),
        "other_session": str(other.id),
        "archived_session": str(archived.id),
        "blocked_session": str(blocked.id),
        "message": first.pk,
        "other_message": other_message.pk,
        "checkpoint": checkpoint.pk,
        "other_checkpoint": other_checkpoint.pk,
        "open_run": str(open_run.id),
        "done_run": str(done_run.id),
        "other_run": str(other_run.id),
        "waiting_run": str(waiting_run.id),
        "memory": units.pk,
    }


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[dict[str, Any]]:
    """The records every case points at, built once for the module inside a transaction that is
    rolled back at the end (each case then runs in its own savepoint, as Django's TestCase does)."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield _world_build()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


def _resolve(value: Any, world: dict[str, Any]) -> Any:
    if isinstance(value, Ref):
        return world[value.name]
    if isinstance(value, dict):
        return {key: _resolve(item, world) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, world) for item in value]
    return value


# --- Generic cases: bodies that are not a JSON object -----------------------------------------

# Each operation that takes a JSON body, with the path of an existing record to send it to.
BODY_TARGETS: dict[str, dict[str, Any]] = {
    "sessions_create": {},
    "sessions_partial_update": {"id": Ref("session")},
    "sessions_messages_create": {"session_id": Ref("session")},
    "sessions_checkpoints_create": {"session_id": Ref("session")},
    "sessions_turns_create": {"session_id": Ref("session")},
    "runs_create": {},
    "runs_cancel_create": {"id": Ref("open_run")},
    "sessions_messages_edit_create": {"session_id": Ref("session"), "seq": 1},
    "sessions_leaf_create": {"id": Ref("session")},
    "runs_events_create": {"run_id": Ref("open_run")},
    "memory_long_term_create": {},
    "memory_long_term_update": {"id": Ref("memory")},
    "memory_long_term_partial_update": {"id": Ref("memory")},
    "memory_episodes_create": {},
    "memory_attachments_create": {},
    "telemetry_usage_create": {},
    "auth_tokens_create": {},
    "runs_approve_create": {"run_id": Ref("open_run")},
    "runs_tool_results_create": {"run_id": Ref("open_run")},
}

NOT_OBJECTS: list[tuple[str, Any]] = [
    ("body-is-a-list", [{"name": "x"}]),
    ("body-is-a-string", "hello"),
    ("body-is-a-number", 42),
    ("body-is-null", None),
]


def _generic_cases() -> list[Case]:
    cases: list[Case] = []
    for op, path in BODY_TARGETS.items():
        cases.extend(Case(op, label, 400, body=body, path=path) for label, body in NOT_OBJECTS)
        cases.append(Case(op, "malformed-json", 400, path=path, raw='{"name": "x",'))
    return cases


# --- Configuration records --------------------------------------------------------------------


SESSION = {"session_id": Ref("session")}
ARCHIVED = {"session_id": Ref("archived_session")}
UNKNOWN_SESSION = {"session_id": UNKNOWN_UUID}
CHECKPOINT_OK = {"through_seq": 3, "reason": "manual"}
MESSAGE_OK = {"role": "user", "content": "hello again"}


def _conversation_cases() -> list[Case]:
    c = Case
    return [
        # sessions
        c("sessions_create", "title-wrong-type", 400, {"title": ["x"]}, fields=("title",)),
        c("sessions_create", "title-oversize", 400, {"title": "t" * 201}, fields=("title",)),
        c("sessions_create", "route-unknown", 400, {"route": "ghost"}, fields=("route",)),
        c("sessions_create", "route-wrong-type", 400, {"route": {"alias": "main"}}, fields=("route",)),
        c("sessions_create", "unknown-field", 400, {"titel": "x"}, fields=("titel",)),
        c("sessions_partial_update", "unknown-id", 404, {"title": "x"}, {"id": UNKNOWN_UUID}),
        c("sessions_partial_update", "malformed-id", 404, {"title": "x"}, {"id": "not-a-uuid"}),
        c("sessions_partial_update", "archived", 409, {"title": "x"}, {"id": Ref("archived_session")}),
        c("sessions_partial_update", "title-oversize", 400, {"title": "t" * 201}, {"id": Ref("session")}, ("title",)),
        c("sessions_partial_update", "title-wrong-type", 400, {"title": {"a": 1}}, {"id": Ref("session")}, ("title",)),
        c("sessions_partial_update", "route-unknown", 400, {"route": "ghost"}, {"id": Ref("session")}, ("route",)),
        c("sessions_partial_update", "route-blank", 400, {"route": " "}, {"id": Ref("session")}, ("route",)),
        c("sessions_destroy", "unknown-id", 404, path={"id": UNKNOWN_UUID}),
        c("sessions_destroy", "malformed-id", 404, path={"id": "not-a-uuid"}),
        c("sessions_destroy", "has-an-open-run", 409, path={"id": Ref("session")}, fields=("session",)),
        c("sessions_archive_create", "unknown-id", 404, path={"id": UNKNOWN_UUID}),
        c("sessions_archive_create", "already-archived", 409, path={"id": Ref("archived_session")}),
        c("sessions_unarchive_create", "unknown-id", 404, path={"id": UNKNOWN_UUID}),
        c("sessions_unarchive_create", "already-active", 409, path={"id": Ref("session")}),
        # messages
        c("sessions_messages_create", "missing-role", 400, {"content": "hi"}, SESSION, ("role",)),
        c("sessions_messages_create", "unknown-role", 400, {"role": "wizard", "content": "hi"}, SESSION, ("role",)),
        c(
            "sessions_messages_create",
            "content-wrong-type",
            400,
            {"role": "user", "content": {"a": 1}},
            SESSION,
            ("content",),
        ),
        c(
            "sessions_messages_create",
            "content-oversize",
            400,
            {"role": "user", "content": "x" * 1_000_001},
            SESSION,
            ("content",),
        ),
        c("sessions_messages_create", "content-empty", 400, {"role": "user"}, SESSION, ("content",)),
        c(
            "sessions_messages_create",
            "part-unknown-type",
            400,
            {"role": "user", "parts": [{"type": "hologram"}]},
            SESSION,
            ("parts",),
        ),
        c("sessions_messages_create", "parts-not-a-list", 400, {"role": "user", "parts": "hi"}, SESSION, ("parts",)),
        c(
            "sessions_messages_create",
            "token-count-negative",
            400,
            {**MESSAGE_OK, "token_count": -5},
            SESSION,
            ("token_count",),
        ),
        c(
            "sessions_messages_create",
            "token-count-wrong-type",
            400,
            {**MESSAGE_OK, "token_count": "many"},
            SESSION,
            ("token_count",),
        ),
        c(
            "sessions_messages_create",
            "client-id-oversize",
            400,
            {**MESSAGE_OK, "client_id": "c" * 129},
            SESSION,
            ("client_id",),
        ),
        c(
            "sessions_messages_create",
            "client-id-of-another-message",
            409,
            {**MESSAGE_OK, "client_id": "c-1"},
            SESSION,
            ("client_id",),
        ),
        c("sessions_messages_create", "unknown-field", 400, {**MESSAGE_OK, "seq": 1}, SESSION, ("seq",)),
        c("sessions_messages_create", "archived-session", 409, MESSAGE_OK, ARCHIVED, ("session",)),
        c("sessions_messages_create", "unknown-session", 404, MESSAGE_OK, UNKNOWN_SESSION, ("session",)),
        c("sessions_messages_create", "malformed-session", 404, MESSAGE_OK, {"session_id": "nope"}, ("session",)),
        # checkpoints
        c("sessions_checkpoints_create", "missing-required", 400, {}, SESSION, ("through_seq", "reason")),
        c(
            "sessions_checkpoints_create",
            "unknown-reason",
            400,
            {"through_seq": 1, "reason": "nap"},
            SESSION,
            ("reason",),
        ),
        c(
            "sessions_checkpoints_create",
            "through-seq-wrong-type",
            400,
            {"through_seq": "three", "reason": "manual"},
            SESSION,
            ("through_seq",),
        ),
        c(
            "sessions_checkpoints_create",
            "through-seq-negative",
            400,
            {"through_seq": -1, "reason": "manual"},
            SESSION,
            ("through_seq",),
        ),
        c(
            "sessions_checkpoints_create",
            "through-seq-past-the-log",
            400,
            {"through_seq": 99, "reason": "manual"},
            SESSION,
            ("through_seq",),
        ),
        c(
            "sessions_checkpoints_create",
            "through-seq-before-the-parent",
            400,
            {"through_seq": 1, "reason": "manual", "parent": Ref("checkpoint")},
            SESSION,
            ("through_seq",),
        ),
        c(
            "sessions_checkpoints_create",
            "parent-of-another-session",
            400,
            {**CHECKPOINT_OK, "parent": Ref("other_checkpoint")},
            SESSION,
            ("parent",),
        ),
        c(
            "sessions_checkpoints_create",
            "parent-unknown",
            400,
            {**CHECKPOINT_OK, "parent": UNKNOWN_INT},
            SESSION,
            ("parent",),
        ),
        c(
            "sessions_checkpoints_create",
            "summary-oversize",
            400,
            {**CHECKPOINT_OK, "summary": "s" * 200_001},
            SESSION,
            ("summary",),
        ),
        c(
            "sessions_checkpoints_create",
            "state-not-object",
            400,
            {**CHECKPOINT_OK, "state": [1, 2]},
            SESSION,
            ("state",),
        ),
        c(
            "sessions_checkpoints_create",
            "token-count-negative",
            400,
            {**CHECKPOINT_OK, "token_count": -1},
            SESSION,
            ("token_count",),
        ),
        c("sessions_checkpoints_create", "archived-session", 409, {"through_seq": 1, "reason": "manual"}, ARCHIVED),
        c("sessions_checkpoints_create", "unknown-session", 404, CHECKPOINT_OK, UNKNOWN_SESSION, ("session",)),
        # turns
        c("sessions_turns_create", "missing-text", 400, {}, SESSION, ("text",)),
        c("sessions_turns_create", "text-wrong-type", 400, {"text": ["hi"]}, SESSION, ("text",)),
        c("sessions_turns_create", "text-empty", 400, {"text": ""}, SESSION, ("text",)),
        c("sessions_turns_create", "text-oversize", 400, {"text": "x" * 100_001}, SESSION, ("text",)),
        c(
            "sessions_turns_create",
            "client-id-oversize",
            400,
            {"text": "hi", "client_id": "c" * 129},
            SESSION,
            ("client_id",),
        ),
        c("sessions_turns_create", "unknown-field", 400, {"text": "hi", "model": "x"}, SESSION, ("model",)),
        c(
            "sessions_turns_create",
            "client-id-of-another-message",
            409,
            {"text": "something else", "client_id": "c-1"},
            SESSION,
            ("client_id",),
        ),
        c("sessions_turns_create", "archived-session", 409, {"text": "hi"}, ARCHIVED, ("session",)),
        c("sessions_turns_create", "route-blocked", 409, {"text": "hi"}, {"session_id": Ref("blocked_session")}),
        c("sessions_turns_create", "unknown-session", 404, {"text": "hi"}, UNKNOWN_SESSION, ("session",)),
        # runs
        c("runs_create", "missing-session", 400, {}, fields=("session",)),
        c("runs_create", "unknown-session", 404, {"session": UNKNOWN_UUID}, fields=("session",)),
        c("runs_create", "malformed-session", 404, {"session": "nope"}, fields=("session",)),
        c("runs_create", "unknown-route", 400, {"session": Ref("session"), "route": "ghost"}, fields=("route",)),
        c(
            "runs_create",
            "terminal-status",
            400,
            {"session": Ref("session"), "status": "completed"},
            fields=("status",),
        ),
        c("runs_create", "unknown-status", 400, {"session": Ref("session"), "status": "sleeping"}, fields=("status",)),
        c("runs_create", "archived-session", 409, {"session": Ref("archived_session")}, fields=("session",)),
        c("runs_cancel_create", "reason-not-text", 400, {"reason": ["stop"]}, {"id": Ref("open_run")}, ("reason",)),
        c("runs_cancel_create", "reason-oversize", 400, {"reason": "r" * 2001}, {"id": Ref("open_run")}, ("reason",)),
        c("runs_cancel_create", "finished-run", 409, {"reason": "stop"}, {"id": Ref("done_run")}, ("run",)),
        c("runs_cancel_create", "unknown-run", 404, {"reason": "stop"}, {"id": UNKNOWN_UUID}, ("run",)),
        c("runs_cancel_create", "malformed-run", 404, {"reason": "stop"}, {"id": "nope"}, ("run",)),
        # retry, regenerate, edit, branch switch, probe
        c("runs_retry_create", "completed-run", 409, path={"run_id": Ref("done_run")}, fields=("run",)),
        c("runs_retry_create", "unknown-run", 404, path={"run_id": UNKNOWN_UUID}, fields=("run",)),
        c(
            "sessions_messages_regenerate_create",
            "a-user-message",
            400,
            path={**SESSION, "seq": 1},
            fields=("seq",),
        ),
        c("sessions_messages_regenerate_create", "unknown-seq", 404, path={**SESSION, "seq": 99}, fields=("seq",)),
        c("sessions_messages_edit_create", "missing-text", 400, {}, {**SESSION, "seq": 1}, ("text",)),
        c("sessions_messages_edit_create", "an-assistant-reply", 400, {"text": "x"}, {**SESSION, "seq": 2}, ("seq",)),
        c("sessions_leaf_create", "missing-seq", 400, {}, {"id": Ref("session")}, ("seq",)),
        c("sessions_leaf_create", "seq-not-a-number", 400, {"seq": "two"}, {"id": Ref("session")}, ("seq",)),
        c("sessions_leaf_create", "unknown-seq", 400, {"seq": 99}, {"id": Ref("session")}, ("seq",)),
        c("config_routes_probe", "unknown-route", 404, path={"alias": "nowhere"}, fields=("alias",)),
        c("config_mcp_servers_probe", "unknown-server", 404, path={"name": "nowhere"}, fields=("name",)),
        # trace events
        c("runs_events_create", "missing-type", 400, {}, {"run_id": Ref("open_run")}, ("type",)),
        c("runs_events_create", "unknown-type", 400, {"type": "telepathy"}, {"run_id": Ref("open_run")}, ("type",)),
        c(
            "runs_events_create",
            "payload-field-wrong-type",
            400,
            {"type": "text_delta", "payload": {"text": 5}},
            {"run_id": Ref("open_run")},
            ("payload.text",),
        ),
        c(
            "runs_events_create",
            "payload-not-object",
            400,
            {"type": "text_delta", "payload": ["hi"]},
            {"run_id": Ref("open_run")},
            ("payload",),
        ),
        c(
            "runs_events_create",
            "payload-unknown-key",
            400,
            {"type": "text_delta", "payload": {"text": "a", "colour": "red"}},
            {"run_id": Ref("open_run")},
            ("payload",),
        ),
        c(
            "runs_events_create",
            "payload-text-oversize",
            400,
            {"type": "text_delta", "payload": {"text": "x" * 200_001}},
            {"run_id": Ref("open_run")},
            ("payload.text",),
        ),
        c(
            "runs_events_create",
            "finish-as-cancelled",
            400,
            {"type": "run_finished", "payload": {"status": "cancelled"}},
            {"run_id": Ref("open_run")},
        ),
        c(
            "runs_events_create",
            "finished-run",
            409,
            {"type": "text_delta", "payload": {"text": "late"}},
            {"run_id": Ref("done_run")},
            ("run",),
        ),
        c(
            "runs_events_create",
            "unknown-run",
            404,
            {"type": "text_delta", "payload": {"text": "a"}},
            {"run_id": UNKNOWN_UUID},
            ("run",),
        ),
    ]


# --- Approvals and client tool results ---------------------------------------------------------

OPEN_RUN = {"run_id": Ref("open_run")}
WAITING_RUN = {"run_id": Ref("waiting_run")}
RESULT_OK = {"content": "42", "is_error": False}


def _decision_cases() -> list[Case]:
    c = Case
    return [
        c("runs_approve_create", "missing-decisions", 400, {}, OPEN_RUN, ("decisions",)),
        c("runs_approve_create", "decisions-empty", 400, {"decisions": {}}, OPEN_RUN, ("decisions",)),
        c("runs_approve_create", "decisions-not-object", 400, {"decisions": ["call-1"]}, OPEN_RUN, ("decisions",)),
        c(
            "runs_approve_create",
            "decision-not-a-boolean",
            400,
            {"decisions": {"call-1": "maybe"}},
            OPEN_RUN,
            ("decisions",),
        ),
        c(
            "runs_approve_create",
            "unknown-field",
            400,
            {"decisions": {"call-1": True}, "reason": "x"},
            OPEN_RUN,
            ("reason",),
        ),
        c(
            "runs_approve_create",
            "unknown-call",
            400,
            {"decisions": {"call-nowhere": True}},
            WAITING_RUN,
            ("decisions.call-nowhere",),
        ),
        c(
            "runs_approve_create",
            "a-call-waiting-for-a-result",
            409,
            {"decisions": {"call-client": True}},
            WAITING_RUN,
            ("decisions.call-client",),
        ),
        c(
            "runs_approve_create",
            "one-known-one-unknown-call",
            400,
            {"decisions": {"call-approve": True, "call-nowhere": False}},
            WAITING_RUN,
            ("decisions.call-nowhere",),
        ),
        c("runs_approve_create", "not-awaiting-approval", 409, {"decisions": {"call-1": True}}, OPEN_RUN),
        c("runs_approve_create", "finished-run", 409, {"decisions": {"call-1": True}}, {"run_id": Ref("done_run")}),
        c("runs_approve_create", "unknown-run", 404, {"decisions": {"call-1": True}}, {"run_id": UNKNOWN_UUID}),
        c("runs_tool_results_create", "missing-results", 400, {}, OPEN_RUN, ("results",)),
        c("runs_tool_results_create", "results-empty", 400, {"results": {}}, OPEN_RUN, ("results",)),
        c("runs_tool_results_create", "results-not-object", 400, {"results": ["call-1"]}, OPEN_RUN, ("results",)),
        c(
            "runs_tool_results_create",
            "result-not-object",
            400,
            {"results": {"call-1": "42"}},
            OPEN_RUN,
            ("results",),
        ),
        c(
            "runs_tool_results_create",
            "result-missing-content",
            400,
            {"results": {"call-1": {"is_error": True}}},
            OPEN_RUN,
            ("results",),
        ),
        c(
            "runs_tool_results_create",
            "content-wrong-type",
            400,
            {"results": {"call-1": {"content": {"a": 1}}}},
            OPEN_RUN,
            ("results",),
        ),
        c(
            "runs_tool_results_create",
            "content-oversize",
            400,
            {"results": {"call-1": {"content": "x" * 100_001}}},
            OPEN_RUN,
            ("results",),
        ),
        c(
            "runs_tool_results_create",
            "is-error-not-a-boolean",
            400,
            {"results": {"call-1": {"content": "42", "is_error": "sometimes"}}},
            OPEN_RUN,
            ("results",),
        ),
        c(
            "runs_tool_results_create",
            "result-unknown-field",
            400,
            {"results": {"call-1": {**RESULT_OK, "colour": "red"}}},
            OPEN_RUN,
            ("results",),
        ),
        c(
            "runs_tool_results_create",
            "unknown-field",
            400,
            {"results": {"call-1": RESULT_OK}, "final": True},
            OPEN_RUN,
            ("final",),
        ),
        c(
            "runs_tool_results_create",
            "unknown-call",
            400,
            {"results": {"call-nowhere": RESULT_OK}},
            WAITING_RUN,
            ("results.call-nowhere",),
        ),
        c(
            "runs_tool_results_create",
            "a-call-waiting-for-approval",
            409,
            {"results": {"call-approve": RESULT_OK}},
            WAITING_RUN,
            ("results.call-approve",),
        ),
        c(
            "runs_tool_results_create",
            "one-known-one-unknown-call",
            400,
            {"results": {"call-client": RESULT_OK, "call-nowhere": RESULT_OK}},
            WAITING_RUN,
            ("results.call-nowhere",),
        ),
        c("runs_tool_results_create", "not-awaiting-results", 409, {"results": {"call-1": RESULT_OK}}, OPEN_RUN),
        c(
            "runs_tool_results_create",
            "unknown-run",
            404,
            {"results": {"call-1": RESULT_OK}},
            {"run_id": UNKNOWN_UUID},
        ),
    ]


# --- Imports (a multipart upload: a JSON body is refused before parsing, and no file is a 400) ---


def _import_cases() -> list[Case]:
    c = Case
    return [
        c("import_create", "no-file", 400, fields=("file",)),
        c("import_create", "json-body", 415, {"file": "conversations.json"}),
    ]


# --- Memory -----------------------------------------------------------------------------------

MEMORY = {"id": Ref("memory")}
ATTACHMENT_OK = {
    "session": Ref("session"),
    "message": Ref("message"),
    "sha256": SHA_B,
    "kind": "file",
    "display_name": "plan.txt",
    "mime_type": "text/plain",
    "size_bytes": 10,
}
EPISODE_DAY = "2024-05-01"
# A credential-shaped value (the marker keeps the repository's secret scan quiet).
SECRET = "sk-proj-RECOGNISABLE0123456789abcdef"
BEYOND_INT64 = 2**63


def _memory_cases() -> list[Case]:
    c = Case
    return [
        c("memory_long_term_create", "missing-content", 400, {"kind": "fact"}, fields=("content",)),
        c("memory_long_term_create", "unknown-kind", 400, {"kind": "rumour", "content": "x"}, fields=("kind",)),
        c(
            "memory_long_term_create",
            "content-holds-a-key",
            400,
            {"kind": "fact", "content": f"My OpenAI key is {SECRET}"},
            fields=("content",),
        ),
        c(
            "memory_long_term_create",
            "key-holds-a-key",
            400,
            {"kind": "fact", "content": "x", "key": SECRET},
            fields=("key",),
        ),
        c(
            "memory_long_term_create",
            "importance-beyond-int64",
            400,
            {"kind": "fact", "content": "x", "importance": BEYOND_INT64},
            fields=("importance",),
        ),
        c(
            "memory_long_term_create",
            "content-oversize",
            400,
            {"kind": "fact", "content": "x" * 20_001},
            fields=("content",),
        ),
        c(
            "memory_long_term_create",
            "importance-out-of-range",
            400,
            {"kind": "fact", "content": "x", "importance": 9},
            fields=("importance",),
        ),
        c(
            "memory_long_term_create",
            "importance-wrong-type",
            400,
            {"kind": "fact", "content": "x", "importance": "high"},
            fields=("importance",),
        ),
        c(
            "memory_long_term_create",
            "pinned-wrong-type",
            400,
            {"kind": "fact", "content": "x", "pinned": "sometimes"},
            fields=("pinned",),
        ),
        c(
            "memory_long_term_create",
            "source-session-unknown",
            404,
            {"kind": "fact", "content": "x", "source_session": UNKNOWN_UUID},
            fields=("source_session",),
        ),
        c(
            "memory_long_term_create",
            "source-range-half",
            400,
            {"kind": "fact", "content": "x", "source_session": Ref("session"), "source_first_seq": 1},
            fields=("source_last_seq",),
        ),
        c(
            "memory_long_term_create",
            "source-range-past-the-log",
            400,
            {
                "kind": "fact",
                "content": "x",
                "source_session": Ref("session"),
                "source_first_seq": 1,
                "source_last_seq": 99,
            },
            fields=("source_last_seq",),
        ),
        c("memory_long_term_update", "unknown-id", 404, {"kind": "fact", "content": "x"}, {"id": UNKNOWN_INT}),
        c("memory_long_term_update", "malformed-id", 404, {"kind": "fact", "content": "x"}, {"id": "abc"}),
        c("memory_long_term_update", "missing-kind", 400, {"content": "x"}, MEMORY, ("kind",)),
        c(
            "memory_long_term_update",
            "key-of-another-memory",
            409,
            {"kind": "fact", "content": "x", "key": "home"},
            MEMORY,
            ("key",),
        ),
        c("memory_long_term_partial_update", "unknown-id", 404, {"pinned": True}, {"id": UNKNOWN_INT}),
        c("memory_long_term_partial_update", "key-of-another-memory", 409, {"key": "home"}, MEMORY, ("key",)),
        c("memory_long_term_partial_update", "pinned-wrong-type", 400, {"pinned": "yes please"}, MEMORY, ("pinned",)),
        c("memory_long_term_partial_update", "content-empty", 400, {"content": ""}, MEMORY, ("content",)),
        c("memory_long_term_partial_update", "content-holds-a-key", 400, {"content": SECRET}, MEMORY, ("content",)),
        c("memory_long_term_partial_update", "importance-zero", 400, {"importance": 0}, MEMORY, ("importance",)),
        c("memory_long_term_partial_update", "unknown-kind", 400, {"kind": "rumour"}, MEMORY, ("kind",)),
        c("memory_long_term_destroy", "unknown-id", 404, path={"id": UNKNOWN_INT}, fields=("memory",)),
        c("memory_long_term_destroy", "malformed-id", 404, path={"id": "abc"}, fields=("memory",)),
        c("memory_long_term_forget_create", "unknown-id", 404, path={"id": UNKNOWN_INT}, fields=("memory",)),
        c("memory_long_term_forget_create", "malformed-id", 404, path={"id": "abc"}, fields=("memory",)),
        c("memory_long_term_forget_create", "id-huge", 404, path={"id": HUGE}, fields=("memory",)),
        c("memory_long_term_restore_create", "unknown-id", 404, path={"id": UNKNOWN_INT}, fields=("memory",)),
        c("memory_long_term_restore_create", "malformed-id", 404, path={"id": "abc"}, fields=("memory",)),
        c("memory_long_term_restore_create", "id-huge", 404, path={"id": HUGE}, fields=("memory",)),
        # daily episodes
        c("memory_episodes_create", "missing-day", 400, {"summary": "x"}, fields=("day",)),
        c("memory_episodes_create", "day-malformed", 400, {"day": "yesterday", "summary": "x"}, fields=("day",)),
        c("memory_episodes_create", "day-in-the-future", 400, {"day": "2999-01-01", "summary": "x"}, fields=("day",)),
        c(
            "memory_episodes_create",
            "summary-oversize",
            400,
            {"day": EPISODE_DAY, "summary": "x" * 100_001},
            fields=("summary",),
        ),
        c(
            "memory_episodes_create",
            "unknown-source",
            400,
            {"day": EPISODE_DAY, "summary": "x", "source": "gossip"},
            fields=("source",),
        ),
        c(
            "memory_episodes_create",
            "unknown-timezone",
            400,
            {"day": EPISODE_DAY, "summary": "x", "timezone": "Mars/Olympus_Mons"},
            fields=("timezone",),
        ),
        c(
            "memory_episodes_create",
            "session-unknown",
            404,
            {"day": EPISODE_DAY, "summary": "x", "session": UNKNOWN_UUID},
            fields=("session",),
        ),
        c(
            "memory_episodes_create",
            "seq-range-reversed",
            400,
            {"day": EPISODE_DAY, "summary": "x", "session": Ref("session"), "first_seq": 3, "last_seq": 1},
            fields=("last_seq",),
        ),
        c(
            "memory_episodes_create",
            "summary-holds-a-key",
            400,
            {"day": EPISODE_DAY, "summary": f"set the token to {SECRET}"},
            fields=("summary",),
        ),
        # attachments
        c(
            "memory_attachments_create",
            "summary-holds-a-key",
            400,
            {**ATTACHMENT_OK, "summary": f"a .env file: OPENAI_API_KEY={SECRET}"},
            fields=("summary",),
        ),
        c(
            "memory_attachments_create",
            "message-beyond-int64",
            400,
            {**ATTACHMENT_OK, "message": BEYOND_INT64},
            fields=("message",),
        ),
        c(
            "memory_attachments_create",
            "size-beyond-int64",
            400,
            {**ATTACHMENT_OK, "size_bytes": BEYOND_INT64},
            fields=("size_bytes",),
        ),
        c(
            "memory_attachments_create",
            "missing-required",
            400,
            {"session": Ref("session")},
            fields=("message", "sha256", "kind", "display_name", "mime_type", "size_bytes"),
        ),
        c(
            "memory_attachments_create",
            "message-of-another-session",
            400,
            {**ATTACHMENT_OK, "message": Ref("other_message")},
            fields=("message",),
        ),
        c(
            "memory_attachments_create",
            "message-unknown",
            404,
            {**ATTACHMENT_OK, "message": UNKNOWN_INT},
            fields=("message",),
        ),
        c(
            "memory_attachments_create",
            "session-unknown",
            404,
            {**ATTACHMENT_OK, "session": UNKNOWN_UUID},
            fields=("session",),
        ),
        c(
            "memory_attachments_create",
            "sha256-malformed",
            400,
            {**ATTACHMENT_OK, "sha256": "xyz"},
            fields=("sha256",),
        ),
        c("memory_attachments_create", "unknown-kind", 400, {**ATTACHMENT_OK, "kind": "hologram"}, fields=("kind",)),
        c(
            "memory_attachments_create",
            "size-negative",
            400,
            {**ATTACHMENT_OK, "size_bytes": -1},
            fields=("size_bytes",),
        ),
        c("memory_attachments_create", "url-without-uri", 400, {**ATTACHMENT_OK, "kind": "url"}, fields=("uri",)),
        c(
            "memory_attachments_create",
            "sha256-recorded-with-another-size",
            409,
            {**ATTACHMENT_OK, "sha256": SHA_A, "size_bytes": 999},
            fields=("size_bytes",),
        ),
    ]


# --- Telemetry --------------------------------------------------------------------------------


def _accounts_cases() -> list[Case]:
    c = Case
    op = "auth_tokens_create"
    return [
        c(op, "missing-name", 400, {}, fields=("name",)),
        c(op, "name-oversize", 400, {"name": "n" * 101}, fields=("name",)),
        c(op, "name-wrong-type", 400, {"name": ["laptop"]}, fields=("name",)),
        c(op, "name-with-nul", 400, {"name": "lap\u0000top"}, fields=("name",)),
        c("auth_tokens_destroy", "unknown-id", 404, path={"id": 987654}),
        c("auth_tokens_destroy", "id-beyond-64-bits", 404, path={"id": 2**64}),
    ]


def _telemetry_cases() -> list[Case]:
    c = Case
    op = "telemetry_usage_create"
    return [
        c(op, "missing-request-id", 400, {"route": "main"}, fields=("request_id",)),
        c(op, "request-id-oversize", 400, {"request_id": "r" * 129, "route": "main"}, fields=("request_id",)),
        c(
            op,
            "tokens-negative",
            400,
            {"request_id": "r", "route": "main", "input_tokens": -1},
            fields=("input_tokens",),
        ),
        c(
            op,
            "tokens-wrong-type",
            400,
            {"request_id": "r", "route": "main", "output_tokens": "lots"},
            fields=("output_tokens",),
        ),
        c(
            op,
            "cached-more-than-input",
            400,
            {"request_id": "r", "route": "main", "input_tokens": 5, "cached_input_tokens": 6},
            fields=("cached_input_tokens",),
        ),
        c(
            op,
            "reasoning-more-than-output",
            400,
            {"request_id": "r", "route": "main", "output_tokens": 5, "reasoning_tokens": 6},
            fields=("reasoning_tokens",),
        ),
        c(op, "route-unknown", 400, {"request_id": "r", "route": "ghost"}, fields=("route",)),
        c(op, "provider-unknown", 400, {"request_id": "r", "provider": "ghost", "model": "m"}, fields=("provider",)),
        c(
            op,
            "session-unknown",
            400,
            {"request_id": "r", "route": "main", "session": UNKNOWN_UUID},
            fields=("session",),
        ),
        c(op, "session-malformed", 400, {"request_id": "r", "route": "main", "session": "nope"}, fields=("session",)),
        c(
            op,
            "run-of-another-session",
            400,
            {"request_id": "r", "route": "main", "session": Ref("session"), "run": Ref("other_run")},
            fields=("run",),
        ),
        c(
            op,
            "occurred-at-in-the-future",
            400,
            {"request_id": "r", "route": "main", "occurred_at": "2999-01-01T00:00:00Z"},
            fields=("occurred_at",),
        ),
        c(
            op,
            "occurred-at-malformed",
            400,
            {"request_id": "r", "route": "main", "occurred_at": "noon"},
            fields=("occurred_at",),
        ),
        c(
            op,
            "latency-negative",
            400,
            {"request_id": "r", "route": "main", "latency_ms": -3},
            fields=("latency_ms",),
        ),
        c(
            op,
            "request-id-reused-with-other-usage",
            409,
            {"request_id": "u-1", "route": "main", "input_tokens": 999},
            fields=("request_id",),
        ),
    ]


# --- Values no field should take: integers past 64 bits, NUL characters, lone surrogates -------

HUGE = 10**20
NUL = "a\x00b"
SURROGATE = "a\ud800b"
DEEP = "[" * 100_000 + "]" * 100_000


def _hostile_cases() -> list[Case]:
    c = Case
    cases = [
        c(
            "sessions_messages_create",
            "token-count-huge",
            400,
            {**MESSAGE_OK, "token_count": HUGE},
            SESSION,
            ("token_count",),
        ),
        c(
            "sessions_checkpoints_create",
            "through-seq-huge",
            400,
            {"through_seq": HUGE, "reason": "manual"},
            SESSION,
            ("through_seq",),
        ),
        c(
            "sessions_checkpoints_create",
            "token-count-huge",
            400,
            {**CHECKPOINT_OK, "token_count": HUGE},
            SESSION,
            ("token_count",),
        ),
        c("sessions_checkpoints_create", "parent-huge", 400, {**CHECKPOINT_OK, "parent": HUGE}, SESSION, ("parent",)),
        c(
            "memory_long_term_create",
            "importance-huge",
            400,
            {"kind": "fact", "content": "x", "importance": HUGE},
            fields=("importance",),
        ),
        c(
            "memory_long_term_create",
            "source-seq-huge",
            400,
            {
                "kind": "fact",
                "content": "x",
                "source_session": Ref("session"),
                "source_first_seq": 1,
                "source_last_seq": HUGE,
            },
            fields=("source_last_seq",),
        ),
        c(
            "memory_episodes_create",
            "seq-huge",
            400,
            {"day": EPISODE_DAY, "summary": "x", "session": Ref("session"), "first_seq": 1, "last_seq": HUGE},
            fields=("last_seq",),
        ),
        c(
            "memory_episodes_create",
            "token-count-huge",
            400,
            {"day": EPISODE_DAY, "summary": "x", "token_count": HUGE},
            fields=("token_count",),
        ),
        c("memory_attachments_create", "size-huge", 400, {**ATTACHMENT_OK, "size_bytes": HUGE}, fields=("size_bytes",)),
        c("memory_attachments_create", "message-huge", 400, {**ATTACHMENT_OK, "message": HUGE}, fields=("message",)),
        c("memory_long_term_update", "id-huge", 404, {"kind": "fact", "content": "x"}, {"id": HUGE}),
        c(
            "telemetry_usage_create",
            "tokens-huge",
            400,
            {"request_id": "r", "route": "main", "input_tokens": HUGE},
            fields=("input_tokens",),
        ),
        c(
            "telemetry_usage_create",
            "latency-huge",
            400,
            {"request_id": "r", "route": "main", "latency_ms": HUGE},
            fields=("latency_ms",),
        ),
        c(
            "runs_events_create",
            "deeply-nested-payload",
            400,
            path={"run_id": Ref("open_run")},
            raw='{"type": "text_delta", "payload": ' + DEEP + "}",
        ),
    ]
    for label, text in (("nul-character", NUL), ("lone-surrogate", SURROGATE)):
        cases += [
            c("sessions_create", f"title-{label}", 400, {"title": text}, fields=("title",)),
            c(
                "sessions_messages_create",
                f"content-{label}",
                400,
                {"role": "user", "content": text},
                SESSION,
                ("content",),
            ),
            c(
                "sessions_messages_create",
                f"client-id-{label}",
                400,
                {**MESSAGE_OK, "client_id": text},
                SESSION,
                ("client_id",),
            ),
            c(
                "sessions_checkpoints_create",
                f"state-{label}",
                400,
                {**CHECKPOINT_OK, "state": {"k": text}},
                SESSION,
                ("state",),
            ),
            c("sessions_turns_create", f"text-{label}", 400, {"text": text}, SESSION, ("text",)),
            c(
                "runs_events_create",
                f"payload-{label}",
                400,
                {"type": "text_delta", "payload": {"text": text}},
                {"run_id": Ref("open_run")},
                ("payload.text",),
            ),
            c("runs_cancel_create", f"reason-{label}", 400, {"reason": text}, {"id": Ref("open_run")}, ("reason",)),
            c(
                "memory_long_term_create",
                f"content-{label}",
                400,
                {"kind": "fact", "content": text},
                fields=("content",),
            ),
            c(
                "memory_episodes_create",
                f"summary-{label}",
                400,
                {"day": EPISODE_DAY, "summary": text},
                fields=("summary",),
            ),
            c(
                "memory_attachments_create",
                f"name-{label}",
                400,
                {**ATTACHMENT_OK, "display_name": text},
                fields=("display_name",),
            ),
            c(
                "telemetry_usage_create",
                f"request-id-{label}",
                400,
                {"request_id": text, "route": "main"},
                fields=("request_id",),
            ),
            c(
                "sessions_messages_create",
                f"part-{label}",
                400,
                {"role": "tool", "parts": [{"type": "tool_result", "tool_call_id": "call-1", "content": text}]},
                SESSION,
                ("parts",),
            ),
        ]
    return cases


CASES: list[Case] = [
    *_generic_cases(),
    *_conversation_cases(),
    *_decision_cases(),
    *_import_cases(),
    *_memory_cases(),
    *_telemetry_cases(),
    *_accounts_cases(),
    *_hostile_cases(),
]


# --- The schema's write operations ------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    has_body: bool


@functools.cache
def write_operations() -> dict[str, Operation]:
    """Every POST/PUT/PATCH/DELETE operation of the OpenAPI schema, by operationId."""
    # drf-spectacular ships no type hints.
    generator = SchemaGenerator()  # type: ignore[no-untyped-call]
    schema: dict[str, Any] = generator.get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    operations: dict[str, Operation] = {}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in WRITE_METHODS:
                # A multipart upload (the import) takes no JSON, so the generic cases do not apply to it.
                content = operation.get("requestBody", {}).get("content", {})
                operations[operation["operationId"]] = Operation(
                    method=method, path=path, has_body="application/json" in content
                )
    return operations


def _url(operation: Operation, params: dict[str, Any]) -> str:
    url = operation.path
    for name, value in params.items():
        url = url.replace("{" + name + "}", str(value))
    assert "{" not in url, f"{operation.path}: a path parameter has no value in the case"
    return url


def test_every_write_endpoint_has_cases() -> None:
    operations = write_operations()
    covered = {case.op for case in CASES}
    assert sorted(set(operations) - covered) == [], "write endpoints without a bad-input case"
    assert sorted(covered - set(operations)) == [], "cases for operations the schema does not have"
    with_body = {op for op, operation in operations.items() if operation.has_body}
    assert sorted(with_body - set(BODY_TARGETS)) == [], "endpoints taking a body without the not-an-object cases"


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert sorted({i for i in ids if ids.count(i) > 1}) == []


def _field_named(name: str, keys: list[str]) -> bool:
    return any(key == name or key.startswith((f"{name}.", f"{name}[")) for key in keys)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_malformed_request_is_refused_and_changes_nothing(
    case: Case, api: APIClient, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keeps the `fast` route blocked, and makes sure no case could ever reach a real provider.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    operation = write_operations()[case.op]
    url = _url(operation, _resolve(case.path, world))
    if case.raw is not None:
        payload: str | None = case.raw
    elif case.body is NO_BODY:
        payload = None
    else:
        payload = json.dumps(_resolve(case.body, world))

    before = db_snapshot()
    if payload is None:
        response = api.generic(operation.method.upper(), url)
    else:
        response = api.generic(operation.method.upper(), url, payload, content_type="application/json")
    after = db_snapshot()

    assert response.status_code == case.status, response.content[:2000]
    body = response.json()
    assert set(body) == {"detail", "code", "fields"}
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert isinstance(body["fields"], dict)
    assert all(
        isinstance(messages, list) and messages and all(isinstance(m, str) and m for m in messages)
        for messages in body["fields"].values()
    )
    if case.status == 400 and case.raw is not None:
        assert (body["code"], body["fields"]) == ("parse_error", {})
        assert body["detail"].startswith("JSON parse error")
    elif case.status == 400:
        assert body["code"] == "invalid"
        assert body["fields"], "a 400 must say which field is wrong"
    else:
        assert body["code"] == {404: "not_found", 409: "conflict", 415: "unsupported_media_type"}[case.status]
    missing = [name for name in case.fields if not _field_named(name, list(body["fields"]))]
    assert missing == [], f"fields not named: {missing}; got {body['fields']}"
    assert snapshot_changes(before, after) == []


def test_the_snapshot_sees_an_accepted_write(api: APIClient, world: dict[str, Any]) -> None:
    before = db_snapshot()
    response = api.post(
        f"/api/sessions/{world['session']}/messages/", {"role": "user", "content": "accepted"}, format="json"
    )
    assert response.status_code == 201
    # The message search index is not written by an append: on SQLite the next search catches it up
    # (`message_index_catch_up`; its FTS5 table reads its rows from core_message, so it counts one
    # more, while its own shadow tables are unchanged), on PostgreSQL it is a column of the message.
    assert snapshot_changes(before, db_snapshot()) == [
        "core_agentsession: 5 rows -> 5 rows",
        "core_message: 6 rows -> 7 rows",
        *(["core_message_fts: 6 rows -> 7 rows"] if connection.vendor == "sqlite" else []),
    ]


# --- Query parameters and form bodies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "field"),
    [
        (f"/api/memory/attachments/?message={2**63}", "message"),
        (f"/api/memory/attachments/?message={-(2**63) - 1}", "message"),
        (f"/api/memory/attachments/?message={10**30}", "message"),
    ],
)
def test_integer_query_beyond_64_bits_is_a_400_naming_it(api: APIClient, url: str, field: str) -> None:
    response = api.get(url)
    assert response.status_code == 400, response.content[:500]
    assert list(response.json()["fields"]) == [field]


def test_integer_query_at_the_64_bit_limit_is_an_empty_answer(api: APIClient) -> None:
    response = api.get(f"/api/memory/attachments/?message={2**63 - 1}")
    assert response.status_code == 200, response.content[:500]
    assert response.json()["results"] == []


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "fact", "content": "a\x00b"}, "content"),
        ({"kind": "fact", "content": "x", "key": "notes\x00.md"}, "key"),
        ({"kind": "fact\x00", "content": "x"}, "kind"),
    ],
)
def test_form_bodies_refuse_nul_like_json(
    api: APIClient, world: dict[str, Any], encoding: str, body: dict[str, str], field: str
) -> None:
    before = db_snapshot()
    if encoding == "urlencoded":
        response = api.post("/api/memory/long-term/", urlencode(body), content_type="application/x-www-form-urlencoded")
    else:
        response = api.post("/api/memory/long-term/", body, format="multipart")
    assert response.status_code == 400, response.content[:500]
    assert field in response.json()["fields"]
    assert "NUL" in response.json()["fields"][field][0]
    assert snapshot_changes(before, db_snapshot()) == []


def test_form_field_name_with_nul_is_refused(api: APIClient) -> None:
    response = api.post(
        "/api/memory/long-term/", "kind=fact&content=x&bad%00name=1", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400, response.content[:500]
    assert "NUL" in response.json()["fields"]["non_field_errors"][0]
