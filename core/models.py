"""Core's records: configuration (`config`), the conversation store (`conversation`) and API tokens (`accounts`)."""

from core.accounts.models import ApiToken
from core.config.models import (
    AgentProfile,
    McpServerSpec,
    McpTransport,
    ModelRoute,
    Provider,
    ProviderKind,
    SkillSpec,
    Team,
    TeamMember,
    ToolSpec,
)
from core.conversation.models import (
    AgentSession,
    Checkpoint,
    CheckpointReason,
    Message,
    MessageRole,
    Run,
    RunStatus,
    SessionStatus,
    Tag,
    TraceEvent,
    TraceEventType,
)

__all__ = [
    "AgentProfile",
    "AgentSession",
    "ApiToken",
    "Checkpoint",
    "CheckpointReason",
    "McpServerSpec",
    "McpTransport",
    "Message",
    "MessageRole",
    "ModelRoute",
    "Provider",
    "ProviderKind",
    "Run",
    "RunStatus",
    "SessionStatus",
    "SkillSpec",
    "Tag",
    "Team",
    "TeamMember",
    "ToolSpec",
    "TraceEvent",
    "TraceEventType",
]
