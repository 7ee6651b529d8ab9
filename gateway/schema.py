"""The management API's OpenAPI schema (drf-spectacular): how it names the master key's bearer authentication."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class MasterKeyScheme(OpenApiAuthenticationExtension):
    target_class = "keys.api.authentication.MasterKeyAuthentication"
    name = "masterKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The master key (TOLLGATE_MASTER_KEY), as `Authorization: Bearer <key>`.",
        }
