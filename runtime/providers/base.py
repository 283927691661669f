"""The provider adapter contract.

An adapter is built from a Provider record and a ModelRoute (`adapter_for`). It reports its
credential status from the presence of the named environment variable only — never its value —
and streams typed runtime events (`core.conversation.events`) for a list of prompt messages.
This module holds the contract and the base every network provider shares; each wire protocol
has its own module beside it, and `runtime.providers` picks one by provider kind.

The live kinds (`openai`, `anthropic`, `google`, `ollama`, `openai_compatible`) stream through the
providers' official SDKs (`LiveAdapter`): the key is read from the named variable at call time and
handed to the SDK only; the SDK retries 429, 5xx, timeouts and dropped connections (bounded by the
provider's `max_retries` and `timeout_s` options, `core.config.live_options`); every failure after
that is streamed as an `ErrorEvent` whose code says what happened and whose text never holds the key.
A blocked adapter raises `AdapterBlockedError` naming the missing variable. The offline `replay`
kind streams deterministic replies (`runtime.providers.replay`).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

from core.conversation.contracts import MessagePart
from core.conversation.events import RuntimeEvent
from core.errors import DomainError, InvalidInputError
from core.models import ModelRoute, Provider, ToolSpec

CredentialState = Literal["present", "missing", "not_needed"]
AdapterState = Literal["ready", "blocked", "disabled"]
S = TypeVar("S", bound=str)


class AdapterError(DomainError):
    """An adapter cannot stream this turn (409: the configuration, not the request, is at fault)."""

    status_code = 409
    code = "adapter_unavailable"


class AdapterBlockedError(AdapterError):
    """The adapter is blocked (a credential is missing, or it is disabled)."""

    code = "adapter_blocked"


class ToolNotExpressibleError(AdapterBlockedError):
    """A tool spec that the provider's format cannot carry; the message names the tool and why."""

    code = "tool_not_expressible"


@dataclass(frozen=True)
class PromptMessage:
    """One message of the prompt the adapter answers."""

    role: str
    content: str
    parts: Sequence[MessagePart] = ()
    # On an assistant message: the `state` of each `Reasoning` event the model streamed with it, to
    # send back unchanged (Anthropic thinking blocks, Gemini thought signatures, Responses reasoning
    # items); a provider refuses a tool loop with thinking enabled without it. Others ignore it.
    reasoning: Sequence[dict[str, Any]] = ()


@dataclass(frozen=True)
class Status(Generic[S]):
    """A state and the sentences saying why (an adapter's here; each view's in the bootstrap)."""

    state: S
    reasons: tuple[str, ...] = ()


AdapterStatus = Status[AdapterState]


@dataclass(frozen=True)
class ToolDefinition:
    """A tool the model may call: a name, what it does, and its arguments' JSON Schema (an object)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    @classmethod
    def from_spec(cls, spec: ToolSpec) -> ToolDefinition:
        parameters = dict(spec.parameters) if spec.parameters else {"type": "object", "properties": {}}
        return cls(name=spec.name, description=spec.description, parameters=parameters)


def tool_parameters(tool: ToolDefinition) -> dict[str, Any]:
    """The tool's JSON Schema for the wire: an object schema (what every provider requires), unchanged.

    Anything else raises ToolNotExpressibleError: wrapping it would change the shape of the
    arguments the tool's runner expects.
    """
    schema = dict(tool.parameters) if tool.parameters else {"type": "object", "properties": {}}
    if schema.get("type") != "object":
        raise ToolNotExpressibleError(
            f"tool {tool.name!r} cannot be offered: its parameters must be a JSON Schema for an object "
            f'("type": "object"), not {json.dumps(schema.get("type"))}; put the arguments under properties'
        )
    schema.setdefault("properties", {})
    return schema


class StreamStop:
    """Stops an adapter's stream from another thread (a cancel), even while it waits for a silent provider.

    `closed` is the flag a stream checks (the replay provider waits on it instead of sleeping); the
    sockets of the stream's HTTP connections are shut down on `close()`, which wakes a read blocked
    in the SDK at once (closing a socket alone would not: the read goes on until data arrives). A
    socket handed over after the close is shut down as it arrives.
    """

    def __init__(self) -> None:
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            if not self.closed.is_set():
                self._sockets.append(sock)
                return
        _shutdown(sock)

    def close(self) -> None:
        with self._lock:
            self.closed.set()
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        return  # already closed by its reader, or never connected: nothing left to stop


class ProviderAdapter(ABC):
    """Base of every adapter; subclasses set `kind` and implement `stream`."""

    kind: ClassVar[str]
    needs_credential: ClassVar[bool] = True
    # The provider's id of its last response (from its headers; see `live.http_hooks`), None if it gave none.
    request_id: str | None = None

    def __init__(self, *, provider: Provider, route: ModelRoute) -> None:
        if provider.kind != self.kind:
            raise InvalidInputError.for_field("provider.kind", f"{provider.kind!r} cannot use the {self.kind} adapter")
        if route.provider_id != provider.pk:
            raise InvalidInputError.for_field(
                "route.provider", f"route {route.alias!r} belongs to another provider than {provider.name!r}"
            )
        self.provider = provider
        self.route = route
        self.stop = StreamStop()
        self.validate()

    def close(self) -> None:
        """Stop the stream in progress, from any thread: it ends within a second, yielding nothing more."""
        self.stop.close()

    def validate(self) -> None:
        """Check the provider's settings for this kind; raise InvalidInputError naming the field."""
        if self.needs_credential and not self.provider.api_key_env:
            raise InvalidInputError.for_field(
                "api_key_env", f"the {self.kind} provider {self.provider.name!r} needs the name of its key variable"
            )

    def credential_status(self) -> CredentialState:
        """Whether the named variable is set (its value is never read out)."""
        if not self.provider.api_key_env:
            return "not_needed"
        return "present" if os.environ.get(self.provider.api_key_env) else "missing"

    def status(self) -> AdapterStatus:
        reasons: list[str] = []
        if not self.provider.enabled:
            reasons.append(f"provider {self.provider.name!r} is disabled")
        if not self.route.enabled:
            reasons.append(f"route {self.route.alias!r} is disabled")
        if reasons:
            return AdapterStatus(state="disabled", reasons=tuple(reasons))
        if self.credential_status() == "missing":
            return AdapterStatus(state="blocked", reasons=(f"{self.provider.api_key_env} is not set",))
        return AdapterStatus(state="ready")

    def ensure_ready(self) -> None:
        status = self.status()
        if status.state != "ready":
            raise AdapterBlockedError(f"{status.state}: {'; '.join(status.reasons)}")

    def tool_schema(self, tool: ToolDefinition) -> dict[str, Any]:
        """`tool`'s parameters as this provider takes them; ToolNotExpressibleError if it cannot."""
        return tool_parameters(tool)

    def tool_problems(self, tools: Sequence[ToolDefinition]) -> list[str]:
        """Why each tool this provider's format cannot carry is refused (empty when every one can go)."""
        problems: list[str] = []
        for tool in tools:
            try:
                self.tool_schema(tool)
            except ToolNotExpressibleError as exc:
                problems.append(exc.message)
        return problems

    def tools_check(self, tools: Sequence[ToolDefinition]) -> None:
        """Refuse the turn (ToolNotExpressibleError) when a tool cannot be offered to this provider."""
        problems = self.tool_problems(tools)
        if problems:
            raise ToolNotExpressibleError(f"{self.route.alias!r} ({self.kind}): " + "; ".join(problems))

    @abstractmethod
    def stream(
        self, messages: Sequence[PromptMessage], *, tools: Sequence[ToolDefinition] = ()
    ) -> Generator[RuntimeEvent, None, None]:
        """Yield the events of one model turn answering `messages`, offering `tools` to the model."""
