"""Admin for core's records: each half registers its own ModelAdmins."""

from core.accounts import admin as accounts_admin
from core.config import admin as config_admin
from core.conversation import admin as conversation_admin

__all__ = ["accounts_admin", "config_admin", "conversation_admin"]
