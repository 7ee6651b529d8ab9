"""Azure OpenAI: OpenAI's wire format, addressed by deployment name and api-version, keyed by `api-key`."""

from urllib.parse import quote

from gateway.providers.base import CallType, Target, config_error, json_headers
from gateway.providers.openai import PATHS, OpenAIProvider, OpenAIStream

# The latest generally-available data-plane version; it supports stream_options.include_usage.
DEFAULT_API_VERSION = "2024-10-21"


class AzureProvider(OpenAIProvider):
    name = "azure"
    default_api_base = None
    api_key_env = ("AZURE_API_KEY",)
    api_base_env = ("AZURE_API_BASE",)

    def url(self, target: Target, call_type: CallType) -> str:
        if not target.api_base:
            raise config_error(self.name, "api_base is required (https://<resource>.openai.azure.com)")
        deployment = quote(target.model, safe="")
        version = quote(target.api_version or DEFAULT_API_VERSION, safe="")
        return f"{target.api_base.rstrip('/')}/openai/deployments/{deployment}{PATHS[call_type]}?api-version={version}"

    def auth_headers(self, target: Target) -> dict[str, str]:
        token = target.extra.get("azure_ad_token")
        if token:
            return json_headers(Authorization=f"Bearer {token}")
        return json_headers(**{"api-key": target.api_key})

    def stream_parser(self, target: Target, call_type: CallType, payload: dict) -> "AzureStream":
        return AzureStream(self.name)


class AzureStream(OpenAIStream):
    """Azure opens a stream with a content-filter-only chunk (no choices, no usage): clients need not see it."""

    def _keep(self, chunk: dict) -> list[dict]:
        return [chunk] if chunk.get("choices") or chunk.get("usage") else []
