"""The management API's OpenAPI schema: every error is the OpenAI shape that gateway.api.errors renders.

Views declare which error statuses they answer (``OpenApiResponse(description=...)``, no body); this hook gives
each declared 4xx the one error schema, and every operation behind the master key its 401. Declaring the shape
once here keeps keys and spend from importing gateway for it.
"""

from drf_spectacular.openapi import AutoSchema

ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "description": 'OpenAI\'s error shape, as LiteLLM answers it: {"error": {message, type, param, code}}.',
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "enum": ["invalid_request_error", "auth_error", "not_found_error"]},
                "param": {"type": "string", "nullable": True, "description": "The field at fault, as a dotted path."},
                "code": {"type": "string", "nullable": True},
            },
            "required": ["message", "type", "param", "code"],
        }
    },
    "required": ["error"],
}
UNAUTHORIZED = "No bearer token, or one that is not the master key: virtual keys cannot manage anything."


def describe_errors(result, generator, request, public):
    """POSTPROCESSING_HOOKS entry: the error component, every 4xx's body, and 401 wherever a key is required."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    error_body = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}}
    for operations in result["paths"].values():
        for operation in operations.values():
            responses = operation["responses"]
            if operation.get("security"):
                responses.setdefault("401", {"description": UNAUTHORIZED})
            for status, response in responses.items():
                if status.startswith("4"):
                    response["content"] = error_body
            operation["responses"] = dict(sorted(responses.items()))
    return result


class BodyOnDeleteSchema(AutoSchema):
    """For a view that reads its body on DELETE too (LiteLLM's /model/delete): describe it there as on POST."""

    def _get_request_body(self, direction="request"):
        if self.method != "DELETE":
            return super()._get_request_body(direction)
        self.method = "POST"
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = "DELETE"
