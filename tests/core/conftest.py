"""Fixtures for core's tests: configuration files, the skills folder and a loaded example."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Protocol

import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings

from core.config.contracts import ConfigDocument
from core.config.loading import config_file_read

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "config" / "agentchat.example.toml"

# A small valid configuration; tests append records or replace sections.
MINIMAL = """
[[providers]]
name = "replay"
kind = "replay"

[[providers]]
name = "openai"
kind = "openai"
api_key_env = "OPENAI_API_KEY"

[[routes]]
alias = "main"
provider = "replay"
model_id = "replay-1"
context_window_tokens = 8000
max_output_tokens = 1000
is_default = true

[[routes]]
alias = "fast"
provider = "openai"
model_id = "gpt-4o-mini"
context_window_tokens = 128000
max_output_tokens = 16384
price_input_per_mtok = 0.15
price_output_per_mtok = 0.6

[[tools]]
name = "web_search"
description = "Search the web."
parameters = { type = "object", properties = { query = { type = "string" } }, required = ["query"] }

[[skills]]
name = "notes"
instructions = "Keep short notes."
tools = ["web_search"]

[[mcp_servers]]
name = "files"
transport = "stdio"
command = "python3"
args = ["-m", "files_server"]

[[agents]]
name = "researcher"
route = "main"
tools = ["web_search"]
skills = ["notes"]

[[agents]]
name = "writer"
route = "fast"
mcp_servers = ["files"]

[[teams]]
name = "desk"
lead = "researcher"
members = ["researcher", "writer"]
"""


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Settings) -> None:
    """The operator fixture hashes a password per test; a fast hasher keeps the suite quick."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def skills_dir(tmp_path: Path, settings: Settings) -> Path:
    """A private skills folder holding a copy of the example skill."""
    folder = tmp_path / "skills"
    folder.mkdir()
    shutil.copy(ROOT / "skills" / "research-notes.md", folder / "research-notes.md")
    settings.AGENTCHAT_SKILLS_DIR = folder
    return folder


class WriteConfig(Protocol):
    def __call__(self, text: str, name: str = ...) -> Path: ...


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write TOML text to a file and return its path."""

    def write(text: str, name: str = "agentchat.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def minimal_path(write_config: WriteConfig) -> Path:
    return write_config(MINIMAL)


@pytest.fixture
def loaded(db: None, minimal_path: Path) -> ConfigDocument:
    """The minimal configuration, loaded into the database."""
    call_command("load_config", str(minimal_path), stdout=io.StringIO())
    return config_file_read(minimal_path)
