"""Recognising values that look like credentials, so that none is ever stored.

The configuration names environment variables; it never holds a key. Every string in every
record (options, JSON Schema descriptions, args, URLs…) is checked for known key prefixes,
bearer tokens, credentials inside URLs or query strings, and long high-entropy tokens. Messages
show only `redact(value)`: a short prefix and an ellipsis, never the value.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import fields, is_dataclass
from typing import Any
from urllib.parse import urlsplit

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
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9+_\-]+$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")

MIN_ENTROPY_TOKEN = 20
SECRET_HINT = "looks like a secret"  # noqa: S105 - the message text, not a credential
PREFIX_CHARS = 5


def redact(value: str) -> str:
    """What a message may show of a suspicious value: its first few characters and an ellipsis."""
    return f"{value[:PREFIX_CHARS]}…"


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
    if len(token) < MIN_ENTROPY_TOKEN or not _TOKEN_CHARS.match(token):
        return False
    if sum(token.count(sep) for sep in "-_") > 2:
        # Many separators: a readable name (`qwen2.5-coder-32b-instruct-q4_k_m`); judge each part.
        return any(_high_entropy(part) for part in re.split(r"[-_]+", token))
    if not (any(c.isdigit() for c in token) and any(c.isalpha() for c in token)):
        return False
    if _HEX.match(token):
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
    """The part of `text` shaped like a credential (to be shown only through `redact`), or None."""
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
