"""End to end: the official openai SDK against a live `manage.py serve`, fake upstreams of every protocol behind it.

Also the pricing spec's scenarios through the whole proxy: Ollama custom pricing, a built-in price overridden,
Azure with base_model, SageMaker per second, Anthropic with cache tokens.
"""

import time
from decimal import Decimal

import httpx
import openai
import pytest

from tests.e2e.server import GatewayServer
from tests.fakes.upstream import Behaviour, FakeUpstream
from tests.polling import wait_until

pytestmark = pytest.mark.live

CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{up}/v1", api_key: sk-upstream-openai-secret-1}}
    model_info: {{id: openai-1}}
  - model_name: prod-gpt4
    litellm_params: {{model: openai/gpt-4, api_base: "{up}/v1", api_key: sk-upstream-openai-secret-1}}
    model_info: {{id: prod-gpt4-1, input_cost_per_token: 0.00002, output_cost_per_token: 0.00004}}
  - model_name: azure-gpt4-turbo
    litellm_params:
      model: azure/my-gpt4-deployment
      api_base: "{up}"
      api_key: azure-upstream-secret-2
      api_version: "2024-06-01"
    model_info: {{id: azure-1, base_model: azure/gpt-4-1106-preview}}
  - model_name: claude-sonnet
    litellm_params: {{model: anthropic/claude-3-5-sonnet-20241022, api_base: "{up}", api_key: sk-ant-secret-3}}
    model_info:
      id: claude-1
      input_cost_per_token: 0.000003
      output_cost_per_token: 0.000015
      cache_creation_input_token_cost: 0.00000375
      cache_read_input_token_cost: 0.0000003
  - model_name: llama3.2
    litellm_params: {{model: ollama_chat/llama3.2, api_base: "{up}"}}
    model_info: {{id: ollama-1, input_cost_per_token: 0.00002, output_cost_per_token: 0.00004}}
  - model_name: sagemaker-model
    litellm_params:
      model: sagemaker/my-endpoint
      api_base: "{up}"
      aws_access_key_id: AKIDEXAMPLE
      aws_secret_access_key: wJalrXUtnFEMI-sagemaker-secret
      aws_region_name: us-east-1
    model_info: {{id: sagemaker-1, input_cost_per_second: 0.000420}}
  - model_name: embedder
    litellm_params: {{model: openai/text-embedding-3-small, api_base: "{up}/v1", api_key: sk-upstream-openai-secret-1}}
    model_info: {{id: embed-1}}
"""


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream(prompt_tokens=12, completion_tokens=7) as up:
        yield up


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    with GatewayServer(tmp_path_factory.mktemp("e2e"), CONFIG.format(up=upstream.url)) as live:
        yield live


@pytest.fixture
def up(upstream):
    upstream.behaviour = Behaviour()
    upstream._script.clear()
    upstream.prompt_tokens, upstream.completion_tokens = 12, 7
    upstream.cached_tokens = upstream.cache_creation_tokens = upstream.reasoning_tokens = 0
    upstream.requests.clear()
    return upstream


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.master_key, max_retries=0, timeout=20)


def chat(client, model, **kwargs):
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Hello"}], **kwargs
    )


def cost_of(raw) -> Decimal:
    return Decimal(raw.headers["x-litellm-response-cost"])


def test_chat_completion_through_openai_is_priced_from_the_cost_map(client, up):
    raw = chat(client, "gpt-4o")
    completion = raw.parse()

    assert completion.choices[0].message.content == "Hello from the fake upstream!"
    assert completion.usage.prompt_tokens == 12
    # gpt-4o in the shipped cost map: 2.5e-6 input, 1e-5 output.
    assert cost_of(raw) == 12 * Decimal("0.0000025") + 7 * Decimal("0.00001")
    assert raw.headers["x-litellm-model-id"] == "openai-1"
    forwarded = up.requests[-1]
    assert forwarded.headers["authorization"] == "Bearer sk-upstream-openai-secret-1"
    assert forwarded.json["model"] == "gpt-4o"


def test_streaming_chat_reaches_the_sdk_chunk_by_chunk_with_cost_in_usage(client, up):
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake upstream!"
    assert chunks[-1].usage.prompt_tokens == 12
    assert Decimal(str(chunks[-1].usage.model_extra["cost"])) == 12 * Decimal("0.0000025") + 7 * Decimal("0.00001")
    assert up.requests[-1].json["stream_options"] == {"include_usage": True}


def test_stream_is_not_buffered(client, up):
    up.script(Behaviour(chunk_delay=0.25))
    started = time.monotonic()
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True)
    arrivals = [time.monotonic() - started for chunk in stream if chunk.choices and chunk.choices[0].delta.content]

    # The first words arrive while the upstream is still sleeping before the later ones.
    assert len(arrivals) >= 4
    assert arrivals[-1] - arrivals[0] >= 0.25 * (len(arrivals) - 2)


def test_completions_and_embeddings(client, up):
    completion = client.completions.create(model="gpt-4o", prompt="Say hello")
    embedding = client.embeddings.create(model="embedder", input=["one", "two"])

    assert completion.choices[0].text == "Hello from the fake upstream!"
    assert [len(item.embedding) for item in embedding.data] == [8, 8]


def test_models_lists_every_group(client):
    assert {"gpt-4o", "claude-sonnet", "llama3.2", "embedder"} <= {model.id for model in client.models.list()}


@pytest.mark.parametrize(
    ("call", "exception", "status"),
    [
        (lambda c: chat(c, "no-such-model"), openai.BadRequestError, 400),
        (lambda c: chat(c, "gpt-4o", max_tokens=-5), openai.BadRequestError, 400),
        (
            lambda c: openai.OpenAI(base_url=str(c.base_url), api_key="sk-nope", max_retries=0).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}]
            ),
            openai.AuthenticationError,
            401,
        ),
    ],
)
def test_refusals_raise_the_sdk_exception(client, call, exception, status):
    with pytest.raises(exception) as raised:
        call(client)

    assert raised.value.status_code == status
    assert set(raised.value.body) >= {"message", "type", "param", "code"}


def test_upstream_4xx_is_passed_through_with_its_message(client, up):
    up.script(Behaviour(status=400, message="This model's maximum context length is 8192 tokens"))

    with pytest.raises(openai.BadRequestError) as raised:
        chat(client, "gpt-4o")

    assert "maximum context length is 8192" in raised.value.message
    assert len(up.requests) == 1  # a client error is never retried


def test_client_disconnect_mid_stream_cancels_the_upstream_and_charges(server, up):
    up.script(Behaviour(chunk_delay=0.05, stream_end="hang"))
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "Hello"}]}
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json=body, headers=server.admin_headers(), timeout=10
    ) as response:
        received = b""
        for part in response.iter_raw():
            received += part
            if b'"content":"Hello' in received:
                break  # the client goes away once the first words are there
        call_id = response.headers["x-litellm-call-id"]

    up.wait_for_cancelled_streams(1)
    query = "SELECT status, completion_tokens FROM spend_spendlog WHERE request_id = %s"
    rows = wait_until(lambda: server.query(query, call_id), "the cut call's spend log")
    assert rows[0][0] == "client_disconnected"
    assert rows[0][1] > 0  # charged for the words the upstream already produced


# --- the pricing spec's scenarios, end to end -----------------------------------------------------------------


def test_spec_scenario_1_ollama_custom_pricing(client, up):
    raw = chat(client, "llama3.2")

    assert cost_of(raw) == 12 * Decimal("0.00002") + 7 * Decimal("0.00004")


def test_spec_scenario_2_override_of_a_built_in_price(client, up):
    up.prompt_tokens, up.completion_tokens = 1000, 500

    raw = chat(client, "prod-gpt4")

    # Negotiated 0.00002 / 0.00004 instead of gpt-4's built-in 0.00003 / 0.00006.
    assert cost_of(raw) == Decimal("0.04")


def test_spec_scenario_3_azure_with_base_model(client, up):
    up.prompt_tokens, up.completion_tokens = 1000, 500

    raw = chat(client, "azure-gpt4-turbo")

    # azure/gpt-4-1106-preview: 0.00001 input, 0.00003 output.
    assert cost_of(raw) == Decimal("0.025")
    forwarded = up.requests[-1]
    assert forwarded.path == "/openai/deployments/my-gpt4-deployment/chat/completions"
    assert forwarded.query["api-version"] == "2024-06-01"
    assert forwarded.headers["api-key"] == "azure-upstream-secret-2"


def test_spec_cache_example_with_anthropic(client, up):
    up.prompt_tokens, up.cached_tokens, up.completion_tokens = 6000, 5000, 500

    raw = chat(client, "claude-sonnet")

    # 1000 regular × 0.000003 + 5000 cache reads × 0.0000003 + 500 output × 0.000015.
    assert cost_of(raw) == Decimal("0.012")
    assert raw.headers["x-litellm-response-cost-cache-read"] == "0.0015"
    assert raw.parse().usage.prompt_tokens == 6000


def test_spec_sagemaker_is_priced_per_second(client, up, server):
    up.script(Behaviour(first_byte_delay=0.3))

    raw = chat(client, "sagemaker-model")

    seconds = cost_of(raw) / Decimal("0.000420")
    assert Decimal("0.3") <= seconds < Decimal("3")
    assert up.requests[-1].headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")


def test_provider_secrets_never_reach_the_logs(server):
    log = server.log()
    for secret in ("sk-upstream-openai-secret-1", "azure-upstream-secret-2", "sk-ant-secret-3", "sagemaker-secret"):
        assert secret not in log


@pytest.mark.parametrize("model", ["claude-sonnet", "llama3.2", "azure-gpt4-turbo", "sagemaker-model"])
def test_every_protocol_streams_to_the_sdk_with_usage(client, up, model):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake upstream!"
    assert chunks[-1].usage.completion_tokens > 0
    assert Decimal(str(chunks[-1].usage.model_extra["cost"])) > 0


def test_anthropic_gets_its_own_wire_format(client, up):
    chat(client, "claude-sonnet", max_tokens=50, stop=["END"])

    sent = up.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-secret-3"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert (sent.json["max_tokens"], sent.json["stop_sequences"]) == (50, ["END"])


def test_ollama_chat_gets_its_own_wire_format(client, up):
    raw = chat(client, "llama3.2", temperature=0.2)

    sent = up.requests[-1]
    assert sent.path == "/api/chat"
    assert sent.json["options"]["temperature"] == 0.2
    assert raw.parse().usage.prompt_tokens == 12
