"""What the live tests of the front protocols (/v1/messages, /v1/responses) share: one server with an OpenAI and an
Anthropic deployment on one fake upstream, and the ledger read back as an operator would."""

import json
import time
from decimal import Decimal

import httpx
import pytest

from tests.e2e.server import GatewayServer
from tests.fakes.upstream import Behaviour, FakeUpstream

CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{up}/v1", api_key: sk-upstream-openai-fronts-1}}
    model_info: {{id: openai-1}}
  - model_name: claude-sonnet
    litellm_params: {{model: anthropic/claude-3-5-sonnet-20241022, api_base: "{up}", api_key: sk-ant-fronts-secret-3}}
    model_info:
      id: claude-1
      access_groups: [claude-models]
      input_cost_per_token: 0.000003
      output_cost_per_token: 0.000015
      cache_creation_input_token_cost: 0.00000375
      cache_read_input_token_cost: 0.0000003
"""

# Each front is tried against an upstream of each format: the OpenAI deployment and the Anthropic one.
MODELS = ("gpt-4o", "claude-sonnet")
WEATHER = {"name": "weather", "arguments": {"city": "Paris"}}


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream(prompt_tokens=12, completion_tokens=7) as up:
        yield up


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    with GatewayServer(tmp_path_factory.mktemp("fronts"), CONFIG.format(up=upstream.url)) as live:
        yield live


@pytest.fixture
def up(upstream):
    upstream.reset()
    upstream.prompt_tokens, upstream.completion_tokens = 12, 7
    upstream.cached_tokens = upstream.cache_creation_tokens = 0
    upstream.tool_call = None
    return upstream


def logs(server, request_id: str) -> list[dict]:
    """The call's spend logs, read from /spend/logs with money as exact Decimals."""
    response = server.api("GET", "/spend/logs", params={"request_id": request_id})
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal)


def wait_for_log(server, request_id: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while not (found := logs(server, request_id)):
        if time.monotonic() > deadline:
            pytest.fail(f"no spend log for {request_id} within {timeout} s")
        time.sleep(0.05)
    (log,) = found
    return log


def chat_cost(server, model: str, messages: list, **body) -> Decimal:
    """What the same call costs through /chat/completions: the price the fronts must charge."""
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": model, "messages": messages, **body},
        headers=server.admin_headers(),
        timeout=20,
    )
    assert response.status_code == 200, response.text
    return Decimal(response.headers["x-litellm-response-cost"])


def generate_key(server, **body) -> str:
    response = server.api("POST", "/key/generate", json=body)
    assert response.status_code == 200, response.text
    return response.json()["key"]


def assert_charged_after_leaving_mid_stream(server, up, path: str, body: dict, headers: dict, call_type: str):
    """A client that leaves a slow stream once its first words arrived: the upstream stream is cancelled, and the
    call is logged as left and charged for the words relayed."""
    up.script(Behaviour(chunk_delay=0.05, stream_end="hang"))
    with httpx.stream("POST", f"{server.url}{path}", json=body, headers=headers, timeout=10) as response:
        assert response.status_code == 200
        received = b""
        for part in response.iter_raw():
            received += part
            if b"Hello " in received:
                break
        call_id = response.headers["x-litellm-call-id"]

    up.wait_for_cancelled_streams(1)
    log = wait_for_log(server, call_id)
    assert (log["status"], log["call_type"]) == ("client_disconnected", call_type)
    assert log["completion_tokens"] > 0 and log["spend"] > 0
