"""Providers whose API is OpenAI's, by LiteLLM's names: a deployment that names only `provider/model` reaches the
provider's own address with the key from its environment variable, and is priced from the cost map under its prefix.
Nothing here sends a request: the routed deployment's request is built and read."""

import pytest

from gateway.models import Deployment
from gateway.providers import PROVIDERS
from gateway.providers.openai_compatible import OPENAI_COMPATIBLE
from gateway.proxy.registry import build_routing_table
from pricing.active import active_cost_map
from pricing.resolve import resolve_deployment_price

pytestmark = pytest.mark.django_db

CHAT = {"model": "x", "messages": [{"role": "user", "content": "Hi"}]}

# LiteLLM's names, their default addresses and key variables (litellm/constants.py openai_compatible_providers).
DEFAULTS = [
    ("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    ("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    ("deepseek", "https://api.deepseek.com/beta", "DEEPSEEK_API_KEY"),
    ("together_ai", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    ("fireworks_ai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    ("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    ("perplexity", "https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
    ("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
    ("deepinfra", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
    ("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    ("nvidia_nim", "https://integrate.api.nvidia.com/v1", "NVIDIA_NIM_API_KEY"),
    ("github", "https://models.inference.ai.azure.com", "GITHUB_API_KEY"),
    ("sambanova", "https://api.sambanova.ai/v1", "SAMBANOVA_API_KEY"),
    ("huggingface", "https://router.huggingface.co/v1", "HF_TOKEN"),
    ("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
]


def routed(litellm_model: str, **fields):
    Deployment.objects.create(model_name="g", litellm_model=litellm_model, **fields)
    (deployment,) = build_routing_table(1, active_cost_map()).group("g")
    return deployment


@pytest.mark.parametrize(("provider", "api_base", "key_variable"), DEFAULTS)
def test_a_deployment_without_api_base_or_key_uses_the_providers_address_and_key_variable(
    monkeypatch, provider, api_base, key_variable
):
    monkeypatch.setenv(key_variable, f"sk-{provider}-from-env-4242")

    deployment = routed(f"{provider}/some-model")
    request = deployment.provider.build_request(deployment.target, "chat", CHAT, stream=False)

    assert request.url == f"{api_base}/chat/completions"
    assert request.headers["Authorization"] == f"Bearer sk-{provider}-from-env-4242"


def test_the_configs_own_api_base_and_key_win_over_the_defaults(monkeypatch):
    monkeypatch.setenv("GROQ_API_KEY", "sk-groq-from-env")
    monkeypatch.setenv("GROQ_API_BASE", "https://groq.env.example/v1")

    deployment = routed("groq/llama", api_base="http://127.0.0.1:9/v1", api_key="sk-groq-in-config")
    request = deployment.provider.build_request(deployment.target, "embedding", {"input": "a"}, stream=False)

    assert request.url == "http://127.0.0.1:9/v1/embeddings"
    assert request.headers["Authorization"] == "Bearer sk-groq-in-config"


def test_an_api_base_variable_replaces_the_default_address(monkeypatch):
    monkeypatch.setenv("HOSTED_VLLM_API_BASE", "http://vllm.internal:8000/v1")

    deployment = routed("hosted_vllm/meta-llama/Llama-3.1-8B-Instruct")
    request = deployment.provider.build_request(deployment.target, "chat", CHAT, stream=False)

    assert request.url == "http://vllm.internal:8000/v1/chat/completions"
    assert "Authorization" not in request.headers


def test_every_litellm_openai_compatible_provider_is_known_by_name():
    named_in_the_issue = {
        "groq",
        "mistral",
        "deepseek",
        "together_ai",
        "fireworks_ai",
        "openrouter",
        "perplexity",
        "xai",
        "deepinfra",
        "cerebras",
        "hosted_vllm",
        "lm_studio",
        "nvidia_nim",
        "github",
    }
    assert named_in_the_issue <= set(OPENAI_COMPATIBLE) <= set(PROVIDERS)


@pytest.mark.parametrize(
    ("litellm_model", "entry"),
    [
        ("groq/llama-guard-3-8b", "groq/llama-guard-3-8b"),
        ("mistral/mistral-small-latest", "mistral/mistral-small-latest"),
        ("deepseek/deepseek-chat", "deepseek/deepseek-chat"),
        ("perplexity/sonar", "perplexity/sonar"),
        ("cerebras/llama3.1-8b", "cerebras/llama3.1-8b"),
        (
            "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
            "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        ),
    ],
)
def test_the_price_is_the_cost_maps_entry_under_the_providers_prefix(litellm_model, entry):
    cost_map = active_cost_map()
    deployment = Deployment(model_name="g", litellm_model=litellm_model)

    price = resolve_deployment_price(deployment, cost_map.entries, cost_map.version)

    assert (price.source, price.matched) == ("cost_map", entry)
    assert price.entry["input_cost_per_token"] == cost_map.entries[entry]["input_cost_per_token"] > 0
