"""JSON out of the management API: Decimals as JSON numbers with their own digits, never through float."""

from decimal import Decimal

import orjson
from rest_framework.renderers import JSONRenderer

from pricing.calculator import format_money


def _default(value):
    if isinstance(value, Decimal):
        return orjson.Fragment(format_money(value).encode())
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(data) -> bytes:
    return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)


class DecimalJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return dumps(data)
