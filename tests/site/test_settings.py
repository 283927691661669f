"""Settings parsing: good values load, each malformed variable stops start-up with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import environ
import pytest

from agentchat_site.envconfig import (
    SettingsError,
    ensure_key_file,
    read_bool,
    read_database,
    read_hosts,
    read_int,
    read_secret_key,
)
from tests.procs import ROOT


def make_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> environ.Env:
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return environ.Env()


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("off", False), ("FALSE", False)])
def test_bool_accepts_clear_words(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    assert read_bool(make_env(monkeypatch, DEBUG=raw), "DEBUG", default=False) is expected


def test_bool_rejects_maybe(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match=r"^DEBUG: 'maybe' is not a boolean; use true or false$"):
        read_bool(make_env(monkeypatch, DEBUG="maybe"), "DEBUG", default=False)


def test_int_rejects_words_and_out_of_range(monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env(monkeypatch, N="ten")
    with pytest.raises(SettingsError, match=r"^N: 'ten' is not a whole number$"):
        read_int(env, "N", default=1, minimum=1, maximum=5)
    env = make_env(monkeypatch, N="9")
    with pytest.raises(SettingsError, match=r"^N: 9 is out of range; use 1 to 5$"):
        read_int(env, "N", default=1, minimum=1, maximum=5)


def test_database_url_sqlite_and_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env(monkeypatch, DATABASE_URL="sqlite:////tmp/x.sqlite3")
    assert read_database(env, "DATABASE_URL", default="")["ENGINE"] == "django.db.backends.sqlite3"
    env = make_env(monkeypatch, DATABASE_URL="postgres://u:p@127.0.0.1:5433/agentchat")
    config = read_database(env, "DATABASE_URL", default="")
    assert (config["ENGINE"], config["NAME"], config["PORT"]) == ("django.db.backends.postgresql", "agentchat", 5433)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("nonsense", "DATABASE_URL: 'nonsense' is not a database URL"),
        ("mysql://u@h/db", "DATABASE_URL: 'mysql://u@h/db' is not a database URL"),
        ("sqlite://", "DATABASE_URL: the SQLite URL names no file"),
        ("postgres://u@h:5432/", "DATABASE_URL: the PostgreSQL URL names no database"),
    ],
)
def test_database_url_rejects_malformed(monkeypatch: pytest.MonkeyPatch, raw: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        read_database(make_env(monkeypatch, DATABASE_URL=raw), "DATABASE_URL", default="")
    assert str(caught.value).startswith(message)


def test_hosts_split_and_reject_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_hosts(make_env(monkeypatch, H="a.example, b.example"), "H", default=[]) == ["a.example", "b.example"]
    with pytest.raises(SettingsError, match=r"^H: empty"):
        read_hosts(make_env(monkeypatch, H=" , "), "H", default=[])


def test_secret_key_rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    monkeypatch.delenv("SECRET_KEY", raising=False)
    env = environ.Env()
    with pytest.raises(SettingsError, match=r"^SECRET_KEY: not set and DEBUG is off"):
        read_secret_key(env, "SECRET_KEY", key_file=key_file, debug=False)
    generated = read_secret_key(env, "SECRET_KEY", key_file=key_file, debug=True)
    assert len(generated) >= 50
    assert key_file.stat().st_mode & 0o777 == 0o600
    # Generated once per checkout: the file is reused, with DEBUG off too.
    assert read_secret_key(env, "SECRET_KEY", key_file=key_file, debug=False) == generated
    assert ensure_key_file(key_file) == generated
    with pytest.raises(SettingsError, match=r"^SECRET_KEY: too short"):
        read_secret_key(make_env(monkeypatch, SECRET_KEY="short"), "SECRET_KEY", key_file=key_file, debug=False)


def run_check(**env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DATABASE_URL", "SQLITE_SYNCHRONOUS")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=full, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        ("DATABASE_URL", "nonsense", "error: DATABASE_URL: 'nonsense' is not a database URL;"),
        ("DEBUG", "maybe", "error: DEBUG: 'maybe' is not a boolean; use true or false"),
        ("SQLITE_SYNCHRONOUS", "sometimes", "error: SQLITE_SYNCHRONOUS: 'SOMETIMES' is not one of NORMAL, FULL"),
        ("AGENTCHAT_TIMEZONE", "Mars/Olympus", "error: AGENTCHAT_TIMEZONE: 'Mars/Olympus' is not a known timezone"),
        ("AGENTCHAT_COMPACTION_THRESHOLD_PERCENT", "150", "error: AGENTCHAT_COMPACTION_THRESHOLD_PERCENT: 150 is out"),
        ("AGENTCHAT_MESSAGE_PAGE_BYTES", "100", "error: AGENTCHAT_MESSAGE_PAGE_BYTES: 100 is out"),
    ],
)
def test_manage_py_stops_with_one_line(variable: str, value: str, line: str) -> None:
    result = run_check(**{variable: value})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(line)


def test_manage_py_starts_with_defaults() -> None:
    result = run_check()
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
