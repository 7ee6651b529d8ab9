"""JSON into the management API: numbers with a fraction become Decimal, so a budget of 0.1 is exactly 0.1.

A document nested deeper than MAX_DEPTH levels is refused here, before any serializer, JSON field or audit copy walks
it: each of those recurses, and a body nested a few thousand levels deep (a few kilobytes) would end in a
RecursionError, a 500, possibly after part of it had been stored. No LiteLLM body or metadata needs a tenth of it.
"""

import json
from decimal import Decimal

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64


class TooDeeplyNested(ParseError):
    default_code = "too_deeply_nested"

    def __init__(self):
        super().__init__(f"Request body is nested more than {MAX_DEPTH} levels deep.")


def _depth_exceeds(document, limit: int) -> bool:
    """Whether `document` holds containers more than `limit` levels deep (iterative: any depth is safe to walk)."""
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            pending.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return False


class DecimalJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            document = json.loads(stream.read().decode("utf-8"), parse_float=Decimal)
        except RecursionError:  # deeper than the interpreter's recursion limit (about 1,000 levels)
            raise TooDeeplyNested() from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"Request body is not valid JSON: {exc}") from None
        if _depth_exceeds(document, MAX_DEPTH):
            raise TooDeeplyNested()
        return document
