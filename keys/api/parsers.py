"""LiteLLM's docs send JSON with `curl -d` and no Content-Type, which curl labels form-encoded: read it as JSON.

The JSON parser is the project's default (DEFAULT_PARSER_CLASSES: Decimal-exact), found through DRF's settings so
that keys does not import gateway. The form-labelled one is not a JSON parser subclass, so the OpenAPI schema
(PARSER_WHITELIST) offers JSON bodies only."""

from rest_framework.parsers import BaseParser
from rest_framework.settings import api_settings

JSONParser = api_settings.DEFAULT_PARSER_CLASSES[0]


class JSONSentAsFormParser(BaseParser):
    media_type = "application/x-www-form-urlencoded"

    def parse(self, stream, media_type=None, parser_context=None):
        return JSONParser().parse(stream, media_type, parser_context)


PARSERS = [JSONParser, JSONSentAsFormParser]
