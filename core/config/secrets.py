"""Recognising values that look like credentials, so that none is ever stored.

The configuration names environment variables; it never holds a key. Two checks:

- by name (`credential_values`): any string under a key whose name is a credential word
  (`api_key`, `token`, `password`, `Authorization`, `x-api-key`, `client_secret`…, matched as whole
  words of the key), at any depth, whatever its shape. A JSON Schema's property names describe
  values and hold none: under `properties`, only the value keywords (`default`, `const`, `enum`,
  `examples`) of a credential-named property count.
- by shape (`find_secret`), for free text anywhere: known key prefixes, bearer tokens, credentials
  inside URLs or query strings, long high-entropy tokens, after undoing percent-encoding and
  dropping invisible characters.

Messages show only `redact(value)`: a short prefix and an ellipsis, never the value; `redact_all`
does the same to any text (an error location built from a mapping key).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import fields, is_dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

# Known provider/service key shapes: OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), Google (AIza),
# GitHub (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_), Slack (xoxb-, xoxp-…), AWS (AKIA/ASIA),
# GitLab (glpat-), Hugging Face (hf_), Stripe (sk_live_, rk_live_).
_KEY_PREFIXES = re.compile(
    r"""(?<![A-Za-z0-9])(
        sk-[A-Za-z0-9_\-]{12,}
      | AIza[0-9A-Za-z_\-]{20,}
      | gh[pousr]_[A-Za-z0-9]{20,}
      | github_pat_[A-Za-z0-9_]{20,}
      | xox[abposr]-[A-Za-z0-9\-]{10,}
      | (?:AKIA|ASIA)[0-9A-Z]{16}
      | glpat-[A-Za-z0-9_\-]{16,}
      | hf_[A-Za-z0-9]{20,}
      | [rs]k_(?:live|test)_[A-Za-z0-9]{16,}
    )""",
    re.VERBOSE,
)
_BEARER = re.compile(r"\b(?:Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE)
# `api_key=…`, `token: …`, `password=…` inside a string (query strings, command-line flags).
_ASSIGNED = re.compile(
    r"(?:api[_-]?key|access[_-]?key|secret|token|password|passwd|auth)\s*[=:]\s*['\"]?[^\s'\"&]{8,}",
    re.IGNORECASE,
)
_TOKEN_SPLIT = re.compile(r"[\s,;:'\"()\[\]{}<>/\\.@?&=|]+")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9+_\-]+")
_HEX = re.compile(r"[0-9a-fA-F]+")
# Characters that render as nothing (zero-width spaces and joiners, the BOM, soft hyphen, word
# joiner): removed before looking, so that a key cannot hide by carrying one.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# Whole words of a key name: split on _ - . spaces and camelCase boundaries (`xApiKey`, `APIKey`).
_KEY_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
CREDENTIAL_WORDS = frozenset(
    {
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "authorization",
        "bearer",
        "credential",
        "credentials",
        "cookie",
        "xapikey",
    }
)
# Two-word names whose second word alone is innocent (`key`, `auth`).
CREDENTIAL_PAIRS = frozenset(
    {
        ("api", "key"),
        ("access", "key"),
        ("private", "key"),
        ("secret", "key"),
        ("signing", "key"),
        ("encryption", "key"),
        ("master", "key"),
        ("session", "key"),
        ("license", "key"),
        ("client", "secret"),
        ("basic", "auth"),
        ("http", "auth"),
        ("proxy", "auth"),
    }
)
# Trailing words that make the name describe a credential rather than hold one.
_REFERENCE_WORDS = frozenset(
    {"env", "var", "variable", "name", "file", "path", "header", "type", "id", "url", "field", "hint", "kind"}
)
# JSON Schema keywords that hold values of the property they describe (the rest describe it).
_SCHEMA_VALUE_KEYWORDS = frozenset({"default", "const", "enum", "examples"})
_SCHEMA_PROPERTY_MAPS = frozenset({"properties", "patternProperties"})

MIN_ENTROPY_TOKEN = 20
SECRET_HINT = "looks like a secret"  # noqa: S105 - the message text, not a credential
PREFIX_CHARS = 5


def redact(value: str) -> str:
    """What a message may show of a suspicious value: its first few characters and an ellipsis."""
    return f"{value[:PREFIX_CHARS]}…"


def redact_all(text: str) -> str:
    """`text` with every credential-shaped part replaced by `redact` of it (for error locations)."""
    for _ in range(50):  # each pass shortens one suspect to PREFIX_CHARS characters
        suspect = find_secret(text)
        if suspect is None:
            return text
        if suspect not in text:  # found after decoding: look at the decoded text
            text = unquote(_INVISIBLE.sub("", text))
        if suspect not in text:
            return redact(text)
        text = text.replace(suspect, redact(suspect))
    return redact(text)


def key_words(name: str) -> list[str]:
    """The lower-case words of a key name: `x-api-key`, `X_API_KEY`, `xApiKey` → x, api, key."""
    return [word.lower() for word in _KEY_WORDS.findall(_INVISIBLE.sub("", name))]


def credential_key(name: str) -> bool:
    """Whether a mapping key names a credential (`api_key`, `Authorization`, `clientSecret`),
    as opposed to something about one (`api_key_env`, `token_budget`, `max_tokens`)."""
    words = key_words(name)
    if words and words[-1] == "value":
        words = words[:-1]
    if not words or words[-1] in _REFERENCE_WORDS:
        return False
    if words[-1] in CREDENTIAL_WORDS or "".join(words) in CREDENTIAL_WORDS:
        return True
    return len(words) > 1 and (words[-2], words[-1]) in CREDENTIAL_PAIRS


def _is_schema(value: Mapping[Any, Any]) -> bool:
    """A JSON Schema object: its `properties` maps names to schemas (objects or booleans)."""
    props = value.get("properties")
    return isinstance(props, Mapping) and all(isinstance(item, Mapping | bool) for item in props.values())


def credential_values(value: Any, location: str, *, held: bool = False) -> Iterator[tuple[str, str]]:
    """Every non-blank string held under a credential-named key inside `value`, with its location.

    `held` is true below such a key. Dataclass fields and mapping keys are both names; a JSON
    Schema's property names are not holders, only its value keywords under such a property are.
    """
    if isinstance(value, str):
        if held and value.strip():
            yield location, value
    elif is_dataclass(value) and not isinstance(value, type):
        for item in fields(value):
            yield from credential_values(
                getattr(value, item.name), _join(location, item.name), held=held or credential_key(item.name)
            )
    elif isinstance(value, Mapping):
        schema = _is_schema(value)
        for key, item in value.items():
            sub = _join(location, str(key))
            if schema and key in _SCHEMA_PROPERTY_MAPS and isinstance(item, Mapping):
                for prop, prop_schema in item.items():
                    yield from _schema_property(prop_schema, _join(sub, str(prop)), credential_key(str(prop)), held)
            else:
                yield from credential_values(item, sub, held=held or credential_key(str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from credential_values(item, f"{location}[{index}]", held=held)


def _schema_property(schema: Any, location: str, named: bool, held: bool) -> Iterator[tuple[str, str]]:
    """A property's schema: its value keywords hold values when the property is credential-named."""
    if not isinstance(schema, Mapping):
        return
    for key, item in schema.items():
        sub = _join(location, str(key))
        if key in _SCHEMA_VALUE_KEYWORDS:
            yield from credential_values(item, sub, held=held or named)
        elif isinstance(item, Mapping | list):
            # Nested schemas (items, properties of an object property…) are judged on their own.
            yield from credential_values(item, sub, held=held)


def _entropy(token: str) -> float:
    counts = Counter(token)
    return -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())


def _char_class(char: str) -> int:
    return 0 if char.isdigit() else 1 if char.islower() else 2 if char.isupper() else 3


def _class_changes(token: str) -> float:
    """How often neighbouring characters switch between digit/lower/upper: high for random text,
    low for words (`ModelContextServer2025`)."""
    changes = sum(_char_class(a) != _char_class(b) for a, b in itertools.pairwise(token))
    return changes / max(len(token) - 1, 1)


def _high_entropy(token: str) -> bool:
    if len(token) < MIN_ENTROPY_TOKEN or not _TOKEN_CHARS.fullmatch(token):
        return False
    if sum(token.count(sep) for sep in "-_") > 2:
        # Many separators: a readable name (`qwen2.5-coder-32b-instruct-q4_k_m`); judge each part.
        return any(_high_entropy(part) for part in re.split(r"[-_]+", token))
    if not (any(c.isdigit() for c in token) and any(c.isalpha() for c in token)):
        return False
    if _HEX.fullmatch(token):
        # Random hex carries at most 4 bits a character; 32+ characters of it is a key or a digest.
        return len(token) >= 32 and _entropy(token) >= 3.3
    return _entropy(token) >= 3.9 and _class_changes(token) >= 0.45


def _url_has_password(text: str) -> bool:
    for word in text.split():
        if "://" not in word:
            continue
        try:
            parts = urlsplit(word)
        except ValueError:
            continue
        if parts.password:
            return True
    return False


def find_secret(text: str) -> str | None:
    """The part of `text` shaped like a credential (to be shown only through `redact`), or None.

    Invisible characters are dropped and percent-encoding undone first, so `sk-%41…` and a key
    with a zero-width space inside are found like the plain key."""
    found = _find_plain(text)
    if found is not None:
        return found
    visible = _INVISIBLE.sub("", text)
    decoded = unquote(visible) if _PERCENT.search(visible) else visible
    if decoded != text:
        return _find_plain(decoded)
    return None


def _find_plain(text: str) -> str | None:
    for pattern in (_KEY_PREFIXES, _BEARER, _ASSIGNED):
        match = pattern.search(text)
        if match:
            return match.group(0)
    for word in text.split():
        if "://" in word and _url_has_password(word):
            return word
    for token in _TOKEN_SPLIT.split(text):
        if _high_entropy(token):
            return token
    return None


def looks_like_secret(text: str) -> bool:
    """True when `text` contains something shaped like a credential."""
    return find_secret(text) is not None


def iter_strings(value: Any, location: str) -> Iterator[tuple[str, str]]:
    """Every string inside `value` (dataclass, mapping keys and values, sequences) with its location."""
    if isinstance(value, str):
        yield location, value
    elif is_dataclass(value) and not isinstance(value, type):
        for item in fields(value):
            yield from iter_strings(getattr(value, item.name), _join(location, item.name))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            sub = _join(location, str(key))
            if isinstance(key, str):
                yield sub, key
            yield from iter_strings(item, sub)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from iter_strings(item, f"{location}[{index}]")


def _join(location: str, name: str) -> str:
    return f"{location}.{name}" if location else name


def secret_message(suspect: str) -> str:
    """The one message for a value that looks like a secret (`suspect` is what `find_secret` found)."""
    return f"{redact(suspect)!r} {SECRET_HINT}; give the name of an environment variable"


def credential_message(value: str) -> str:
    """The one message for a value held under a credential-named key (`value` shown redacted)."""
    return (
        f"{redact(value)!r} is held under a credential name; the configuration stores no credentials: "
        "put the value in an environment variable and give that variable's name instead (e.g. api_key_env)"
    )
