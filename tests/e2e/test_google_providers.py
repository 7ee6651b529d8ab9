"""End to end: gemini/ and vertex_ai/ deployments of a LiteLLM config served by a live `manage.py serve` through the
official openai SDK, Google's wire format spoken by the fake upstream (Vertex's token endpoint included), each call
priced exactly from the cost map's entry and logged with that cost."""

import json
from decimal import Decimal

import openai
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pricing.active import SHIPPED_COST_MAP
from tests.e2e.server import GatewayServer
from tests.fakes.upstream import FakeUpstream
from tests.polling import wait_until

pytestmark = pytest.mark.live

CONFIG = """
model_list:
  - model_name: gemini-flash
    litellm_params: {{model: gemini/gemini-2.5-flash, api_base: "{up}", api_key: AIza-e2e-gemini-secret-1}}
  - model_name: vertex-flash
    litellm_params:
      model: vertex_ai/gemini-2.5-flash
      api_base: "{up}"
      vertex_project: proj-e2e
      vertex_location: europe-west4
      vertex_credentials: "{credentials}"
  - model_name: vertex-claude
    litellm_params:
      model: vertex_ai/claude-3-5-sonnet@20240620
      api_base: "{up}"
      vertex_project: proj-e2e
      vertex_location: us-east5
      vertex_credentials: "{credentials}"
"""

# The fake's usage: 30 prompt tokens of which 10 cache reads, 7 completion tokens of which 2 thoughts.
PROMPT, CACHED, COMPLETION, THOUGHTS = 30, 10, 7, 2


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream(
        prompt_tokens=PROMPT, cached_tokens=CACHED, completion_tokens=COMPLETION, reasoning_tokens=THOUGHTS
    ) as up:
        yield up


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("google")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    account = {
        "type": "service_account",
        "private_key_id": "e2e-key",
        "private_key": pem.decode(),
        "client_email": "tollgate-e2e@proj-e2e.iam.gserviceaccount.com",
        "token_uri": f"{upstream.url}/token",
    }
    credentials = workdir / "service-account.json"
    credentials.write_bytes(orjson.dumps(account))
    with GatewayServer(workdir, CONFIG.format(up=upstream.url, credentials=credentials)) as live:
        yield live


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.master_key, max_retries=0, timeout=20)


def cost_map_entry(name: str) -> dict:
    """The shipped cost map's entry, every price an exact Decimal."""
    return json.loads(SHIPPED_COST_MAP.read_text(), parse_float=Decimal)[name]


def expected_cost(entry: dict) -> Decimal:
    """Uncached prompt at the input rate, cache reads at theirs, answer and thoughts at the output rate."""
    return (
        (PROMPT - CACHED) * entry["input_cost_per_token"]
        + CACHED * entry["cache_read_input_token_cost"]
        + (COMPLETION - THOUGHTS) * entry["output_cost_per_token"]
        + THOUGHTS * entry["output_cost_per_reasoning_token"]
    )


def logged_cost(server, call_id: str) -> Decimal:
    rows = wait_until(
        lambda: server.query("SELECT cost FROM spend_spendlog WHERE request_id = %s", call_id),
        f"a spend log for {call_id}",
        timeout=10,
    )
    return Decimal(str(rows[0][0]))  # PostgreSQL gives Decimals, SQLite the stored text


@pytest.mark.parametrize(
    ("model", "entry", "path"),
    [
        ("gemini-flash", "gemini/gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent"),
        (
            "vertex-flash",
            "gemini-2.5-flash",  # the map files Vertex's Gemini without a prefix (vertex_ai-language-models)
            "/v1/projects/proj-e2e/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent",
        ),
    ],
)
def test_a_google_deployment_is_served_and_its_spend_log_priced_from_the_cost_map(
    server, upstream, client, model, entry, path
):
    raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "Hello"}])
    completion = raw.parse()

    price = expected_cost(cost_map_entry(entry))
    assert completion.choices[0].message.content == upstream.reply
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (PROMPT, COMPLETION)
    assert completion.usage.completion_tokens_details.reasoning_tokens == THOUGHTS
    assert Decimal(raw.headers["x-litellm-response-cost"]) == price
    assert logged_cost(server, raw.headers["x-litellm-call-id"]) == price
    [seen] = [seen for seen in upstream.requests if seen.path == path]
    if model == "vertex-flash":
        assert seen.headers["authorization"].startswith("Bearer ya29.fake-")  # exchanged at the fake's /token
    else:
        assert seen.headers["x-goog-api-key"] == "AIza-e2e-gemini-secret-1"


def test_a_gemini_stream_reaches_the_sdk_piece_by_piece_with_its_priced_usage_last(server, upstream, client):
    stream = client.chat.completions.create(
        model="gemini-flash",
        messages=[{"role": "user", "content": "Hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    words = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert words == ["Hello ", "from ", "the ", "fake ", "upstream!"]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == PROMPT
    assert Decimal(str(chunks[-1].usage.model_extra["cost"])) == expected_cost(
        cost_map_entry("gemini/gemini-2.5-flash")
    )


def test_claude_on_vertex_is_served_and_priced_from_its_vertex_entry(server, upstream, client):
    raw = client.chat.completions.with_raw_response.create(
        model="vertex-claude", messages=[{"role": "user", "content": "Hello"}]
    )

    entry = cost_map_entry("vertex_ai/claude-3-5-sonnet@20240620")
    # The entry prices no cache read: the cached tokens cost the input rate, as LiteLLM charges them.
    price = PROMPT * entry["input_cost_per_token"] + COMPLETION * entry["output_cost_per_token"]
    assert raw.parse().choices[0].message.content == upstream.reply
    assert (
        Decimal(raw.headers["x-litellm-response-cost"])
        == logged_cost(server, raw.headers["x-litellm-call-id"])
        == price
    )
    [seen] = [seen for seen in upstream.requests if seen.path.endswith("/claude-3-5-sonnet@20240620:rawPredict")]
    assert seen.path.startswith("/v1/projects/proj-e2e/locations/us-east5/publishers/anthropic/models/")
    assert seen.headers["authorization"].startswith("Bearer ya29.fake-")
