"""End to end: a LiteLLM config.yaml naming 20 providers, and the ways LiteLLM's clients present their keys, against
a live `manage.py serve` with a fake OpenAI upstream behind every OpenAI-compatible provider.

The deployments Tollgate has no adapter for (watsonx, replicate, cohere_chat, a typo) are imported disabled and the rest
serves; each key header LiteLLM's proxy reads (Authorization, x-litellm-api-key, Azure's api-key, x-api-key) is
accepted on every proxied endpoint, Azure's deployment paths included.
"""

import httpx
import openai
import pytest

from tests.e2e.server import GatewayServer
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.live

# provider -> the key its deployment sends upstream (groq's comes from GROQ_API_KEY in the server's environment).
COMPATIBLE = {
    "groq": "sk-groq-from-env-31337",
    "mistral": "sk-mistral-upstream-1",
    "deepseek": "sk-deepseek-upstream-2",
    "together_ai": "sk-together-upstream-3",
    "openrouter": "sk-openrouter-upstream-4",
    "fireworks_ai": "sk-fireworks-upstream-5",
    "perplexity": "sk-perplexity-upstream-6",
    "xai": "sk-xai-upstream-7",
    "deepinfra": "sk-deepinfra-upstream-8",
    "cerebras": "sk-cerebras-upstream-9",
    "hosted_vllm": "sk-vllm-upstream-10",
    "lm_studio": "sk-lmstudio-upstream-11",
    "nvidia_nim": "sk-nim-upstream-12",
    "github": "sk-github-upstream-13",
    "sambanova": "sk-sambanova-upstream-14",
}
UNSERVABLE = {
    "watsonx-granite": "watsonx/ibm/granite-13b-chat-v2",
    "replicate-llama": "replicate/meta/llama-2-70b-chat",
    "cohere-command": "cohere_chat/command-r",
    "typo": "opneai/gpt-4o",
}


def config(up: str) -> str:
    entries = [
        "  - model_name: gpt-4o\n"
        f'    litellm_params: {{model: openai/gpt-4o, api_base: "{up}/v1", api_key: sk-openai-upstream-0}}\n',
        "  - model_name: embedder\n"
        f'    litellm_params: {{model: openai/text-embedding-3-small, api_base: "{up}/v1", api_key: sk-openai-upstream-0}}\n',
        "  - model_name: azure-gpt\n"
        f'    litellm_params: {{model: azure/gpt-4o-deployment, api_base: "{up}", api_key: azure-upstream-key-15}}\n',
    ]
    for provider, key in COMPATIBLE.items():
        key_line = "" if provider == "groq" else f", api_key: {key}"
        entries.append(
            f"  - model_name: {provider}-model\n"
            f'    litellm_params: {{model: {provider}/org/{provider}-llm, api_base: "{up}/v1"{key_line}}}\n'
        )
    for name, model in UNSERVABLE.items():
        entries.append(f"  - model_name: {name}\n    litellm_params: {{model: {model}, api_key: sk-unservable-16}}\n")
    return "model_list:\n" + "".join(entries)


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    env = {"GROQ_API_KEY": COMPATIBLE["groq"]}
    with GatewayServer(tmp_path_factory.mktemp("drop-in"), config(upstream.url), env=env) as live:
        yield live


@pytest.fixture(scope="module")
def virtual_key(server):
    response = server.api("POST", "/key/generate", json={})
    assert response.status_code == 200, response.text
    return response.json()["key"]


def sdk(server, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", max_retries=0, timeout=20, **kwargs)


def hello(client, model: str, **kwargs):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}], **kwargs)


def test_a_config_naming_twenty_providers_loads_and_the_unservable_ones_are_disabled_with_a_reason(server):
    deployments = server.api("GET", "/model/info").json()["data"]

    assert len({d["litellm_params"]["model"].split("/")[0] for d in deployments}) == 21
    disabled = {
        d["model_name"]: d["model_info"]["disabled_reason"] for d in deployments if not d["model_info"]["enabled"]
    }
    assert set(disabled) == set(UNSERVABLE)
    assert "provider 'cohere_chat' is not supported by Tollgate" in disabled["cohere-command"]
    for name in UNSERVABLE:
        assert f"of model_name {name!r} is imported disabled" in server.log()
    models = {m.id for m in sdk(server, api_key=server.master_key).models.list()}
    assert models.isdisjoint(UNSERVABLE) and {"gpt-4o", "groq-model", "sambanova-model"} <= models


@pytest.mark.parametrize("provider", sorted(COMPATIBLE))
def test_each_openai_compatible_provider_serves_through_the_openai_sdk(server, upstream, provider):
    upstream.requests.clear()

    answer = hello(sdk(server, api_key=server.master_key), f"{provider}-model")

    assert answer.choices[0].message.content == upstream.reply
    (forwarded,) = upstream.requests
    assert forwarded.path == "/v1/chat/completions"
    assert forwarded.json["model"] == f"org/{provider}-llm"
    assert forwarded.headers["authorization"] == f"Bearer {COMPATIBLE[provider]}"


@pytest.mark.parametrize(
    "headers",
    [
        lambda key: {"Authorization": f"Bearer {key}"},
        lambda key: {"x-litellm-api-key": f"Bearer {key}"},
        lambda key: {"x-litellm-api-key": key, "Authorization": "Bearer not-a-tollgate-key"},
        lambda key: {"api-key": key},
        lambda key: {"x-api-key": key},
    ],
    ids=["authorization", "x-litellm-api-key", "x-litellm-api-key-first", "api-key", "x-api-key"],
)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}),
        ("POST", "/chat/completions", {"model": "groq-model", "messages": [{"role": "user", "content": "Hi"}]}),
        ("POST", "/v1/completions", {"model": "gpt-4o", "prompt": "Hi"}),
        ("POST", "/v1/embeddings", {"model": "embedder", "input": "Hi"}),
        ("POST", "/openai/deployments/gpt-4o/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]}),
        ("POST", "/openai/deployments/gpt-4o/completions", {"prompt": "Hi"}),
        ("POST", "/openai/deployments/embedder/embeddings", {"input": "Hi"}),
        ("GET", "/v1/models", None),
    ],
)
def test_every_key_header_litellm_accepts_works_on_every_proxied_endpoint(
    server, virtual_key, headers, method, path, body
):
    response = httpx.request(method, f"{server.url}{path}", json=body, headers=headers(virtual_key), timeout=20)

    assert response.status_code == 200, response.text


def test_a_wrong_key_in_any_header_is_refused(server):
    for name in ("Authorization", "x-litellm-api-key", "api-key", "x-api-key"):
        response = httpx.get(f"{server.url}/v1/models", headers={name: "sk-nobody"}, timeout=20)
        assert response.status_code == 401, name


def test_the_openai_sdk_sends_its_key_in_any_header_litellm_reads(server, virtual_key):
    bearer = sdk(server, api_key=virtual_key)
    litellm_header = sdk(server, api_key="not-a-tollgate-key", default_headers={"x-litellm-api-key": virtual_key})
    anthropic_style = sdk(server, api_key="unused", default_headers={"x-api-key": virtual_key})

    assert hello(bearer, "mistral-model").choices[0].message.content
    assert hello(litellm_header, "mistral-model").choices[0].message.content
    # Only x-api-key: the SDK's own Authorization header left out.
    assert hello(anthropic_style, "mistral-model", extra_headers={"Authorization": openai.Omit()}).choices[0].message


def test_the_azure_sdk_reaches_chat_completions_and_embeddings_by_deployment_path(server, upstream, virtual_key):
    azure = openai.AzureOpenAI(
        api_key=virtual_key, azure_endpoint=server.url, api_version="2024-10-21", max_retries=0, timeout=20
    )

    assert hello(azure, "azure-gpt").choices[0].message.content == upstream.reply
    assert azure.completions.create(model="gpt-4o", prompt="Hi").choices[0].text
    assert len(azure.embeddings.create(model="embedder", input="Hi").data[0].embedding) == upstream.embedding_dimensions
