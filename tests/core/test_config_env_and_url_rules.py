"""A configuration may not name Agent Chat's own settings, nor point a URL at a metadata service."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from core.config.env_rules import env_name_refusal
from core.config.network_rules import url_host_refusal
from core.models import McpServerSpec, Provider
from tests.core.conftest import MINIMAL, ROOT, WriteConfig

OWN = "is one of Agent Chat's own settings, which a configuration may not hand out; "
FIX = "name a variable of your own, such as OPENAI_API_KEY"


def own_message(name: str) -> str:
    return f"{name!r} {OWN}{FIX}"


def metadata_message(host: str) -> str:
    return (
        f"points at a link-local or cloud-metadata address ({host}), which could hand out the machine's "
        "credentials; give the model server's own address, such as http://localhost:11434/v1 or "
        "https://api.openai.com/v1"
    )


def fails(command: str, path: Path) -> tuple[str, list[str]]:
    err = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(command, str(path), stdout=io.StringIO(), stderr=err)
    return str(caught.value), err.getvalue().splitlines()


# --- Environment variable names ------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "DATABASE_URL",
        "SECRET_KEY",
        "DEBUG",
        "ALLOWED_HOSTS",
        "LOG_LEVEL",
        "SQLITE_BUSY_TIMEOUT_MS",
        "AGENTCHAT_OPERATOR_PASSWORD",
        "AGENTCHAT_ANYTHING",
        "DJANGO_SETTINGS_MODULE",
        "PGPASSWORD",
        "database_url",
    ],
)
def test_own_settings_are_refused(name: str) -> None:
    assert env_name_refusal(name) == own_message(name)


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MY_DATABASE_URL", "GITHUB_TOKEN"])
def test_other_names_are_allowed(name: str) -> None:
    assert env_name_refusal(name) is None


def test_every_variable_the_settings_read_is_refused() -> None:
    source = (ROOT / "agentchat_site" / "settings.py").read_text(encoding="utf-8")
    names = set(re.findall(r'read_\w+\(\s*env,\s*"([A-Z0-9_]+)"', source))
    assert {"DATABASE_URL", "SECRET_KEY", "DEBUG", "LOG_LEVEL"} <= names  # the scan finds them
    assert {name for name in names if env_name_refusal(name) is None} == set()


# --- URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://169.254.1.1:8080/v1", "169.254.1.1"),
        ("http://2852039166/", "2852039166"),  # decimal
        ("http://0xA9FEA9FE/", "0xa9fea9fe"),  # hex
        ("http://0xa9.0xfe.0xa9.0xfe/", "0xa9.0xfe.0xa9.0xfe"),
        ("http://0251.0376.0251.0376/", "0251.0376.0251.0376"),  # octal
        ("http://169.254.43518/", "169.254.43518"),  # the short a.b.c form
        ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254"),  # IPv4-mapped IPv6
        ("http://[::ffff:a9fe:a9fe]/", "::ffff:a9fe:a9fe"),
        ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe"),  # NAT64
        ("http://[fd00:ec2::254]/", "fd00:ec2::254"),  # AWS over IPv6
        ("http://[fe80::1]/", "fe80::1"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal"),
        ("http://METADATA.google.internal./", "metadata.google.internal"),
        ("http://100.100.100.200/", "100.100.100.200"),  # Alibaba Cloud
        ("http://localhost@169.254.169.254/", "169.254.169.254"),  # the user@host trick
        ("http://api.openai.com@0xA9FEA9FE:80/", "0xa9fea9fe"),
        ("http://169.254.169.254@localhost/", "169.254.169.254"),  # parsed the other way by some clients
        ("http://169.254.169.254\\@localhost/", "169.254.169.254"),
    ],
)
def test_link_local_and_metadata_addresses_are_refused(url: str, host: str) -> None:
    assert url_host_refusal(url) == metadata_message(host)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:11434/v1",
        "http://127.0.0.1:8080/v1",
        "http://[::1]:11434/",
        "http://10.0.0.5:8000/v1",
        "https://api.openai.com/v1",
        "https://generativelanguage.googleapis.com/v1beta",
        "http://169.254.example.com/",
        "http://metadata.example.com/",
    ],
)
def test_ordinary_and_local_addresses_are_allowed(url: str) -> None:
    assert url_host_refusal(url) is None


# --- Through the file and the API ----------------------------------------------------------

BAD_FILE = (
    MINIMAL.replace('api_key_env = "OPENAI_API_KEY"', 'api_key_env = "DATABASE_URL"')
    + """
[[providers]]
name = "sneaky"
kind = "openai_compatible"
base_url = "http://2852039166/latest/meta-data/"
api_key_env = "SNEAKY_KEY"

[[mcp_servers]]
name = "leaky"
transport = "stdio"
command = "python3"
env_vars = ["HOME_DIR", "AGENTCHAT_OPERATOR_PASSWORD"]

[[mcp_servers]]
name = "remote"
transport = "streamable_http"
url = "http://metadata.google.internal/mcp"
"""
)


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["check_config", "load_config"])
def test_the_file_with_an_own_setting_and_a_metadata_url_is_refused(command: str, write_config: WriteConfig) -> None:
    path = write_config(BAD_FILE)
    error, printed = fails(command, path)
    assert printed == [
        f"providers[1].api_key_env: {own_message('DATABASE_URL')}",
        f"providers[2].base_url: {metadata_message('2852039166')}",
        f"mcp_servers[1].env_vars[1]: {own_message('AGENTCHAT_OPERATOR_PASSWORD')}",
        f"mcp_servers[2].url: {metadata_message('metadata.google.internal')}",
    ]
    assert error.startswith(f"{path}: 4 problems found; fix them and run the command again")
    assert Provider.objects.count() == 0
    assert McpServerSpec.objects.count() == 0
