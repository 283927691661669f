"""A corpus of credentials and of innocent neighbours, by key name and by value shape.

By name: a string under a key whose name is a credential word (`api_key`, `Authorization`,
`x-api-key`, `clientSecret`…) is refused whatever its shape, at any depth of any mapping field.
By shape: free text holding something shaped like a key is refused wherever it appears.
Innocent neighbours (`max_tokens`, `token_budget`, a JSON Schema property named `password`,
model ids, URLs, UUIDs in prose) stay accepted.

Key-shaped values are built at run time from a seeded generator (or carry EXAMPLE), so that the
repository's own secret scan finds nothing in this file.
"""

from __future__ import annotations

import random
import string
import tomllib
from typing import Any
from urllib.parse import quote

import pytest

from core.config.secrets import credential_key, find_secret, redact
from core.config.validation import ConfigInvalidError, document_parse
from tests.core.conftest import MINIMAL

_RNG = random.Random(20261130)
ALNUM = string.ascii_letters + string.digits
HEXDIGITS = "0123456789abcdef"


def rand(alphabet: str, length: int) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(length))


def uuid_like() -> str:
    return "-".join(rand(HEXDIGITS, n) for n in (8, 4, 4, 4, 12))


# --- by name: the key says it holds a credential ------------------------------------------------

CREDENTIAL_NAMES = [
    "api_key",
    "apiKey",
    "APIKey",
    "apikey",
    "API_KEY",
    "x-api-key",
    "X-Api-Key",
    "openai_api_key",
    "token",
    "access_token",
    "refreshToken",
    "X-Auth-Token",
    "secret",
    "client_secret",
    "clientSecret",
    "password",
    "db.password",
    "passwd",
    "Authorization",
    "Proxy-Authorization",
    "bearer",
    "credentials",
    "credential",
    "access_key",
    "private_key",
    "secret_key",
    "aws_secret_access_key",
    "session_token",
    "passphrase",
    "secret_value",
]


# Whatever the shape: a UUID, a LiteLLM-style short key, a 24-character hex token, a plain word.
def credential_values() -> list[str]:
    return [uuid_like(), "sk" + "-" + rand(string.digits, 4), rand(HEXDIGITS, 24), "letmein-EXAMPLE"]


BY_NAME = [(name, value) for name in CREDENTIAL_NAMES for value in credential_values()]

# Mapping fields of the records: where the credential-named key sits.
PLACES = ["options", "options.headers", "options.env", "options.extra_body.auth"]


def _nest(place: str, key: str, value: str) -> tuple[dict[str, Any], str]:
    """`{headers: {key: value}}` for `options.headers`, and the location of the value."""
    parts = place.split(".")[1:]
    inner: dict[str, Any] = {key: value}
    for part in reversed(parts):
        inner = {part: inner}
    return inner, f"providers[1].{place}.{key}"


def problems_of(raw: dict[str, Any]) -> list[str]:
    try:
        document_parse(raw)
    except ConfigInvalidError as exc:
        return [str(problem) for problem in exc.problems]
    return []


@pytest.mark.parametrize(("index", "name", "value"), [(i, n, v) for i, (n, v) in enumerate(BY_NAME)])
def test_a_value_under_a_credential_name_is_refused(index: int, name: str, value: str) -> None:
    raw = tomllib.loads(MINIMAL)
    options, location = _nest(PLACES[index % len(PLACES)], name, value)
    raw["providers"][1]["options"] = options
    problems = problems_of(raw)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{location}: {redact(value)!r} "), problems
    assert "environment variable" in problems[0]
    assert value not in problems[0] or len(value) <= 5


@pytest.mark.parametrize("name", CREDENTIAL_NAMES)
def test_a_tool_schema_default_for_a_credential_named_property_is_refused(name: str) -> None:
    raw = tomllib.loads(MINIMAL)
    raw["tools"][0]["parameters"] = {
        "type": "object",
        "properties": {name: {"type": "string", "description": "the account's", "default": "EXAMPLE-value"}},
    }
    assert problems_of(raw) == [
        f"tools[0].parameters.properties.{name}.default: 'EXAMP…' is held under a credential name; the "
        "configuration stores no credentials: put the value in an environment variable and give that "
        "variable's name instead (e.g. api_key_env)"
    ]


# --- by name: innocent neighbours -----------------------------------------------------------------

INNOCENT_NAMES = [
    "max_tokens",
    "maxTokens",
    "max_output_tokens",
    "token_budget",
    "tokens",
    "token_count",
    "token_limit",
    "api_key_env",
    "apiKeyEnv",
    "token_env",
    "password_file",
    "secret_name",
    "api_key_header",
    "auth_type",
    "token_type",
    "access_key_id",
    "keyword",
    "keys",
    "monkey",
    "author",
    "authority",
    "tokenizer",
    "secretary",
    "passthrough",
    "bearer_format",
]
INNOCENT_VALUES = ["OPENAI_API_KEY", "1024", "plenty", "cl100k_base"]
INNOCENT_BY_NAME = [(name, value) for name in INNOCENT_NAMES for value in INNOCENT_VALUES]


@pytest.mark.parametrize(("name", "value"), INNOCENT_BY_NAME)
def test_an_innocent_name_keeps_its_value(name: str, value: str) -> None:
    assert not credential_key(name)
    raw = tomllib.loads(MINIMAL)
    raw["providers"][1]["options"] = {name: value, "headers": {name: value}}
    assert problems_of(raw) == []


@pytest.mark.parametrize("name", ["password", "token", "api_key", "Authorization", "client_secret"])
def test_a_schema_property_named_like_a_credential_describes_a_value(name: str) -> None:
    raw = tomllib.loads(MINIMAL)
    raw["tools"][0]["parameters"] = {
        "type": "object",
        "properties": {
            name: {"type": "string", "description": "the user's password, never logged", "minLength": 8},
            "query": {"type": "string"},
        },
        "required": [name],
    }
    assert problems_of(raw) == []


# --- by shape: free text --------------------------------------------------------------------------


def _shapes() -> list[str]:
    zero_width = "\u200b"
    openai = "sk" + "-proj-" + rand(ALNUM, 40)
    return [
        "sk" + "-" + rand(ALNUM, 48),
        openai,
        "sk" + "-ant-api03-" + rand(ALNUM, 40),
        "AI" + "za" + rand(ALNUM, 35),
        "gh" + "p_" + rand(ALNUM, 36),
        "gh" + "o_" + rand(ALNUM, 36),
        "github" + "_pat_" + rand(ALNUM, 40),
        "xo" + "xb-" + rand(string.digits, 12) + "-" + rand(ALNUM, 24),
        "xo" + "xp-" + rand(string.digits, 12) + "-" + rand(ALNUM, 24),
        "AK" + "IA" + rand(string.ascii_uppercase + string.digits, 16),
        "AS" + "IA" + rand(string.ascii_uppercase + string.digits, 16),
        "gl" + "pat-" + rand(ALNUM, 20),
        "h" + "f_" + rand(ALNUM, 34),
        "sk" + "_live_" + rand(ALNUM, 24),
        "rk" + "_test_" + rand(ALNUM, 24),
        "Bear" + "er " + rand(ALNUM, 32),
        "Bas" + "ic " + rand(ALNUM, 24),
        "Tok" + "en " + rand(ALNUM, 24),
        "api" + "_key=" + rand(ALNUM, 20),
        "pass" + "word: " + rand(ALNUM, 12),
        "https://user:" + rand(ALNUM, 12) + "@db.example.com/x",
        "postgres://app:" + rand(ALNUM, 12) + "@localhost:5432/db",
        rand(ALNUM, 40),
        rand(HEXDIGITS, 40),
        rand(HEXDIGITS, 64),
        # A key with a zero-width space inside, and the same key percent-encoded.
        openai[:10] + zero_width + openai[10:],
        quote(openai, safe=""),
        openai.replace("-", "%2D"),
        "sk" + "-" + zero_width + rand(ALNUM, 30),
        "the key is " + "sk" + "-proj-" + rand(ALNUM, 30) + ", keep it safe",
    ]


SHAPES = _shapes()


@pytest.mark.parametrize("text", SHAPES)
def test_free_text_shaped_like_a_credential_is_refused(text: str) -> None:
    assert find_secret(text) is not None
    raw = tomllib.loads(MINIMAL)
    raw["tools"][0]["description"] = f"Calls the service with {text} each time."
    problems = problems_of(raw)
    assert len(problems) == 1, problems
    assert problems[0].startswith("tools[0].description: "), problems
    assert "looks like a secret" in problems[0]


INNOCENT_TEXT = [
    "Search the web and summarise the top results.",
    "qwen2.5-coder-32b-instruct-q4_k_m",
    "claude-3-5-sonnet-20241022",
    "gpt-4o-mini-2024-07-18",
    "meta-llama/Llama-3.1-70B-Instruct",
    "http://localhost:11434/v1",
    "https://api.example.com/v1/chat/completions?stream=true",
    "@modelcontextprotocol/server-filesystem",
    "session 0f8fad5b-d9cb-469f-a165-70867728950e was archived",
    "Use the token budget wisely; max_tokens is 4096.",
    "Set OPENAI_API_KEY in the environment, never in this file.",
    "Ask for the password only through the login form.",
    "Bearer tokens go in the Authorization header.",
    "a task-1234 ticket",
    "ModelContextProtocolServer2025",
    "commit 3ba2774",
    "café au lait, naïve résumé",
    "100%25 sure",
    "sk-learn",
    "The secret to good answers is short prompts.",
]


@pytest.mark.parametrize("text", INNOCENT_TEXT)
def test_innocent_free_text_is_accepted(text: str) -> None:
    assert find_secret(text) is None
    raw = tomllib.loads(MINIMAL)
    raw["tools"][0]["description"] = text
    assert problems_of(raw) == []


def test_the_corpus_is_large_enough() -> None:
    credential_cases = len(BY_NAME) + len(CREDENTIAL_NAMES) + len(SHAPES)
    innocent_cases = len(INNOCENT_BY_NAME) + 5 + len(INNOCENT_TEXT)
    assert credential_cases >= 100
    assert innocent_cases >= 100
    assert len(BY_NAME) >= 100
    assert len(INNOCENT_BY_NAME) >= 100
