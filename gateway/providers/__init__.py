"""Every upstream protocol Tollgate speaks, by the provider prefix of LiteLLM's `litellm_params.model`."""

from collections.abc import Mapping
from types import MappingProxyType

from gateway.providers.anthropic import AnthropicProvider
from gateway.providers.azure import AzureProvider
from gateway.providers.base import Provider
from gateway.providers.bedrock import BedrockProvider
from gateway.providers.gemini import GeminiProvider
from gateway.providers.mock import MockProvider
from gateway.providers.ollama import OllamaChatProvider, OllamaProvider
from gateway.providers.openai import OpenAICompatibleProvider, OpenAIProvider, TextCompletionOpenAIProvider
from gateway.providers.openai_compatible import OPENAI_COMPATIBLE
from gateway.providers.sagemaker import SageMakerProvider
from gateway.providers.vertex import VertexProvider

PROVIDERS: Mapping[str, Provider] = MappingProxyType(
    {
        provider.name: provider
        for provider in (
            OpenAIProvider(),
            *(OpenAICompatibleProvider(name, *row) for name, row in OPENAI_COMPATIBLE.items()),
            TextCompletionOpenAIProvider(),
            AzureProvider(),
            AnthropicProvider(),
            OllamaProvider(),
            OllamaChatProvider(),
            SageMakerProvider(),
            BedrockProvider(),
            GeminiProvider(),
            VertexProvider(),
            MockProvider(),
        )
    }
)


def unservable_reason(litellm_model: str) -> str:
    """Why Tollgate cannot serve a deployment of this `litellm_params.model` ("" when it can): its provider prefix
    names no protocol Tollgate speaks (LiteLLM's bedrock/, gemini/... or a typo)."""
    provider = litellm_model.split("/", 1)[0] if "/" in litellm_model else "openai"
    if provider in PROVIDERS:
        return ""
    return f"provider {provider[:100]!r} is not supported by Tollgate: no adapter speaks its API"


def get_provider(name: str) -> Provider:
    """The provider for a LiteLLM provider prefix; KeyError for one we do not speak."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise KeyError(f"unknown provider {name!r}") from None
