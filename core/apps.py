"""Core's app: configuration records and the conversation store; it keeps the local data files private."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created

# var/ holds the secret key and the SQLite database, whose tables keep API tokens and session keys
# in clear; another account on the same machine must not be able to read them.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def path_make_private(path: Path, mode: int) -> bool:
    """Drop group and other permissions from a path this account owns; True when it changed."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    if info.st_uid != os.getuid() or not stat.S_IMODE(info.st_mode) & 0o077:
        return False
    path.chmod(mode)
    return True


def sqlite_files_make_private(**kwargs: Any) -> None:
    """On every new SQLite connection, make the database file and its WAL companions owner-only."""
    connection = kwargs["connection"]
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict["NAME"])
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    for suffix in SQLITE_COMPANIONS:
        path_make_private(Path(name + suffix), PRIVATE_FILE_MODE)


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core: configuration and conversations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        path_make_private(Path(settings.VAR_DIR), PRIVATE_DIR_MODE)
        connection_created.connect(sqlite_files_make_private, dispatch_uid="agentchat_sqlite_files_make_private")
