"""Probing a route: one minimal real request through its adapter, on demand only.

A probe sends a one-line prompt with a small output cap (`PROBE_MAX_OUTPUT_TOKENS`) through the
route's own adapter, the same SDK and error wording a turn uses, and stops reading at the first sign
the model answers (text, reasoning, a tool call or a finish). The result (ok or the error code and
message, the model, the latency, the time) is stored on the route's status by
`core.config.services.route_probe_record`, with the blocks it implies: a refused key or an unknown
model blocks the route, a success lifts both. Nothing probes by itself: `manage.py check_providers`
and `POST /api/config/routes/{alias}/probe/` (staff) are the only callers. No transaction is open
while the request is on the network.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

from core.config.contracts import Kind
from core.config.models import ModelRoute, RouteStatus
from core.config.selectors import config_instance_get
from core.config.services import route_probe_record
from core.conversation.events import ErrorEvent, Finish, Reasoning, TextDelta, ToolCall
from core.errors import DomainError
from runtime.providers import PromptMessage, adapter_for

PROBE_PROMPT = (PromptMessage(role="user", content="Reply with the single word OK."),)
# Enough for every provider's minimum (the Responses API refuses fewer than 16).
PROBE_MAX_OUTPUT_TOKENS = 16


@dataclass(frozen=True)
class ProbeAttempt:
    ok: bool
    code: str
    message: str


def _attempt(route: ModelRoute) -> ProbeAttempt:
    """Ask the route's model for one short reply; stop at the first sign of an answer."""
    probe_route = copy.copy(route)
    probe_route.max_output_tokens = min(route.max_output_tokens, PROBE_MAX_OUTPUT_TOKENS)
    try:
        stream = adapter_for(probe_route).stream(PROBE_PROMPT)
    except DomainError as exc:
        return ProbeAttempt(ok=False, code=exc.code, message=exc.message)
    try:
        for event in stream:
            if isinstance(event, ErrorEvent):
                return ProbeAttempt(ok=False, code=event.code, message=event.message)
            if isinstance(event, TextDelta | Reasoning | ToolCall | Finish):
                return ProbeAttempt(ok=True, code="", message="")
    except DomainError as exc:  # blocked or disabled: the adapter refuses before any request
        return ProbeAttempt(ok=False, code=exc.code, message=exc.message)
    finally:
        stream.close()  # closes the HTTP stream at once
    return ProbeAttempt(ok=False, code="empty_reply", message="the provider answered with no text and no finish")


def route_probe(*, route_alias: str) -> RouteStatus:
    """Probe the route named `route_alias` (disabled ones too) and store the result; NotFoundError if none."""
    route: ModelRoute = config_instance_get(Kind.ROUTE, route_alias)
    started = time.monotonic()
    attempt = _attempt(route)
    latency_ms = int((time.monotonic() - started) * 1000)
    return route_probe_record(
        route=route, ok=attempt.ok, code=attempt.code, message=attempt.message, latency_ms=latency_ms
    )
