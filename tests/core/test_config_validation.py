"""Every rejection of the configuration validation, with its exact message and location."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from core.config.contracts import RouteConfig, ToolConfig
from core.config.validation import ConfigInvalidError, document_parse
from core.models import ModelRoute
from tests.core.conftest import MINIMAL


def problems_of(text: str) -> list[str]:
    """The problems (as `location: message`) of MINIMAL plus `text`."""
    with pytest.raises(ConfigInvalidError) as caught:
        document_parse(tomllib.loads(MINIMAL + text))
    return [str(problem) for problem in caught.value.problems]


def problems_raw(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigInvalidError) as caught:
        document_parse(raw)
    return [str(problem) for problem in caught.value.problems]


def test_minimal_document_parses_into_contracts() -> None:
    document = document_parse(tomllib.loads(MINIMAL))
    assert [provider.name for provider in document.providers] == ["replay", "openai"]
    fast = document.routes[1]
    assert isinstance(fast, RouteConfig)
    assert str(fast.price_input_per_mtok) == "0.15"
    assert document.teams[0].members == ("researcher", "writer")
    assert isinstance(document.tools[0], ToolConfig)


def test_example_file_is_valid() -> None:
    document = document_parse(tomllib.loads(Path("config/agentchat.example.toml").read_text()))
    assert document.count() == 18
    assert [route.alias for route in document.routes if route.is_default] == ["replay"]


def test_replay_options_are_checked_by_the_adapter_parser() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["providers"][0]["options"] = {"default_reply": "hi", "chunk_chars": 0, "script": [[{"type": "text"}]]}
    assert problems_raw(raw) == [
        "providers[0].options.default_reply: unknown replay option; use one of chunk_chars, delay_ms, "
        "pause_at_chunk, pause_ms, prefix, script, usage",
        "providers[0].options.chunk_chars: must be a whole number from 1 to 10000",
        "providers[0].options.script[0][0].text: required",
    ]


def test_secret_in_api_key_env_is_rejected_showing_only_a_prefix() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["providers"][1]["api_key_env"] = "sk-EXAMPLEabcdefghijklmnop123456"
    assert problems_raw(raw) == [
        "providers[1].api_key_env: 'sk-EX…' looks like a secret; give the name of an environment variable"
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("sk-ant-api03-EXAMPLEabcdefghij", "sk-an"),
        ("sk-proj-EXAMPLEabcdefghijkl", "sk-pr"),
        ("AIzaSyA1234567890abcdefghijklmnop", "AIzaS"),
        ("ghp_EXAMPLEabcdefghijklmnopqrstu0123", "ghp_E"),
        ("xoxb-1234567890-EXAMPLEabc", "xoxb-"),
        ("AKIAIOSFODNN7EXAMPLE", "AKIAI"),
        ("Bearer abcdefghijklmnop", "Beare"),
        ("X9kLmP2qRsT7vWxY3zAbC4dE8fGh", "X9kLm"),
    ],
)
def test_secret_anywhere_in_any_field_is_rejected(value: str, shown: str) -> None:
    raw = tomllib.loads(MINIMAL)
    raw["providers"][0]["options"] = {"headers": {"Authorization": value}}
    raw["tools"][0]["description"] = f"uses {value} to call"
    assert problems_raw(raw) == [
        f"providers[0].options.headers.Authorization: '{shown}…' looks like a secret; "
        "give the name of an environment variable",
        f"tools[0].description: '{shown}…' looks like a secret; give the name of an environment variable",
    ]


def test_password_in_url_is_rejected() -> None:
    text = '\n[[mcp_servers]]\nname = "web"\ntransport = "sse"\nurl = "https://me:hunter2@mcp.example"\n'
    assert problems_of(text) == [
        "mcp_servers[1].url: 'https…' looks like a secret; give the name of an environment variable"
    ]


def test_ordinary_values_are_not_taken_for_secrets() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["routes"][1]["model_id"] = "claude-3-5-sonnet-20241022"
    raw["tools"][0]["description"] = "Search with meta-llama/Llama-3.1-70B-Instruct via https://api.example.com/v1"
    raw["mcp_servers"][0]["args"] = ["-y", "@modelcontextprotocol/server-filesystem", "./workspace"]
    document = document_parse(raw)
    assert document.routes[1].model_id == "claude-3-5-sonnet-20241022"
    assert document.mcp_servers[0].args == ("-y", "@modelcontextprotocol/server-filesystem", "./workspace")


def test_unknown_kind_and_transport() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["providers"][0]["kind"] = "openia"
    raw["mcp_servers"][0]["transport"] = "websocket"
    assert problems_raw(raw) == [
        "providers[0].kind: unknown kind 'openia'; did you mean 'openai'? "
        "(use one of: openai, anthropic, google, ollama, openai_compatible, replay)",
        "mcp_servers[0].transport: unknown transport 'websocket' (use one of: stdio, streamable_http, sse)",
    ]


def test_duplicate_names() -> None:
    assert problems_of('\n[[tools]]\nname = "web_search"\n') == [
        "tools[1].name: 'web_search' is already used by tools[0]; names must be unique"
    ]


def test_dangling_references() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["routes"][0]["provider"] = "gone"
    raw["skills"][0]["tools"] = ["web_search", "calculator"]
    raw["agents"][1]["mcp_servers"] = ["nowhere"]
    raw["teams"][0]["members"] = ["researcher", "ghost"]
    assert problems_raw(raw) == [
        "routes[0].provider: no provider named 'gone'; define it first or fix the name",
        "skills[0].tools[1]: no tool named 'calculator'; define it first or fix the name",
        "agents[1].mcp_servers[0]: no MCP server named 'nowhere'; define it first or fix the name",
        "teams[0].members[1]: no agent named 'ghost'; define it first or fix the name",
    ]


def test_agent_route_tools_and_skills_must_exist() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["agents"][0].update(route="nope", tools=["x"], skills=["y"])
    assert problems_raw(raw) == [
        "agents[0].route: no route named 'nope'; define it first or fix the name",
        "agents[0].tools[0]: no tool named 'x'; define it first or fix the name",
        "agents[0].skills[0]: no skill named 'y'; define it first or fix the name",
    ]


def test_lead_must_be_a_member() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["teams"][0]["members"] = ["writer"]
    assert problems_raw(raw) == ["teams[0].lead: 'researcher' is not a member of the team; add it to members"]


def test_invalid_env_var_names() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["providers"][1]["api_key_env"] = "OPENAI-API-KEY"
    raw["mcp_servers"][0]["env_vars"] = ["GOOD_NAME", "1BAD"]
    message = (
        "is not a valid environment variable name; "
        "use letters, digits and _, not starting with a digit (e.g. OPENAI_API_KEY)"
    )
    assert problems_raw(raw) == [
        f"providers[1].api_key_env: 'OPENAI-API-KEY' {message}",
        f"mcp_servers[0].env_vars[1]: '1BAD' {message}",
    ]


def test_second_default_route() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["routes"][1]["is_default"] = True
    assert problems_raw(raw) == [
        "routes[1].is_default: a second default route; routes[0] ('main') is already the default; keep one"
    ]


def test_base_url_required_and_validated() -> None:
    assert problems_of(
        '\n[[providers]]\nname = "local"\nkind = "ollama"\n'
        '\n[[providers]]\nname = "proxy"\nkind = "openai_compatible"\nbase_url = "ftp://proxy"\n'
    ) == [
        "providers[2].base_url: required for kind 'ollama'; give the server's URL, e.g. http://localhost:11434/v1",
        "providers[3].base_url: 'ftp://proxy' is not an http(s) URL; give one such as http://localhost:11434/v1",
    ]


def test_api_key_env_required_for_hosted_kinds_only() -> None:
    assert problems_of('\n[[providers]]\nname = "claude"\nkind = "anthropic"\n') == [
        "providers[2].api_key_env: required for kind 'anthropic'; give the name of the environment variable "
        "that holds the key, e.g. ANTHROPIC_API_KEY"
    ]
    document_parse(
        tomllib.loads(
            MINIMAL + '\n[[providers]]\nname = "local"\nkind = "ollama"\nbase_url = "http://localhost:11434"\n'
        )
    )


def test_skill_instructions_inline_xor_path(skills_dir: Path) -> None:
    assert problems_of(
        '\n[[skills]]\nname = "both"\ninstructions = "x"\ninstructions_path = "research-notes.md"\n'
        '\n[[skills]]\nname = "neither"\n'
    ) == [
        "skills[1].instructions_path: give either inline instructions or an instructions_path, not both",
        "skills[2].instructions: empty; give inline instructions or an instructions_path in the skills folder",
    ]


def test_skill_path_must_stay_inside_the_skills_folder(skills_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("secret plans")
    (skills_dir / "link.md").symlink_to(outside)
    assert problems_of(
        '\n[[skills]]\nname = "up"\ninstructions_path = "../outside.md"\n'
        '\n[[skills]]\nname = "link"\ninstructions_path = "link.md"\n'
        f'\n[[skills]]\nname = "abs"\ninstructions_path = "{outside}"\n'
        '\n[[skills]]\nname = "missing"\ninstructions_path = "nope.md"\n'
    ) == [
        f"skills[1].instructions_path: '../outside.md' escapes the skills folder ({skills_dir}); "
        "put the file inside it",
        f"skills[2].instructions_path: 'link.md' escapes the skills folder ({skills_dir}); put the file inside it",
        f"skills[3].instructions_path: '{outside}' is absolute; "
        f"give a path relative to the skills folder ({skills_dir})",
        f"skills[4].instructions_path: 'nope.md' is not a file in the skills folder ({skills_dir}); "
        "create it or fix the path",
    ]


def test_tool_parameters_must_be_an_object_json_schema() -> None:
    assert problems_of(
        '\n[[tools]]\nname = "bad"\nparameters = { type = "strin" }\n'
        '\n[[tools]]\nname = "list"\nparameters = { type = "array" }\n'
    ) == [
        "tools[1].parameters: not a valid JSON Schema: 'strin' is not valid under any of the given schemas "
        "at ['type']; fix the schema",
        'tools[2].parameters: must be a JSON Schema for an object ("type": "object"); put the arguments in properties',
    ]


def test_mcp_transport_requirements() -> None:
    assert problems_of(
        '\n[[mcp_servers]]\nname = "nocmd"\ntransport = "stdio"\n'
        '\n[[mcp_servers]]\nname = "nourl"\ntransport = "streamable_http"\ncommand = "npx"\n'
        '\n[[mcp_servers]]\nname = "badargs"\ntransport = "stdio"\ncommand = "npx"\nargs = ["-y", 3]\n'
    ) == [
        "mcp_servers[1].command: required for the stdio transport; give the program, e.g. npx",
        "mcp_servers[2].url: required for the streamable_http transport; give the server's http(s) URL",
        "mcp_servers[2].command: only for the stdio transport; remove it",
        "mcp_servers[3].args[1]: expected a string, got an integer",
    ]


def test_unknown_top_level_and_record_keys() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["provider"] = [{"name": "x"}]
    raw["routes"][0]["max_output"] = 10
    assert problems_raw(raw) == [
        "provider: unknown section; did you mean 'providers'? (expected: [[providers]], [[routes]], [[tools]], "
        "[[skills]], [[mcp_servers]], [[agents]], [[teams]], [memory])",
        "routes[0].max_output: unknown field for a route; did you mean 'max_output_tokens'? (expected one of: "
        "alias, provider, model_id, context_window_tokens, max_output_tokens, price_input_per_mtok, "
        "price_cached_input_per_mtok, price_cache_write_per_mtok, price_output_per_mtok, is_default, enabled)",
    ]


def test_wrong_types_and_missing_fields() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["routes"][0]["context_window_tokens"] = "8000"
    del raw["routes"][0]["model_id"]
    raw["tools"][0]["requires_approval"] = "yes"
    assert problems_raw(raw) == [
        "routes[0].model_id: required for a route; add it",
        "routes[0].context_window_tokens: expected a whole number, got a string",
        "tools[0].requires_approval: expected true or false, got a string",
    ]


def test_single_brackets_section_is_explained() -> None:
    assert problems_raw({"providers": {"name": "x"}}) == [
        "providers: expected a list of tables; write [[providers]] (double brackets) before each provider"
    ]


def test_every_problem_is_reported_not_just_the_first() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["providers"][0]["kind"] = "nope"
    raw["routes"][1]["max_output_tokens"] = 200000
    raw["teams"][0]["lead"] = "writer2"
    assert problems_raw(raw) == [
        "providers[0].kind: unknown kind 'nope' (use one of: openai, anthropic, google, ollama, "
        "openai_compatible, replay)",
        "routes[1].max_output_tokens: 200000 is more than context_window_tokens (128000); lower it",
        "teams[0].lead: 'writer2' is not a member of the team; add it to members",
    ]


def test_skill_paths_the_file_system_refuses_are_problems_not_crashes(skills_dir: Path) -> None:
    long_name = "a" * 300
    assert problems_of(
        f'\n[[skills]]\nname = "long"\ninstructions_path = "{long_name}"\n'
        '\n[[skills]]\nname = "nul"\ninstructions_path = "notes\\u0000.md"\n'
        '\n[[skills]]\nname = "newline"\ninstructions_path = "notes.md\\n"\n'
    ) == [
        "skills[1].instructions_path: has a file or folder name longer than 255 bytes ('aaaaaaaaaaaaaaaaaaaa'…); "
        "shorten it",
        "skills[2].instructions_path: contains a control character (such as NUL or a newline); remove it",
        "skills[3].instructions_path: contains a control character (such as NUL or a newline); remove it",
    ]


def test_check_config_lists_skill_paths_the_file_system_refuses(skills_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        MINIMAL + f'\n[[skills]]\nname = "long"\ninstructions_path = "{"a" * 300}"\n'
        '\n[[skills]]\nname = "nul"\ninstructions_path = "x\\u0000.md"\n'
    )
    err = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("check_config", str(path), stdout=io.StringIO(), stderr=err)
    assert "2 problems found" in str(caught.value)
    assert err.getvalue().splitlines() == [
        "skills[1].instructions_path: has a file or folder name longer than 255 bytes ('aaaaaaaaaaaaaaaaaaaa'…); "
        "shorten it",
        "skills[2].instructions_path: contains a control character (such as NUL or a newline); remove it",
    ]


@pytest.mark.parametrize("name", ["replay2\n", "replay2\r\n", "\nreplay2"])
def test_a_name_with_a_final_or_leading_newline_is_not_a_name(name: str) -> None:
    raw = tomllib.loads(MINIMAL)
    raw["providers"].append({"name": name, "kind": "replay"})
    assert problems_raw(raw) == [
        f"providers[2].name: {name!r} is not a valid name; use letters, digits, - and _ (at most 64)"
    ]


def test_an_env_var_name_with_a_final_newline_is_refused() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["providers"][1]["api_key_env"] = "OPENAI_API_KEY\n"
    assert [problem.split(":")[0] for problem in problems_raw(raw)] == ["providers[1].api_key_env"]


CREDENTIAL_HINT = (
    "is held under a credential name; the configuration stores no credentials: put the value in an "
    "environment variable and give that variable's name instead (e.g. api_key_env)"
)


def test_values_under_credential_names_are_refused_at_any_depth() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["providers"][0]["options"] = {
        "api_key": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "headers": {"Authorization": "letmein-EXAMPLE", "x-api-key": "1234"},
        "deep": [{"auth": {"clientSecret": "EXAMPLE"}}],
        "max_tokens": 100,
        "token_budget": "lots",
        "api_key_env": "OPENAI_API_KEY",
    }
    assert problems_raw(raw) == [
        f"providers[0].options.api_key: '0f8fa…' {CREDENTIAL_HINT}",
        f"providers[0].options.headers.Authorization: 'letme…' {CREDENTIAL_HINT}",
        f"providers[0].options.headers.x-api-key: '1234…' {CREDENTIAL_HINT}",
        f"providers[0].options.deep[0].auth.clientSecret: 'EXAMP…' {CREDENTIAL_HINT}",
    ]


def test_a_schema_property_named_password_is_a_description_but_its_default_is_a_value() -> None:
    raw = tomllib.loads(MINIMAL)
    raw["tools"][0]["parameters"] = {
        "type": "object",
        "properties": {
            "password": {"type": "string", "description": "the account password"},
            "token": {"type": "string", "default": "EXAMPLE-default-token"},
        },
    }
    assert problems_raw(raw) == [f"tools[0].parameters.properties.token.default: 'EXAMP…' {CREDENTIAL_HINT}"]


def test_a_secret_used_as_a_key_shows_only_its_prefix_in_the_location() -> None:
    key = "sk-proj-" + "RECOGNISABLE" + "0123456789abcdef"
    raw = tomllib.loads(MINIMAL)
    raw["tools"][0]["parameters"] = {"type": "object", "properties": {key: {"type": "string"}}}
    problems = problems_raw(raw)
    assert problems == [
        "tools[0].parameters.properties.sk-pr…: 'sk-pr…' looks like a secret; give the name of an environment variable"
    ]
    assert all("RECOGNISABLE" not in problem for problem in problems)


def test_route_cache_write_price_is_parsed_checked_and_loaded(tmp_path: Path, db: None) -> None:
    priced = MINIMAL.replace(
        "price_output_per_mtok = 0.6", "price_output_per_mtok = 0.6\nprice_cache_write_per_mtok = 3.75"
    )
    assert str(document_parse(tomllib.loads(priced)).routes[1].price_cache_write_per_mtok) == "3.75"
    negative = tomllib.loads(MINIMAL)
    negative["routes"][1]["price_cache_write_per_mtok"] = -1
    assert problems_raw(negative) == [
        "routes[1].price_cache_write_per_mtok: -1 is out of range; use 0 to 999999.999999 (USD per million tokens)"
    ]
    path = tmp_path / "agentchat.toml"
    path.write_text(priced, encoding="utf-8")
    call_command("load_config", str(path), stdout=io.StringIO())
    route = ModelRoute.objects.get(alias="fast")
    assert (str(route.price_cache_write_per_mtok), route.price_cached_input_per_mtok) == ("3.750000", None)
