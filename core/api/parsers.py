"""Request body parsing: hostile JSON (deep nesting, NUL characters, lone surrogates) is a 400, never a 500.

Form-encoded and multipart bodies get the same NUL and surrogate guard (on field names, values and
uploaded file names). Python's JSON decoder accepts all three, but the first overflows the recursion limit of every
later walk over the data, PostgreSQL cannot store a NUL in text or jsonb, and a lone surrogate
cannot be encoded as UTF-8 by either database driver. Refusing them while parsing keeps each
endpoint's validation about its own fields, and gives one error shape for all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from django.utils.datastructures import MultiValueDict
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import DataAndFiles, FormParser, JSONParser, MultiPartParser

if TYPE_CHECKING:
    from django.http.request import QueryDict, _ImmutableQueryDict

# No request the API accepts nests deeper than this; the limit keeps every recursive walk
# (validation, json.dumps, the database adapters) far from Python's recursion limit.
MAX_JSON_DEPTH = 64
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def json_depth(value: object) -> int:
    """How deeply `value` nests lists and objects (a scalar is 0), walked without recursion."""
    deepest = 0
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(item, Mapping):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return deepest


def _problem(text: str) -> str | None:
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\u0000); remove it"
    return f"contains a lone surrogate (\\u{ord(found.group()):04x}), which is not valid Unicode; send UTF-8 text"


def json_unstorable(value: object) -> tuple[str, str] | None:
    """The path (`a.b[0]`) and problem of the first string or key no database can store, or None."""
    pending: list[tuple[object, str]] = [(value, "")]
    while pending:
        item, path = pending.pop(0)
        if isinstance(item, str):
            problem = _problem(item)
            if problem:
                return path or "non_field_errors", problem
        elif isinstance(item, Mapping):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                problem = _problem(str(key))
                if problem:
                    return path or "non_field_errors", f"has a key that {problem}"
                pending.append((child, child_path))
        elif isinstance(item, list):
            pending.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, refusing deep nesting, NUL characters and lone surrogates with a 400."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(f"JSON parse error - nested more than {MAX_JSON_DEPTH} levels deep") from exc
        if json_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(f"JSON parse error - nested more than {MAX_JSON_DEPTH} levels deep")
        unstorable = json_unstorable(data)
        if unstorable:
            path, problem = unstorable
            raise ValidationError({path: [problem]})
        return data


def _form_unstorable(data: QueryDict | MultiValueDict[str, Any]) -> tuple[str, str] | None:
    """The field and problem of the first form field (name or value) no database can store, or None."""
    for key, values in data.lists():
        problem = _problem(key)
        if problem:
            return "non_field_errors", f"has a field name that {problem}"
        for value in values:
            text = value if isinstance(value, str) else str(getattr(value, "name", "") or "")
            problem = _problem(text)
            if problem:
                return key, problem
    return None


def _refuse(found: tuple[str, str] | None) -> None:
    if found:
        path, problem = found
        raise ValidationError({path: [problem]})


class BoundedFormParser(FormParser):
    """DRF's form parser, refusing NUL characters and lone surrogates with a 400 (as JSON bodies do)."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> _ImmutableQueryDict:
        data = super().parse(stream, media_type, parser_context)
        _refuse(_form_unstorable(data))
        return data


class BoundedMultiPartParser(MultiPartParser):
    """DRF's multipart parser, refusing NUL characters and lone surrogates in fields and file names."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> DataAndFiles[Any, Any]:
        parsed = super().parse(stream, media_type, parser_context)
        _refuse(_form_unstorable(parsed.data))
        _refuse(_form_unstorable(parsed.files))
        return parsed
