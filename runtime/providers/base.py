"""The provider adapter contract.

An adapter is built from a Provider record and a ModelRoute (`adapter_for`). It reports its
credential status from the presence of the named environment variable only — never its value —
and streams typed runtime events (`core.conversation.events`) for a list of prompt messages.
This module holds the contract and the base every network provider shares; each wire protocol
has its own module beside it, and `runtime.providers` picks one by provider kind.

The live kinds (`openai`, `anthropic`, `google`, `ollama`, `openai_compatible`) are created and
validated from config, and build the request they would send (without the key); sending it is not
part of this phase, so `stream()` raises `LiveCallsUnavailableError`, and a blocked adapter raises
`AdapterBlockedError` naming the missing variable. The offline `replay` kind streams for real
(`runtime.providers.replay`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from core.conversation.contracts import MessagePart
from core.conversation.events import RuntimeEvent
from core.errors import DomainError, InvalidInputError
from core.models import ModelRoute, Provider

CredentialState = Literal["present", "missing", "not_needed"]
AdapterState = Literal["ready", "blocked", "disabled"]


class AdapterError(DomainError):
    """An adapter cannot stream this turn (409: the configuration, not the request, is at fault)."""

    status_code = 409
    code = "adapter_unavailable"


class AdapterBlockedError(AdapterError):
    """The adapter is blocked (a credential is missing, or it is disabled)."""

    code = "adapter_blocked"


class LiveCallsUnavailableError(AdapterError):
    """Live provider calls are not part of this phase of Agent Chat."""

    code = "live_calls_unavailable"


@dataclass(frozen=True)
class PromptMessage:
    """One message of the prompt the adapter answers."""

    role: str
    content: str
    parts: Sequence[MessagePart] = ()


@dataclass(frozen=True)
class AdapterStatus:
    state: AdapterState
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProviderRequest:
    """What a live adapter would send: URL, headers (the key only as a named placeholder) and body."""

    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)


class ProviderAdapter(ABC):
    """Base of every adapter; subclasses set `kind` and implement `stream`."""

    kind: ClassVar[str]
    needs_credential: ClassVar[bool] = True

    def __init__(self, *, provider: Provider, route: ModelRoute) -> None:
        if provider.kind != self.kind:
            raise InvalidInputError.for_field("provider.kind", f"{provider.kind!r} cannot use the {self.kind} adapter")
        if route.provider_id != provider.pk:
            raise InvalidInputError.for_field(
                "route.provider", f"route {route.alias!r} belongs to another provider than {provider.name!r}"
            )
        self.provider = provider
        self.route = route
        self.validate()

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

    @abstractmethod
    def stream(self, messages: Sequence[PromptMessage]) -> Iterator[RuntimeEvent]:
        """Yield the events of one model turn answering `messages`."""


class LiveAdapter(ProviderAdapter):
    """A network provider: validated and able to build its request; calls are not made in this phase."""

    default_base_url: ClassVar[str] = ""

    def validate(self) -> None:
        super().validate()
        base = self.base_url()
        if not base:
            raise InvalidInputError.for_field("base_url", f"the {self.kind} provider needs a base_url")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInputError.for_field("base_url", f"{base!r} is not an http(s) URL")

    def base_url(self) -> str:
        return (self.provider.base_url or self.default_base_url).rstrip("/")

    def auth_headers(self) -> dict[str, str]:
        """Headers naming where the key goes; the value stays a `${VAR}` placeholder."""
        if not self.provider.api_key_env:
            return {}
        return {"Authorization": f"Bearer ${{{self.provider.api_key_env}}}"}

    def chat_body(self, messages: Sequence[PromptMessage]) -> dict[str, Any]:
        return {
            "model": self.route.model_id,
            "max_tokens": self.route.max_output_tokens,
            "stream": True,
            "messages": [{"role": message.role, "content": message.content} for message in messages],
        }

    def chat_path(self) -> str:
        return "/chat/completions"

    def build_request(self, messages: Sequence[PromptMessage]) -> ProviderRequest:
        """The HTTP request this adapter would send for `messages` (no secret inside)."""
        return ProviderRequest(
            method="POST",
            url=self.base_url() + self.chat_path(),
            headers={"Content-Type": "application/json", **self.auth_headers()},
            body=self.chat_body(messages),
        )

    def stream(self, messages: Sequence[PromptMessage]) -> Iterator[RuntimeEvent]:
        self.ensure_ready()
        raise LiveCallsUnavailableError(
            f"the {self.kind} adapter for route {self.route.alias!r} is configured, but live provider calls are "
            "not part of this phase of Agent Chat; use a route on the replay provider"
        )
