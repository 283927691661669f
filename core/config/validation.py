"""Validation of configuration records: the one place that decides what may be stored.

Three passes, each reporting every problem with its location (`routes[0].provider`):

1. shape (`record_parse`): a raw mapping (a TOML table, an API body) becomes a contract; unknown
   fields, missing fields and wrong types are reported.
2. rules (`record_rules`): values that look like secrets (in any string, anywhere), names,
   kinds and transports, URLs, env var names, JSON Schema, skill paths, per-kind requirements.
3. references (`record_references`): every name a record refers to exists.

`document_parse` runs all three over a whole file (plus duplicate names and a second default
route); `record_validate` runs passes 2 and 3 for one record against the names in the database,
for the API and the admin. Both raise `ConfigInvalidError`, an `InvalidInputError` whose
`fields` map each location to its messages.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath
from types import UnionType
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from core.config.contracts import (
    BUILTIN_TOOLS,
    CONTRACTS,
    AgentConfig,
    ConfigDocument,
    Kind,
    McpServerConfig,
    MemoryConfig,
    Problem,
    ProviderConfig,
    RecordConfig,
    RouteConfig,
    SkillConfig,
    TeamConfig,
    ToolConfig,
    kind_of,
)
from core.config.env_rules import env_name_refusal
from core.config.live_options import live_options_parse
from core.config.models import McpTransport, ProviderKind
from core.config.network_rules import url_host_refusal
from core.config.replay_options import replay_options_parse
from core.config.secrets import (
    credential_message,
    credential_values,
    find_secret,
    iter_strings,
    redact_all,
    secret_message,
)
from core.errors import InvalidInputError

NAME_RE = re.compile(r"[-a-zA-Z0-9_]+")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NAME_MAX = 64
ENV_NAME_MAX = 128
URL_MAX = 500
MODEL_ID_MAX = 200
PATH_MAX = 500
PATH_PART_MAX = 255  # bytes in one file or folder name on common file systems
INT_MAX = 2_147_483_647
MAX_TOOL_ROUNDS = 64
PRICE_MAX = Decimal("999999.999999")
PRICE_PLACES = 6

KINDS_NEEDING_BASE_URL = frozenset({ProviderKind.OLLAMA, ProviderKind.OPENAI_COMPATIBLE})
KINDS_NEEDING_KEY = frozenset({ProviderKind.OPENAI, ProviderKind.ANTHROPIC, ProviderKind.GOOGLE})
HTTP_TRANSPORTS = frozenset({McpTransport.STREAMABLE_HTTP, McpTransport.SSE})

# field → type tag; required fields per kind.
_SHAPES: dict[Kind, dict[str, str]] = {
    Kind.PROVIDER: {
        "name": "str",
        "kind": "str",
        "base_url": "str",
        "api_key_env": "str",
        "enabled": "bool",
        "options": "object",
    },
    Kind.ROUTE: {
        "alias": "str",
        "provider": "str",
        "model_id": "str",
        "context_window_tokens": "int",
        "max_output_tokens": "int",
        "price_input_per_mtok": "decimal",
        "price_cached_input_per_mtok": "decimal",
        "price_cache_write_per_mtok": "decimal",
        "price_output_per_mtok": "decimal",
        "is_default": "bool",
        "enabled": "bool",
    },
    Kind.TOOL: {
        "name": "str",
        "description": "str",
        "parameters": "object",
        "requires_approval": "bool",
        "enabled": "bool",
        "builtin": "str",
        "mcp": "str",
        "client": "bool",
    },
    Kind.SKILL: {
        "name": "str",
        "description": "str",
        "instructions": "str",
        "instructions_path": "str",
        "tools": "str_list",
        "enabled": "bool",
    },
    Kind.MCP_SERVER: {
        "name": "str",
        "transport": "str",
        "command": "str",
        "args": "str_list",
        "url": "str",
        "env_vars": "str_list",
        "tool_allowlist": "str_list",
        "enabled": "bool",
    },
    Kind.AGENT: {
        "name": "str",
        "description": "str",
        "instructions": "str",
        "route": "str",
        "tools": "str_list",
        "skills": "str_list",
        "mcp_servers": "str_list",
        "enabled": "bool",
        "max_tool_rounds": "int",
    },
    Kind.TEAM: {
        "name": "str",
        "description": "str",
        "lead": "str",
        "members": "str_list",
        "enabled": "bool",
    },
}
_REQUIRED: dict[Kind, tuple[str, ...]] = {
    Kind.PROVIDER: ("name", "kind"),
    Kind.ROUTE: ("alias", "provider", "model_id", "context_window_tokens", "max_output_tokens"),
    Kind.TOOL: ("name",),
    Kind.SKILL: ("name",),
    Kind.MCP_SERVER: ("name", "transport"),
    Kind.AGENT: ("name", "route"),
    Kind.TEAM: ("name", "lead", "members"),
}


def record_fields(kind: Kind) -> tuple[str, ...]:
    """The fields a record of `kind` accepts, in declaration order."""
    return tuple(_SHAPES[kind])


class ConfigInvalidError(InvalidInputError):
    """One or more configuration problems; `problems` keeps each with its location."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        by_location: dict[str, list[str]] = {}
        for problem in self.problems:
            by_location.setdefault(problem.location or "non_field_errors", []).append(problem.message)
        super().__init__("; ".join(str(problem) for problem in self.problems), fields=by_location)


class Problems:
    """Collects problems in order, once each."""

    def __init__(self) -> None:
        self._items: dict[Problem, None] = {}

    def add(self, location: str, message: str) -> None:
        # A location is built from mapping keys, and a key may be a secret: show at most its prefix.
        self._items[Problem(redact_all(location), message)] = None

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[Problem]:
        return list(self._items)

    def locations(self) -> set[str]:
        return {problem.location for problem in self._items}

    def raise_if_any(self) -> None:
        if self._items:
            raise ConfigInvalidError(self.items())


def at(location: str, name: str) -> str:
    """`location.name`, or just `name` at the top level."""
    return f"{location}.{name}" if location else name


# What a value is called in a problem, by type (first match; bool before int, which it subclasses).
_TYPE_NAMES: tuple[tuple[type | UnionType, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float | Decimal, "a decimal number"),
    (str, "a string"),
    (Mapping, "a table"),
    (list | tuple, "a list"),
    (type(None), "null"),
)


def _type_name(value: object) -> str:
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f"; did you mean {close[0]!r}?" if close else ""


# --- pass 1: shape ---------------------------------------------------------------------------


def _convert(tag: str, value: object, location: str, problems: Problems) -> object:
    """`value` converted for a field of type `tag`, or None after adding a problem."""
    if tag == "str":
        if isinstance(value, str):
            return value
        problems.add(location, f"expected a string, got {_type_name(value)}")
    elif tag == "bool":
        if isinstance(value, bool):
            return value
        problems.add(location, f"expected true or false, got {_type_name(value)}")
    elif tag == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        problems.add(location, f"expected a whole number, got {_type_name(value)}")
    elif tag == "decimal":
        return _convert_decimal(value, location, problems)
    elif tag == "object":
        if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
            return dict(value)
        problems.add(location, f"expected a table (JSON object), got {_type_name(value)}")
    elif tag == "str_list":
        if not isinstance(value, list | tuple):
            problems.add(location, f"expected a list of strings, got {_type_name(value)}")
            return None
        bad = [index for index, item in enumerate(value) if not isinstance(item, str)]
        for index in bad:
            problems.add(f"{location}[{index}]", f"expected a string, got {_type_name(value[index])}")
        return None if bad else tuple(value)
    return None


def _convert_decimal(value: object, location: str, problems: Problems) -> Decimal | None:
    if value is None:
        return None  # no price known (JSON null; TOML leaves the key out)
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        problems.add(location, f"expected a number such as 2.5, got {_type_name(value)}")
        return None
    try:
        # str() first: a TOML float 0.15 becomes Decimal("0.15"), not its binary expansion.
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        problems.add(location, "expected a number such as 2.5, got a string that is not a number")
        return None
    if not number.is_finite():
        problems.add(location, "expected a finite number such as 2.5")
        return None
    return number


def record_parse(kind: Kind, raw: object, location: str, problems: Problems) -> RecordConfig | None:
    """A contract from a raw mapping, or None after adding every shape problem to `problems`."""
    if not isinstance(raw, Mapping):
        problems.add(location, f"expected a table of fields, got {_type_name(raw)}")
        return None
    shape = _SHAPES[kind]
    before = len(problems)
    for key, value in raw.items():
        if key not in shape:
            problems.add(
                at(location, str(key)),
                f"unknown field for a {kind.label}{_suggest(str(key), shape)} (expected one of: {', '.join(shape)})",
            )
            _check_secrets({key: value}, location, problems)
    for key in _REQUIRED[kind]:
        if key not in raw:
            problems.add(at(location, key), f"required for a {kind.label}; add it")
    values: dict[str, Any] = {}
    for key, tag in shape.items():
        if key in raw:
            values[key] = _convert(tag, raw[key], at(location, key), problems)
    if len(problems) > before:
        return None
    record: RecordConfig = CONTRACTS[kind](**values)
    return record


def record_to_raw(record: RecordConfig) -> dict[str, object]:
    """A contract as a raw mapping `record_parse` accepts (lists for tuples); for partial updates."""
    return {
        item.name: list(value) if isinstance(value := getattr(record, item.name), tuple) else value
        for item in fields(record)
    }


# --- pass 2: rules ---------------------------------------------------------------------------


def _check_secrets(value: object, location: str, problems: Problems) -> set[str]:
    """Add a problem for each string that looks like a secret or is held under a credential name
    (`options.headers.Authorization`); return their locations."""
    found: set[str] = set()
    for where, text in iter_strings(value, location):
        suspect = find_secret(text)
        if suspect is not None:
            problems.add(where, secret_message(suspect))
            found.add(where)
    for where, text in credential_values(value, location):
        if where not in found:
            problems.add(where, credential_message(text))
            found.add(where)
    return found


def _check_name(value: str, location: str, problems: Problems) -> None:
    if not value:
        problems.add(location, "empty; give a name of letters, digits, - and _")
    elif len(value) > NAME_MAX or not NAME_RE.fullmatch(value):
        problems.add(
            location, f"{value[:NAME_MAX]!r} is not a valid name; use letters, digits, - and _ (at most {NAME_MAX})"
        )


def _check_env_name(value: str, location: str, problems: Problems) -> None:
    if len(value) > ENV_NAME_MAX or not ENV_NAME_RE.fullmatch(value):
        problems.add(
            location,
            f"{value[:ENV_NAME_MAX]!r} is not a valid environment variable name; "
            "use letters, digits and _, not starting with a digit (e.g. OPENAI_API_KEY)",
        )
    elif (refusal := env_name_refusal(value)) is not None:
        problems.add(location, refusal)


def _check_url(value: str, location: str, problems: Problems) -> None:
    if len(value) > URL_MAX:
        problems.add(location, f"longer than {URL_MAX} characters; shorten it")
        return
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        problems.add(location, f"{value!r} is not an http(s) URL; give one such as http://localhost:11434/v1")
    elif (refusal := url_host_refusal(value)) is not None:
        problems.add(location, refusal)


def _check_json_values(value: object, location: str, problems: Problems) -> None:
    """Only what JSON can hold: TOML dates and times or NaN would not survive storage."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_json_values(item, at(location, str(key)), problems)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json_values(item, f"{location}[{index}]", problems)
    elif isinstance(value, float) and not math.isfinite(value):
        problems.add(location, "not a finite number; JSON cannot hold it")
    elif not (value is None or isinstance(value, str | int | float | bool)):
        problems.add(location, f"{_type_name(value)} cannot be stored; use a string")


def _check_unique_items(values: Sequence[str], location: str, problems: Problems) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            problems.add(f"{location}[{index}]", f"{value!r} is listed twice; list it once")
        seen.add(value)


def _check_names(values: Sequence[str], location: str, problems: Problems) -> None:
    for index, value in enumerate(values):
        _check_name(value, f"{location}[{index}]", problems)
    _check_unique_items(values, location, problems)


def record_rules(record: RecordConfig, location: str, problems: Problems) -> None:
    """Every rule of one record that needs no other record (secrets, formats, per-kind needs)."""
    secret_at = _check_secrets(record, location, problems)
    kind = kind_of(record)
    key_at = at(location, kind.key_field)
    if key_at not in secret_at:
        _check_name(record.key, key_at, problems)

    def clean(name: str) -> bool:
        """Whether field `name` is free of secrets (so a message may quote it)."""
        prefix = at(location, name)
        return not any(where == prefix or where.startswith((f"{prefix}.", f"{prefix}[")) for where in secret_at)

    if isinstance(record, ProviderConfig):
        _provider_rules(record, location, problems, clean)
    elif isinstance(record, RouteConfig):
        _route_rules(record, location, problems, clean)
    elif isinstance(record, ToolConfig):
        _tool_rules(record, location, problems, clean)
    elif isinstance(record, SkillConfig):
        _skill_rules(record, location, problems, clean)
    elif isinstance(record, McpServerConfig):
        _mcp_rules(record, location, problems, clean)
    elif isinstance(record, AgentConfig):
        for name in ("tools", "skills", "mcp_servers"):
            if clean(name):
                _check_names(getattr(record, name), at(location, name), problems)
        if clean("route"):
            _check_name(record.route, at(location, "route"), problems)
        if not 1 <= record.max_tool_rounds <= MAX_TOOL_ROUNDS:
            problems.add(
                at(location, "max_tool_rounds"),
                f"{record.max_tool_rounds} is out of range; use a whole number from 1 to {MAX_TOOL_ROUNDS}",
            )
    else:
        _team_rules(record, location, problems, clean)


def _check_choice(value: str, choices: Sequence[str], location: str, noun: str, problems: Problems) -> None:
    """`value` must be one of `choices`; else the closest one is suggested and every one listed."""
    if value not in choices:
        problems.add(location, f"unknown {noun} {value!r}{_suggest(value, choices)} (use one of: {', '.join(choices)})")


def _provider_rules(record: ProviderConfig, location: str, problems: Problems, clean: Callable[[str], bool]) -> None:
    if clean("kind"):
        _check_choice(record.kind, ProviderKind.values, at(location, "kind"), "kind", problems)
    # A field some kinds require: checked when given, else required by those kinds (how to fill it).
    required: tuple[tuple[str, Callable[[str, str, Problems], None], frozenset[str], str], ...] = (
        ("base_url", _check_url, KINDS_NEEDING_BASE_URL, "give the server's URL, e.g. http://localhost:11434/v1"),
        (
            "api_key_env",
            _check_env_name,
            KINDS_NEEDING_KEY,
            f"give the name of the environment variable that holds the key, e.g. {record.kind.upper()}_API_KEY",
        ),
    )
    for name, check, kinds, how in required:
        value = getattr(record, name)
        if not clean(name):
            continue
        if value:
            check(value, at(location, name), problems)
        elif record.kind in kinds:
            problems.add(at(location, name), f"required for kind {record.kind!r}; {how}")
    if clean("options"):
        _check_json_values(record.options, at(location, "options"), problems)
        field = at(location, "options")
        try:
            if record.kind == ProviderKind.REPLAY:
                # The replay adapter's own parser, so a file that loads is one the adapter can run.
                replay_options_parse(record.options, field=field)
            elif record.kind in ProviderKind.values:
                # The live adapters' own parser (max_retries, timeout_s, and api for the OpenAI kinds).
                live_options_parse(record.kind, record.options, field=field)
        except InvalidInputError as exc:
            for where, messages in exc.fields.items():
                for message in messages:
                    problems.add(where, message)


def _route_rules(record: RouteConfig, location: str, problems: Problems, clean: Callable[[str], bool]) -> None:
    if clean("provider"):
        _check_name(record.provider, at(location, "provider"), problems)
    if clean("model_id"):
        if not record.model_id.strip():
            problems.add(at(location, "model_id"), "empty; give the provider's model id, e.g. gpt-4o-mini")
        elif len(record.model_id) > MODEL_ID_MAX:
            problems.add(at(location, "model_id"), f"longer than {MODEL_ID_MAX} characters; shorten it")
    for name in ("context_window_tokens", "max_output_tokens"):
        value: int = getattr(record, name)
        if not 0 < value <= INT_MAX:
            problems.add(at(location, name), f"{value} is out of range; use a whole number from 1 to {INT_MAX}")
    if 0 < record.context_window_tokens < record.max_output_tokens:
        problems.add(
            at(location, "max_output_tokens"),
            f"{record.max_output_tokens} is more than context_window_tokens ({record.context_window_tokens}); lower it",
        )
    for name in (
        "price_input_per_mtok",
        "price_cached_input_per_mtok",
        "price_cache_write_per_mtok",
        "price_output_per_mtok",
    ):
        price: Decimal | None = getattr(record, name)
        if price is None:
            continue
        exponent = price.as_tuple().exponent
        if price < 0 or price > PRICE_MAX:
            problems.add(at(location, name), f"{price} is out of range; use 0 to {PRICE_MAX} (USD per million tokens)")
        elif isinstance(exponent, int) and -exponent > PRICE_PLACES and price != price.quantize(Decimal("1e-6")):
            problems.add(at(location, name), f"{price} has more than {PRICE_PLACES} decimal places; round it")


def _tool_runner_rules(record: ToolConfig, location: str, problems: Problems) -> None:
    """At most one runner; a built-in's name is one Agent Chat has; an MCP tool is named `server/tool`."""
    given = [name for name in ("builtin", "mcp", "client") if getattr(record, name)]
    if len(given) > 1:
        problems.add(at(location, given[1]), f"{' and '.join(given)} are both set; give the tool one runner")
    if record.builtin and record.builtin not in BUILTIN_TOOLS:
        problems.add(
            at(location, "builtin"),
            f"unknown built-in {record.builtin!r}{_suggest(record.builtin, BUILTIN_TOOLS)} "
            f"(use one of: {', '.join(BUILTIN_TOOLS)})",
        )
    if record.mcp:
        server, _, tool = record.mcp.partition("/")
        if not server or not tool or "/" in tool:
            problems.add(at(location, "mcp"), f"{record.mcp!r} is not 'server/tool'; name the MCP server and its tool")
        else:
            _check_name(server, at(location, "mcp"), problems)


def _tool_rules(record: ToolConfig, location: str, problems: Problems, clean: Callable[[str], bool]) -> None:
    _tool_runner_rules(record, location, problems)
    where = at(location, "parameters")
    if not clean("parameters"):
        return
    before = len(problems)
    _check_json_values(record.parameters, where, problems)
    if len(problems) > before:
        return
    try:
        Draft202012Validator.check_schema(dict(record.parameters))
    except SchemaError as exc:
        path = "".join(f"[{part!r}]" for part in exc.path)
        problems.add(where, f"not a valid JSON Schema: {exc.message}{f' at {path}' if path else ''}; fix the schema")
        return
    if record.parameters.get("type") != "object":
        problems.add(where, 'must be a JSON Schema for an object ("type": "object"); put the arguments in properties')


def _skill_rules(record: SkillConfig, location: str, problems: Problems, clean: Callable[[str], bool]) -> None:
    if clean("tools"):
        _check_names(record.tools, at(location, "tools"), problems)
    has_text = bool(record.instructions.strip())
    if has_text and record.instructions_path:
        problems.add(
            at(location, "instructions_path"), "give either inline instructions or an instructions_path, not both"
        )
    elif not has_text and not record.instructions_path:
        problems.add(
            at(location, "instructions"), "empty; give inline instructions or an instructions_path in the skills folder"
        )
    elif record.instructions_path and clean("instructions_path"):
        skill_path_check(record.instructions_path, at(location, "instructions_path"), problems)


def skill_path_check(value: str, location: str, problems: Problems) -> Path | None:
    """The resolved file for a skill's instructions_path, or None after adding a problem."""
    skills_dir = Path(settings.AGENTCHAT_SKILLS_DIR).resolve()
    if len(value) > PATH_MAX:
        problems.add(location, f"longer than {PATH_MAX} characters; shorten it")
        return None
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        problems.add(location, "contains a control character (such as NUL or a newline); remove it")
        return None
    long_part = next((part for part in PurePosixPath(value).parts if len(part.encode()) > PATH_PART_MAX), None)
    if long_part is not None:
        problems.add(
            location, f"has a file or folder name longer than {PATH_PART_MAX} bytes ({long_part[:20]!r}…); shorten it"
        )
        return None
    if PurePosixPath(value).is_absolute() or Path(value).is_absolute():
        problems.add(location, f"{value!r} is absolute; give a path relative to the skills folder ({skills_dir})")
        return None
    try:
        # resolve() follows symlinks, so a link pointing out of the folder is caught like `../`.
        candidate = (skills_dir / value).resolve()
        escapes = not candidate.is_relative_to(skills_dir)
        is_file = not escapes and candidate.is_file()
    except (OSError, ValueError) as exc:
        # What the operating system refuses (a name too long for this file system, a link loop).
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a usable path"
        problems.add(location, f"{value[:40]!r} cannot be read as a path ({reason}); fix the path")
        return None
    if escapes:
        problems.add(location, f"{value!r} escapes the skills folder ({skills_dir}); put the file inside it")
        return None
    if not is_file:
        problems.add(
            location, f"{value!r} is not a file in the skills folder ({skills_dir}); create it or fix the path"
        )
        return None
    return candidate


def _mcp_rules(record: McpServerConfig, location: str, problems: Problems, clean: Callable[[str], bool]) -> None:
    if clean("transport"):
        _check_choice(record.transport, McpTransport.values, at(location, "transport"), "transport", problems)
    if record.transport == McpTransport.STDIO:
        if not record.command.strip():
            problems.add(at(location, "command"), "required for the stdio transport; give the program, e.g. npx")
        elif len(record.command) > URL_MAX:
            problems.add(at(location, "command"), f"longer than {URL_MAX} characters; shorten it")
        if record.url:
            problems.add(at(location, "url"), "only for the streamable_http and sse transports; remove it")
    elif record.transport in HTTP_TRANSPORTS:
        if not record.url:
            problems.add(
                at(location, "url"), f"required for the {record.transport} transport; give the server's http(s) URL"
            )
        elif clean("url"):
            _check_url(record.url, at(location, "url"), problems)
        for name in ("command", "args"):
            if getattr(record, name):
                problems.add(at(location, name), "only for the stdio transport; remove it")
    if clean("env_vars"):
        for index, name in enumerate(record.env_vars):
            _check_env_name(name, at(location, f"env_vars[{index}]"), problems)
        _check_unique_items(record.env_vars, at(location, "env_vars"), problems)
    if clean("tool_allowlist"):
        for index, name in enumerate(record.tool_allowlist):
            if not name.strip():
                problems.add(at(location, f"tool_allowlist[{index}]"), "empty; give the tool's name on the server")
        _check_unique_items(record.tool_allowlist, at(location, "tool_allowlist"), problems)


def _team_rules(record: TeamConfig, location: str, problems: Problems, clean: Callable[[str], bool]) -> None:
    if clean("members"):
        if not record.members:
            problems.add(at(location, "members"), "empty; list the team's agents in order")
        _check_names(record.members, at(location, "members"), problems)
    if clean("lead") and clean("members") and record.members and record.lead not in record.members:
        problems.add(at(location, "lead"), f"{record.lead!r} is not a member of the team; add it to members")


# --- pass 3: references ----------------------------------------------------------------------


@dataclass(frozen=True)
class References:
    """The names that exist, per kind, and the current default route (for one-record checks)."""

    names: Mapping[Kind, frozenset[str]]
    default_route: str | None = None

    def has(self, kind: Kind, name: str) -> bool:
        return name in self.names.get(kind, frozenset())


def _missing(kind: Kind, name: str) -> str:
    return f"no {kind.label} named {name!r}; define it first or fix the name"


def record_references(record: RecordConfig, location: str, refs: References, problems: Problems) -> None:
    """Every name `record` refers to exists in `refs`."""
    single: list[tuple[str, Kind, str]] = []
    many: list[tuple[str, Kind, Sequence[str]]] = []
    if isinstance(record, RouteConfig):
        single.append(("provider", Kind.PROVIDER, record.provider))
    elif isinstance(record, SkillConfig):
        many.append(("tools", Kind.TOOL, record.tools))
    elif isinstance(record, ToolConfig) and record.mcp.count("/") == 1:
        single.append(("mcp", Kind.MCP_SERVER, record.mcp.partition("/")[0]))
    elif isinstance(record, AgentConfig):
        single.append(("route", Kind.ROUTE, record.route))
        many += [
            ("tools", Kind.TOOL, record.tools),
            ("skills", Kind.SKILL, record.skills),
            ("mcp_servers", Kind.MCP_SERVER, record.mcp_servers),
        ]
    elif isinstance(record, TeamConfig):
        many.append(("members", Kind.AGENT, record.members))
    for field_name, kind, name in single:
        if not refs.has(kind, name):
            problems.add(at(location, field_name), _missing(kind, name))
    for field_name, kind, names in many:
        for index, name in enumerate(names):
            if not refs.has(kind, name):
                problems.add(at(location, f"{field_name}[{index}]"), _missing(kind, name))


# --- the [memory] table ----------------------------------------------------------------------

MEMORY_SECTION = "memory"
_MEMORY_SHAPE = {
    "keep_recent_messages": "int",
    "summary_route": "str",
    "extract_facts": "bool",
    "compaction_prompt": "str",
    "episode_prompt": "str",
    "facts_prompt": "str",
}
KEEP_RECENT_MAX = 1000
PROMPT_MAX = 20_000


def memory_parse(raw: object, routes: frozenset[str], problems: Problems) -> MemoryConfig:
    """The `[memory]` table as a contract (defaults for what it leaves out), adding every problem."""
    if raw is None:
        return MemoryConfig()
    if not isinstance(raw, Mapping):
        problems.add(MEMORY_SECTION, f"expected a table; write [{MEMORY_SECTION}] (single brackets) before its fields")
        _check_secrets({MEMORY_SECTION: raw}, "", problems)
        return MemoryConfig()
    values: dict[str, Any] = {}
    for name, value in raw.items():
        location = at(MEMORY_SECTION, str(name))
        if name not in _MEMORY_SHAPE:
            problems.add(
                location, f"unknown field{_suggest(str(name), _MEMORY_SHAPE)} (expected: {', '.join(_MEMORY_SHAPE)})"
            )
            continue
        converted = _convert(_MEMORY_SHAPE[name], value, location, problems)
        if converted is not None:
            values[name] = converted
    _check_secrets(dict(raw), MEMORY_SECTION, problems)
    keep = values.get("keep_recent_messages")
    if keep is not None and not 0 <= keep <= KEEP_RECENT_MAX:
        problems.add(
            at(MEMORY_SECTION, "keep_recent_messages"), f"{keep} is out of range; give 0 to {KEEP_RECENT_MAX} messages"
        )
        values.pop("keep_recent_messages")
    route = values.get("summary_route")
    if route and route not in routes:
        problems.add(
            at(MEMORY_SECTION, "summary_route"),
            f"{route!r}: no such route{_suggest(route, routes)}; name a route of this file, or leave it out "
            "for each session's own route",
        )
    for name in ("compaction_prompt", "episode_prompt", "facts_prompt"):
        text = values.get(name)
        if text is not None and not text.strip():
            problems.add(
                at(MEMORY_SECTION, name), "empty; write the instructions, or leave the field out for the default"
            )
            values.pop(name)
        elif text is not None and len(text) > PROMPT_MAX:
            problems.add(at(MEMORY_SECTION, name), f"has {len(text)} characters; at most {PROMPT_MAX}")
            values.pop(name)
    return MemoryConfig(**values)


# --- whole documents and single records ------------------------------------------------------


def document_parse(raw: Mapping[str, Any]) -> ConfigDocument:
    """A validated document from a parsed TOML file; raises `ConfigInvalidError` with every problem."""
    problems = Problems()
    sections = {kind.value: kind for kind in Kind}
    for key, value in raw.items():
        if key not in sections and key != MEMORY_SECTION:
            problems.add(
                key,
                f"unknown section{_suggest(key, [*sections, MEMORY_SECTION])} (expected: "
                f"{', '.join(f'[[{name}]]' for name in sections)}, [{MEMORY_SECTION}])",
            )
            _check_secrets({key: value}, "", problems)
    parsed: dict[Kind, list[tuple[int, RecordConfig]]] = {kind: [] for kind in Kind}
    names: dict[Kind, dict[str, int]] = {kind: {} for kind in Kind}
    for kind in Kind:
        section = raw.get(kind.value, [])
        if not isinstance(section, list):
            problems.add(
                kind.value,
                f"expected a list of tables; write [[{kind.value}]] (double brackets) before each {kind.label}",
            )
            _check_secrets({kind.value: section}, "", problems)
            continue
        for index, item in enumerate(section):
            location = f"{kind.value}[{index}]"
            name = item.get(kind.key_field) if isinstance(item, Mapping) else None
            if isinstance(name, str):
                if name in names[kind]:
                    problems.add(
                        at(location, kind.key_field),
                        f"{name!r} is already used by {kind.value}[{names[kind][name]}]; names must be unique",
                    )
                else:
                    names[kind][name] = index
            record = record_parse(kind, item, location, problems)
            if record is None:
                if isinstance(item, Mapping):
                    _check_secrets({k: v for k, v in item.items() if k in _SHAPES[kind]}, location, problems)
                continue
            parsed[kind].append((index, record))
            record_rules(record, location, problems)
    refs = References(names={kind: frozenset(found) for kind, found in names.items()})
    first_default: tuple[int, str] | None = None
    for kind in Kind:
        for index, record in parsed[kind]:
            location = f"{kind.value}[{index}]"
            record_references(record, location, refs, problems)
            if isinstance(record, RouteConfig) and record.is_default:
                if first_default is None:
                    first_default = (index, record.alias)
                else:
                    problems.add(
                        at(location, "is_default"),
                        f"a second default route; routes[{first_default[0]}] ({first_default[1]!r}) "
                        "is already the default; keep one",
                    )
    memory = memory_parse(raw.get(MEMORY_SECTION), refs.names[Kind.ROUTE], problems)
    problems.raise_if_any()
    sections_out: dict[str, Any] = {kind.value: tuple(record for _, record in parsed[kind]) for kind in Kind}
    return ConfigDocument(**sections_out, memory=memory)


def record_validate(record: RecordConfig, *, refs: References, existing_key: str | None) -> None:
    """Validate one record about to be created (`existing_key` None) or to replace `existing_key`."""
    problems = Problems()
    kind = kind_of(record)
    record_rules(record, "", problems)
    if record.key != existing_key and refs.has(kind, record.key) and kind.key_field not in problems.locations():
        problems.add(kind.key_field, f"a {kind.label} named {record.key!r} already exists; choose another name")
    if (
        isinstance(record, RouteConfig)
        and record.is_default
        and refs.default_route is not None
        and refs.default_route not in (existing_key, record.alias)
    ):
        problems.add(
            "is_default",
            f"a second default route; {refs.default_route!r} is already the default; unset it there first",
        )
    record_references(record, "", refs, problems)
    problems.raise_if_any()


def record_from_raw(kind: Kind, raw: object, *, base: RecordConfig | None = None) -> RecordConfig:
    """A contract from an API body (merged over `base` for a partial update); raises on shape problems."""
    problems = Problems()
    merged: object = raw
    if base is not None and isinstance(raw, Mapping):
        merged = {**record_to_raw(base), **raw}
    record = record_parse(kind, merged, "", problems)
    if record is None:
        if isinstance(merged, Mapping):
            _check_secrets(dict(merged), "", problems)
        raise ConfigInvalidError(problems.items())
    return record
