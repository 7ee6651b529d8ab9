"""End to end: a bedrock/ deployment of a LiteLLM config serves the official openai SDK from a live `manage.py serve`,
whole, streamed and embeddings, each call signed with SigV4 (the fake Bedrock refuses any other) and charged at the
cost map's Bedrock prices, to the last digit, in the response and in its spend log."""

import json
import time
from decimal import Decimal

import openai
import pytest

from tests.e2e.server import GatewayServer
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.live

SECRET = "bedrock-live-secret-wJalrXUtnFEMI-7f3a"
CONFIG = """
model_list:
  - model_name: claude-bedrock
    litellm_params:
      model: bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0
      api_base: "{up}"
      aws_access_key_id: AKIDLIVEBEDROCK
      aws_secret_access_key: {secret}
      aws_region_name: us-east-1
    model_info: {{id: bedrock-claude-1}}
  - model_name: titan-embed
    litellm_params:
      model: bedrock/amazon.titan-embed-text-v2:0
      api_base: "{up}"
      aws_access_key_id: AKIDLIVEBEDROCK
      aws_secret_access_key: {secret}
      aws_region_name: us-east-1
    model_info: {{id: bedrock-titan-1}}
"""
# us.anthropic.claude-3-5-sonnet-20240620-v1:0 in the shipped cost map, per token.
INPUT, OUTPUT, CACHE_READ, CACHE_WRITE = (Decimal(p) for p in ("0.000003", "0.000015", "0.0000003", "0.00000375"))
# 30 prompt tokens, of which 10 read from the cache and 5 written to it; 7 completion tokens.
EXPECTED = 15 * INPUT + 7 * OUTPUT + 10 * CACHE_READ + 5 * CACHE_WRITE


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream(prompt_tokens=30, completion_tokens=7, cached_tokens=10, cache_creation_tokens=5) as up:
        yield up


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    with GatewayServer(tmp_path_factory.mktemp("bedrock"), CONFIG.format(up=upstream.url, secret=SECRET)) as live:
        yield live


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.master_key, max_retries=0, timeout=20)


def spend_log(server, request_id: str, timeout: float = 10.0) -> dict:
    """The call's spend log, read from /spend/logs with money as exact Decimals."""
    deadline = time.monotonic() + timeout
    while not (
        found := json.loads(
            server.api("GET", "/spend/logs", params={"request_id": request_id}).text, parse_float=Decimal
        )
    ):
        if time.monotonic() > deadline:
            pytest.fail(f"no spend log for {request_id} within {timeout} s")
        time.sleep(0.05)
    (log,) = found
    return log


def test_a_chat_is_served_and_charged_at_bedrock_prices(client, server, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="claude-bedrock", messages=[{"role": "user", "content": "Hello"}], max_tokens=50
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == "Hello from the fake upstream!"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (30, 7)
    assert Decimal(raw.headers["x-litellm-response-cost"]) == EXPECTED
    log = spend_log(server, raw.headers["x-litellm-call-id"])
    assert (log["spend"], log["status"], log["model_id"]) == (EXPECTED, "success", "bedrock-claude-1")
    assert upstream.requests[-1].path == "/model/us.anthropic.claude-3-5-sonnet-20240620-v1:0/converse"
    assert upstream.requests[-1].json["inferenceConfig"] == {"maxTokens": 50}


def test_a_stream_reaches_the_sdk_with_its_cost(client, server, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="claude-bedrock",
        messages=[{"role": "user", "content": "Hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake upstream!"
    assert Decimal(str(chunks[-1].usage.model_extra["cost"])) == EXPECTED
    assert spend_log(server, raw.headers["x-litellm-call-id"])["spend"] == EXPECTED
    assert upstream.requests[-1].path.endswith("/converse-stream")


def test_embeddings_are_charged_per_input_token(client, server):
    raw = client.embeddings.with_raw_response.create(model="titan-embed", input="Hello")

    assert len(raw.parse().data[0].embedding) == 8
    assert Decimal(raw.headers["x-litellm-response-cost"]) == 30 * Decimal("0.00000002")


def test_the_aws_secret_never_reaches_the_logs(server):
    assert SECRET not in server.log()
