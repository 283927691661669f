"""Strict parsing of the environment into settings.

django-environ reads the variables; this module refuses values it would otherwise coerce
silently (``DEBUG=maybe`` would read as False), so a typo stops start-up with one line that
names the variable, the problem and the fix.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})
DATABASE_SCHEMES = {
    "sqlite": "sqlite",
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "pgsql": "postgresql",
}
SYNCHRONOUS_LEVELS = ("NORMAL", "FULL")


class SettingsError(ImproperlyConfigured):
    """A malformed environment variable; the message is one line a person can act on."""


def read_str(env: environ.Env, name: str, *, default: str) -> str:
    """The raw text of a variable (django-environ applies `.env` and proxies)."""
    return str(env.str(name, default=default))


def read_timezone(env: environ.Env, name: str, *, default: str) -> str:
    raw = read_str(env, name, default=default).strip()
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{name}: {raw!r} is not a known timezone; use an IANA name such as Europe/Paris") from None
    return raw


def read_bool(env: environ.Env, name: str, *, default: bool) -> bool:
    raw = read_str(env, name, default="true" if default else "false").strip().lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise SettingsError(f"{name}: {raw!r} is not a boolean; use true or false")


def read_int(env: environ.Env, name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = read_str(env, name, default=str(default)).strip()
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}: {value} is out of range; use {minimum} to {maximum}")
    return value


def read_choice(env: environ.Env, name: str, *, default: str, choices: tuple[str, ...]) -> str:
    raw = read_str(env, name, default=default).strip().upper()
    if raw not in choices:
        raise SettingsError(f"{name}: {raw!r} is not one of {', '.join(choices)}")
    return raw


def read_hosts(env: environ.Env, name: str, *, default: list[str]) -> list[str]:
    raw = read_str(env, name, default=",".join(default))
    hosts = [host.strip() for host in raw.split(",") if host.strip()]
    if not hosts:
        raise SettingsError(f"{name}: empty; give a comma-separated list such as 127.0.0.1,localhost")
    return hosts


def read_database(env: environ.Env, name: str, *, default: str) -> dict[str, Any]:
    raw = read_str(env, name, default=default).strip()
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme not in DATABASE_SCHEMES:
        raise SettingsError(
            f"{name}: {raw!r} is not a database URL; use sqlite:////absolute/path.sqlite3 "
            "or postgres://user:password@host:5432/name"
        )
    if DATABASE_SCHEMES[scheme] == "sqlite" and rest in ("", "/"):
        raise SettingsError(f"{name}: the SQLite URL names no file; use sqlite:////absolute/path.sqlite3")
    if DATABASE_SCHEMES[scheme] == "postgresql" and not rest.split("/", 1)[-1].split("?")[0]:
        raise SettingsError(f"{name}: the PostgreSQL URL names no database; end it with /DBNAME")
    try:
        config: dict[str, Any] = environ.Env.db_url_config(raw)
    except (ValueError, KeyError) as exc:
        raise SettingsError(f"{name}: cannot be parsed ({exc})") from None
    return config


def read_secret_key(env: environ.Env, name: str, *, key_file: Path, debug: bool) -> str:
    """The key from the environment, else the per-checkout key file, else a new file in DEBUG."""
    value = read_str(env, name, default="").strip()
    if value:
        if len(value) < 32:
            raise SettingsError(f"{name}: too short ({len(value)} characters); use 50 random characters")
        return value
    if key_file.exists():
        return key_file.read_text(encoding="utf-8").strip()
    if debug:
        return ensure_key_file(key_file)
    raise SettingsError(f"{name}: not set and DEBUG is off; set {name}, or run `make run` once to generate {key_file}")


def ensure_key_file(key_file: Path) -> str:
    """Write a random key for this checkout once (mode 0600) and return it."""
    if key_file.exists():
        return key_file.read_text(encoding="utf-8").strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.touch(mode=0o600)
    key_file.write_text(key + "\n", encoding="utf-8")
    return key
