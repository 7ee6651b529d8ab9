"""LiteLLM's docs send JSON with `curl -d` and no Content-Type, which curl labels form-encoded: read it as JSON.

The JSON parser is the project's default (DEFAULT_PARSER_CLASSES: Decimal-exact), found through DRF's settings so
that keys does not import gateway."""

from rest_framework.settings import api_settings

JSONParser = api_settings.DEFAULT_PARSER_CLASSES[0]


class JSONSentAsFormParser(JSONParser):
    media_type = "application/x-www-form-urlencoded"


PARSERS = [JSONParser, JSONSentAsFormParser]
