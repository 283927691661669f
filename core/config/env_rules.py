"""Environment variables a configuration may not name: Agent Chat's own settings.

A provider's `api_key_env` is sent to its `base_url`, and an MCP server's `env_vars` are handed to
the program it runs; naming `DATABASE_URL` or `SECRET_KEY` there would hand the site's own secrets
out. Readiness would also reveal whether they are set.
"""

from __future__ import annotations

# Every variable `agentchat_site/settings.py` reads that has no refused prefix, plus the libpq
# variables that can carry the database's credentials.
OWN_SETTINGS = frozenset(
    {
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "DEBUG",
        "LOG_LEVEL",
        "PGPASSFILE",
        "PGPASSWORD",
        "PGSERVICEFILE",
        "SECRET_KEY",
    }
)
OWN_PREFIXES = ("AGENTCHAT_", "DJANGO_", "SQLITE_")


def env_name_refusal(name: str) -> str | None:
    """Why `name` may not be named by a configuration, or None when it may."""
    upper = name.upper()
    own = upper in OWN_SETTINGS or upper.startswith(OWN_PREFIXES)
    if not own:
        return None
    return (
        f"{name!r} is one of Agent Chat's own settings, which a configuration may not hand out; "
        "name a variable of your own, such as OPENAI_API_KEY"
    )
