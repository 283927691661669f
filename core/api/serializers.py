"""Serializers every app's API builds on."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import types
import typing
import uuid
from collections.abc import Mapping
from typing import Any, TypeVar

from django.db.models import Model
from rest_framework import serializers

_M = TypeVar("_M", bound=Model)

# The output field of each plain annotation a dataclass may use.
_FIELD_OF_TYPE: dict[Any, type[serializers.Field[Any, Any, Any, Any]]] = {
    bool: serializers.BooleanField,
    int: serializers.IntegerField,
    str: serializers.CharField,
    datetime.datetime: serializers.DateTimeField,
    datetime.date: serializers.DateField,
    uuid.UUID: serializers.UUIDField,
}


class StrictInputSerializer(serializers.Serializer[Any]):
    """An input serializer that answers 400 for keys it does not know, instead of ignoring them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                accepted = ", ".join(self.fields) or "no fields"
                raise serializers.ValidationError(
                    {key: [f"unknown field; this endpoint accepts {accepted}"] for key in unknown}
                )
        return super().to_internal_value(data)


# A model's output: every field of `Meta.fields` is read-only, as `read_only_fields = fields` would
# say, so a subclass declares only the model and its fields. No docstring: drf-spectacular would give
# it to every subclass's schema component as its description.
class ReadOnlyModelSerializer(serializers.ModelSerializer[_M]):
    def get_extra_kwargs(self) -> dict[str, Any]:
        extra: dict[str, Any] = super().get_extra_kwargs()
        for name in self.Meta.fields:
            extra[name] = {**extra.get(name, {}), "read_only": True}
        return extra


class PageQuerySerializer(StrictInputSerializer):
    """The query string of a cursor-paged list: its own filters (declared by a subclass), then the page."""

    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False, min_value=1)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        for name in ("cursor", "page_size"):  # after the filters, in messages and in the OpenAPI description
            fields[name] = fields.pop(name)
        return fields


def dataclass_output_serializer(
    contract: type[Any], name: str, **fields: serializers.Field[Any, Any, Any, Any]
) -> type[serializers.Serializer[Any]]:
    """An output serializer named `name` whose fields are `contract`'s, in its order.

    Each field follows its annotation (`bool`, `int`, `str`, `datetime`, `date`, `UUID`; `X | None`
    adds `allow_null`); `fields` gives those an annotation cannot say (choices, a list's items).
    An annotation it does not know is a TypeError at import, never a guessed field.
    """
    hints = typing.get_type_hints(contract)
    declared: dict[str, Any] = {}
    for item in dataclasses.fields(contract):
        if item.name in fields:
            # A copy made now: DRF orders declared fields by when each was made.
            declared[item.name] = copy.deepcopy(fields[item.name])
            continue
        annotation, nullable = hints[item.name], False
        if isinstance(annotation, types.UnionType) and type(None) in annotation.__args__:
            rest = [arg for arg in annotation.__args__ if arg is not type(None)]
            annotation, nullable = (rest[0] if len(rest) == 1 else annotation), True
        field_class = _FIELD_OF_TYPE.get(annotation)
        if field_class is None:
            raise TypeError(f"{contract.__name__}.{item.name}: no output field for {annotation!r}; pass one")
        declared[item.name] = field_class(allow_null=True) if nullable else field_class()
    return type(name, (serializers.Serializer,), declared)
