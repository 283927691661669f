"""Core's records: configuration (`config`) and the conversation store (`conversation`)."""

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
    TraceEvent,
    TraceEventType,
)

__all__ = [
    "AgentProfile",
    "AgentSession",
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
    "Team",
    "TeamMember",
    "ToolSpec",
    "TraceEvent",
    "TraceEventType",
]
