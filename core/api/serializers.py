"""Input serializers every app's API builds on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers


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


class PageQuerySerializer(StrictInputSerializer):
    """The query string of a cursor-paged list: its own filters (declared by a subclass), then the page."""

    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False, min_value=1)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        for name in ("cursor", "page_size"):  # after the filters, in messages and in the OpenAPI description
            fields[name] = fields.pop(name)
        return fields
