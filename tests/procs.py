"""Run real OS processes against the test database.

Concurrency, restart and crash tests start workers with `python -m tests.workers.<name>`; the
workers read `DATABASE_URL`, which `database_url_for_tests()` points at the database pytest
created (a real SQLite file, or the PostgreSQL test database).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url_for_tests() -> str:
    """A DATABASE_URL for the database the current test is using."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(settings['NAME']).resolve()}"
    if connection.vendor == "postgresql":
        user = quote(settings.get("USER") or "", safe="")
        password = quote(settings.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings.get("HOST") or "localhost"
        port = settings.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{settings['NAME']}"
    raise RuntimeError(f"no worker URL for database vendor {connection.vendor!r}")


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url_for_tests()
    env["DJANGO_SETTINGS_MODULE"] = "agentchat_site.settings"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def start_worker(module: str, args: Sequence[str], **env: str) -> subprocess.Popen[str]:
    """Start `python -m <module> ARGS…` against the test database; stdout and stderr are captured."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=worker_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_manage(
    args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `manage.py ARGS…` in a fresh process against the test database."""
    full_env = worker_env()
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
