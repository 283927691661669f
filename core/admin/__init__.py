"""Admin for core's records; each area registers its own ModelAdmins."""

from core.admin import config as config
from core.admin import conversation as conversation
