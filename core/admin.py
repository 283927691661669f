"""Admin for core's records: each half registers its own ModelAdmins."""

from core.config import admin as config_admin
from core.conversation import admin as conversation_admin

__all__ = ["config_admin", "conversation_admin"]
