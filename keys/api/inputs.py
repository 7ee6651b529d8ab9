"""JSON bodies read at their JSON types: a string where the API takes a string, a number where it takes a number.

DRF coerces on its own (5 → "5", "true" → True, "1.5" → Decimal("1.5")), so a client that sends the wrong type
has it stored silently, and the OpenAPI schema would promise types the API does not hold to. The management
inputs check the JSON type of every field they know first, naming the field. Query parameters are strings on
the wire and are not checked here.
"""

import math
from collections.abc import Mapping
from decimal import Decimal

from django.core.validators import ProhibitNullCharactersValidator
from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

# Field class → the Python types the JSON parser (parse_float=Decimal) yields for it, and their JSON name. First
# match wins: subclasses (EmailField, RegexField) come under their base. A bool is never a number.
_JSON_TYPES: tuple[tuple[type, tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "boolean"),
    (serializers.IntegerField, (int, Decimal), "integer"),
    (serializers.DecimalField, (int, Decimal), "number"),
    (serializers.CharField, (str,), "string"),
    (serializers.ListField, (list,), "array"),
    (serializers.DictField, (Mapping,), "object"),
    (serializers.Serializer, (Mapping,), "object"),
)


def json_type_problem(field: serializers.Field, value) -> str | None:
    """Why `value` is not of the JSON type `field` takes (None when it is; null is left to allow_null)."""
    if value is None:
        return None
    for field_class, types, name in _JSON_TYPES:
        if isinstance(field, field_class):
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                return f"Expected a JSON {name}, got {type(value).__name__}."
            break
    child = getattr(field, "child", None)
    if isinstance(field, serializers.ListField):
        return next(filter(None, (json_type_problem(child, item) for item in value)), None)
    if isinstance(field, serializers.DictField):
        return next(filter(None, (json_type_problem(child, item) for item in value.values())), None)
    return None


def _refuse_unknown(fields, data) -> None:
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise serializers.ValidationError({unknown[0]: ["Unknown field."]})


# What CharField refuses in text, for text inside free-form JSON: neither PostgreSQL (NUL) nor UTF-8 (a lone
# surrogate) can store it.
_TEXT_VALIDATORS = (ProhibitNullCharactersValidator(), ProhibitSurrogateCharactersValidator())


def check_storable_text(value) -> None:
    """Refuse free-form JSON with a string (or an object key) that cannot be stored."""
    if isinstance(value, str):
        for validator in _TEXT_VALIDATORS:
            validator(value)
    elif isinstance(value, list):
        for item in value:
            check_storable_text(item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_storable_text(key)
            check_storable_text(item)


def _plain_json(value):
    """`value` with its numbers as JSON stores them: the parser's Decimals become floats."""
    if isinstance(value, Decimal):
        number = float(value)
        if not math.isfinite(number):
            raise serializers.ValidationError(f"{value} is too large a number to store.")
        return number
    if isinstance(value, int) and not -(2**63) <= value < 2**64:  # what a JSON answer can give back (orjson)
        raise serializers.ValidationError(f"{value} is too large an integer to store.")
    if isinstance(value, list):
        return [_plain_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain_json(item) for key, item in value.items()}
    return value


class JSONObject(serializers.DictField):
    """Free-form JSON (metadata, config), stored in a JSONField: its numbers are plain JSON numbers, not money."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        check_storable_text(value)
        return _plain_json(value)


class JSONInput(serializers.Serializer):
    """A JSON object whose known fields must be of their JSON types. A `closed` input refuses fields it does not
    know (a typo must not be silently ignored), naming the first."""

    closed = False

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        if self.closed:
            _refuse_unknown(self.fields, data)
        for name, field in self.fields.items():
            if name in data and (problem := json_type_problem(field, data[name])):
                raise serializers.ValidationError({name: [problem]})
        return super().to_internal_value(data)


class QueryInput(serializers.Serializer):
    """Query parameters: strings, parsed by the fields; an unknown parameter is refused like an unknown field."""

    def to_internal_value(self, data):
        _refuse_unknown(self.fields, data)
        return super().to_internal_value(data)


class ClosedInputSchema(OpenApiSerializerExtension):
    """In the OpenAPI schema, a closed JSONInput is an object with no additional properties."""

    target_class = JSONInput
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        return {**schema, "additionalProperties": False} if self.target.closed else schema
