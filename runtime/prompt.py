"""The prompt of one model request: what a turn hands its provider adapter.

`turn_prompt` builds it from the context bundle (`memory.context.context_inputs`) and the tool
specs the turn offers:

- the system text: the agent's instructions and skills (`runtime.agents.agent_instructions`), then
  the memory context (pinned and relevant memories, the last checkpoint's summary, recent days,
  attachment summaries);
- the log's tail as prompt messages: an assistant message's tool calls and a tool message's
  results travel in their parts, and an assistant message's `reasoning` parts become its
  `reasoning` states, which the adapter sends back exactly as the provider streamed them (Anthropic
  thinking blocks and their signatures, Gemini thought signatures, Responses reasoning items);
- the tool definitions, from the specs' JSON Schemas, checked against the adapter's format: a
  tool it cannot carry refuses the turn (`ToolNotExpressibleError` naming the tool and why),
  rather than being offered under a schema other than the one it declares.

`reasoning_parts` is the other half: the `reasoning` parts a turn stores on the assistant message
it appends, so the next request of the turn carries the provider's reasoning state back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.conversation.contracts import MessagePart, ReasoningPart
from core.conversation.events import Reasoning
from core.models import ToolSpec
from memory.context import ContextBundle
from runtime.providers import PromptMessage, ProviderAdapter, ToolDefinition


@dataclass(frozen=True)
class TurnPrompt:
    """The messages of one request, with the tools offered to the model."""

    messages: tuple[PromptMessage, ...]
    tools: tuple[ToolDefinition, ...] = ()


def system_text(bundle: ContextBundle) -> str:
    """The memory context as the system text (empty when there is nothing to say)."""
    sections: list[str] = []
    memories = [*bundle.pinned_memories, *bundle.relevant_memories]
    if memories:
        sections.append("Remembered:\n" + "\n".join(f"- ({m.kind}) {m.content}" for m in memories))
    if bundle.checkpoint is not None and bundle.checkpoint.summary:
        sections.append(f"Summary of the conversation so far:\n{bundle.checkpoint.summary}")
    if bundle.episodes:
        sections.append("Recent days:\n" + "\n".join(f"- {e.day}: {e.summary}" for e in bundle.episodes))
    if bundle.attachments:
        sections.append(
            "Attachments:\n" + "\n".join(f"- {a.name} ({a.mime_type}): {a.summary}" for a in bundle.attachments)
        )
    return "\n\n".join(sections)


def prompt_message(role: str, content: str, parts: Sequence[MessagePart]) -> PromptMessage:
    """One stored message as a prompt message: its reasoning parts become the states sent back."""
    states = tuple(part["state"] for part in parts if part["type"] == "reasoning" and "state" in part)
    kept = tuple(part for part in parts if part["type"] != "reasoning")
    return PromptMessage(role=role, content=content, parts=kept, reasoning=states)


def prompt_messages(bundle: ContextBundle, *, instructions: str = "") -> list[PromptMessage]:
    """The system message (the agent's instructions and the memory context, if any), then the log's tail in order."""
    system = "\n\n".join(part for part in (instructions, system_text(bundle)) if part)
    messages = [PromptMessage(role="system", content=system)] if system else []
    messages.extend(prompt_message(m.role, m.content, m.parts) for m in bundle.messages)
    return messages


def turn_prompt(
    *,
    adapter: ProviderAdapter,
    bundle: ContextBundle,
    tools: Sequence[ToolSpec | ToolDefinition] = (),
    instructions: str = "",
) -> TurnPrompt:
    """The request for `bundle` on `adapter` under the agent's `instructions`, offering `tools` (refused
    whole if one cannot be carried)."""
    definitions = tuple(tool if isinstance(tool, ToolDefinition) else ToolDefinition.from_spec(tool) for tool in tools)
    adapter.tools_check(definitions)
    return TurnPrompt(messages=tuple(prompt_messages(bundle, instructions=instructions)), tools=definitions)


def reasoning_parts(events: Sequence[Reasoning]) -> list[ReasoningPart]:
    """The `reasoning` message parts of a reply's reasoning events, their state kept unchanged."""
    parts: list[ReasoningPart] = []
    for event in events:
        part: ReasoningPart = {"type": "reasoning", "text": event.text}
        if event.state:
            part["state"] = event.state
        parts.append(part)
    return parts
