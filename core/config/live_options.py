"""The options of a live provider (the provider's `options` table in the config file), all optional:

- `max_retries` (0 to 10, default 2): how many times the SDK retries a request that failed with
  429, a 5xx status, a timeout or a dropped connection, with backoff (OpenAI and Anthropic honour
  the provider's `Retry-After`); after that the turn fails with the provider's message.
- `timeout_s` (1 to 600 seconds, default 60): how long one request may wait for the provider.
- `api` (`openai` and `openai_compatible` only): the wire protocol, `responses` (OpenAI's
  Responses API, the default for `openai`) or `chat_completions` (the default for
  `openai_compatible`, which is what OpenAI-compatible servers speak).

Other keys are left to the adapter (free-form). The config validation and the adapters both read
options through `live_options_parse`, so a file that loads is one the adapter can run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from core.config.models import ProviderKind
from core.errors import InvalidInputError

OpenAIApi = Literal["responses", "chat_completions"]
OPENAI_APIS: tuple[OpenAIApi, ...] = ("responses", "chat_completions")
OPENAI_KINDS = frozenset({ProviderKind.OPENAI.value, ProviderKind.OPENAI_COMPATIBLE.value})
MAX_RETRIES_LIMIT = 10
TIMEOUT_LIMIT_S = 600


@dataclass(frozen=True)
class LiveOptions:
    max_retries: int = 2
    timeout_s: float = 60.0
    api: OpenAIApi = "chat_completions"


def live_options_parse(kind: str, options: object, *, field: str = "options") -> LiveOptions:
    """The options of a live provider of `kind`, or InvalidInputError naming each bad key."""
    problems: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidInputError.for_field(field, "must be an object (a table of options)")
    retries = options.get("max_retries", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES_LIMIT:
        problems[f"{field}.max_retries"] = [f"must be a whole number from 0 to {MAX_RETRIES_LIMIT}, e.g. 2"]
    else:
        values["max_retries"] = retries
    timeout = options.get("timeout_s", 60)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or not 1 <= timeout <= TIMEOUT_LIMIT_S
    ):
        problems[f"{field}.timeout_s"] = [f"must be a number of seconds from 1 to {TIMEOUT_LIMIT_S}, e.g. 60"]
    else:
        values["timeout_s"] = float(timeout)
    default_api: OpenAIApi = "responses" if kind == ProviderKind.OPENAI.value else "chat_completions"
    api = options.get("api", default_api)
    if "api" in options and kind not in OPENAI_KINDS:
        problems[f"{field}.api"] = [
            f"only openai and openai_compatible providers take it; remove it from this {kind} provider"
        ]
    elif api not in OPENAI_APIS:
        problems[f"{field}.api"] = [
            f"{api!r} is not an OpenAI wire protocol; use one of {', '.join(OPENAI_APIS)} "
            "(responses: OpenAI's Responses API; chat_completions: Chat Completions, which "
            "OpenAI-compatible servers speak)"
        ]
    else:
        values["api"] = api
    if problems:
        first = next(iter(problems.items()))
        raise InvalidInputError(f"{first[0]}: {first[1][0]}", fields=problems)
    return LiveOptions(**values)
