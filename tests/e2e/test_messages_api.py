"""End to end: the official anthropic SDK against /v1/messages on a live server, with an OpenAI-format and an
Anthropic deployment behind it. Each call is priced and logged as the same call through /chat/completions is."""

import functools
from decimal import Decimal

import anthropic
import httpx
import orjson
import pytest

from tests.e2e import fronts
from tests.e2e.fronts import (
    MODELS,
    WEATHER,
    assert_charged_after_leaving_mid_stream,
    chat_cost,
    generate_key,
    wait_for_log,
)
from tests.fakes.upstream import ANTHROPIC_THINKING

pytestmark = pytest.mark.live

# The shared live server, its fake upstream, and the fake reset for each test.
upstream, server, up = fronts.upstream, fronts.server, fronts.up

HELLO = [{"role": "user", "content": "Hello"}]
TOOLS = [{"name": "weather", "description": "The weather now", "input_schema": {"type": "object"}}]


@functools.cache
def client(server, key: str | None = None) -> anthropic.Anthropic:
    """One SDK client per server and key for the whole module: a client per call left its pooled connection to be
    closed by the garbage collector, whose ResourceWarning then failed whichever test was running."""
    return anthropic.Anthropic(base_url=server.url, api_key=key or server.master_key, max_retries=0, timeout=20)


@pytest.mark.parametrize("model", MODELS)
def test_create_answers_a_message_charged_as_the_chat_call(server, up, model):
    up.cached_tokens = 2 if model == "claude-sonnet" else 0
    raw = client(server).messages.with_raw_response.create(
        model=model, max_tokens=100, messages=HELLO, system="Be brief."
    )
    message = raw.parse()

    assert message.id.startswith("msg_")
    assert message.type == "message"
    assert message.content[0].text == "Hello from the fake upstream!"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0), message.usage.output_tokens) == (
        12,
        7,
    )
    cost = Decimal(raw.headers["x-litellm-response-cost"])
    assert cost > 0
    assert cost == chat_cost(server, model, [{"role": "system", "content": "Be brief."}, *HELLO], max_tokens=100)
    log = wait_for_log(server, message.id)
    assert (log["call_type"], log["spend"], log["status"]) == ("anthropic_messages", cost, "success")
    assert raw.headers["x-litellm-call-id"] == message.id


@pytest.mark.parametrize("model", MODELS)
def test_tool_use_round_trip(server, up, model):
    up.tool_call = WEATHER
    sdk = client(server)
    first = sdk.messages.create(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS
    )
    (tool_use,) = [block for block in first.content if block.type == "tool_use"]
    assert (first.stop_reason, tool_use.name, tool_use.input) == ("tool_use", "weather", {"city": "Paris"})

    up.tool_call = None
    second = sdk.messages.create(
        model=model,
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18C"}]},
        ],
    )
    assert second.content[0].text == "Hello from the fake upstream!"
    sent = up.requests[-1].json
    if model == "gpt-4o":
        assert sent["messages"][-1] == {"role": "tool", "tool_call_id": tool_use.id, "content": "18C"}
        assert sent["messages"][-2]["tool_calls"][0]["function"]["name"] == "weather"
        assert sent["tools"][0]["function"]["name"] == "weather"
    else:
        assert sent["messages"][-1]["content"] == [
            {"type": "tool_result", "tool_use_id": tool_use.id, "content": "18C"}
        ]
        assert sent["messages"][-2]["content"][-1]["input"] == {"city": "Paris"}


@pytest.mark.parametrize("model", MODELS)
def test_stream_events_reach_the_sdk_and_the_call_is_charged_as_chat(server, up, model):
    with client(server).messages.stream(model=model, max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "Hello from the fake upstream!"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 7)
    log = wait_for_log(server, final.id)
    assert log["call_type"] == "anthropic_messages"
    assert log["spend"] == chat_cost(server, model, HELLO, max_tokens=100)
    assert (log["prompt_tokens"], log["completion_tokens"]) == (12, 7)


@pytest.mark.parametrize("model", MODELS)
def test_streamed_tool_use_arrives_as_input_json(server, up, model):
    up.tool_call = WEATHER
    with client(server).messages.stream(model=model, max_tokens=100, messages=HELLO, tools=TOOLS) as stream:
        final = stream.get_final_message()

    (tool_use,) = [block for block in final.content if block.type == "tool_use"]
    assert (final.stop_reason, tool_use.name, tool_use.input) == ("tool_use", "weather", {"city": "Paris"})


def test_raw_stream_sends_anthropic_event_lines(server, up):
    body = {"model": "gpt-4o", "max_tokens": 100, "stream": True, "messages": HELLO}
    headers = {"x-api-key": server.master_key, "anthropic-version": "2023-06-01"}
    response = httpx.post(f"{server.url}/v1/messages", json=body, headers=headers, timeout=20)

    names = [line.removeprefix("event: ") for line in response.text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert response.headers["content-type"].startswith("text/event-stream")


def test_count_tokens_asks_an_anthropic_deployment_and_is_never_charged(server, up):
    up.cached_tokens = 2  # Anthropic's count excludes nothing cached: the fake answers its input_tokens, 10
    counted = client(server).messages.count_tokens(model="claude-sonnet", messages=HELLO, system="Be brief.")

    assert counted.input_tokens == 10
    forwarded = up.requests[-1]
    assert forwarded.path == "/v1/messages/count_tokens"
    assert forwarded.headers["x-api-key"] == "sk-ant-fronts-secret-3"
    assert forwarded.json == {"messages": HELLO, "system": "Be brief.", "model": "claude-3-5-sonnet-20241022"}


def test_count_tokens_admits_a_key_by_its_access_group_like_a_call(server, up):
    key = generate_key(server, models=["claude-models"])  # the access group of the claude deployment
    counted = client(server, key).messages.count_tokens(model="claude-sonnet", messages=HELLO)

    assert counted.input_tokens == 12
    with pytest.raises(anthropic.PermissionDeniedError):
        client(server, key).messages.count_tokens(model="gpt-4o", messages=HELLO)


def test_count_tokens_estimates_for_other_providers_and_charges_nothing(server, up):
    key = generate_key(server)
    counted = client(server, key).messages.count_tokens(
        model="gpt-4o", messages=[{"role": "user", "content": "x" * 400}]
    )

    assert counted.input_tokens == 100  # 4 characters a token (an upstream's count would be the fake's 12)
    assert server.api("GET", "/spend/logs", params={"api_key": key}).json() == []


def test_missing_max_tokens_is_refused_in_anthropic_shape(server, up):
    response = httpx.post(
        f"{server.url}/v1/messages",
        json={"model": "gpt-4o", "messages": HELLO},
        headers={"x-api-key": server.master_key},
        timeout=20,
    )
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in response.json()["error"]["message"]
    assert up.requests == []


def test_bad_key_is_refused_in_anthropic_shape(server, up):
    with pytest.raises(anthropic.AuthenticationError) as refused:
        client(server, "sk-wrong-key").messages.create(model="gpt-4o", max_tokens=10, messages=HELLO)
    assert refused.value.status_code == 401
    assert refused.value.body["type"] == "error"
    assert refused.value.body["error"]["type"] == "authentication_error"


def test_budget_refusal_in_anthropic_shape(server, up):
    key = generate_key(server, max_budget=0.0000001)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client(server, key).messages.create(model="gpt-4o", max_tokens=10, messages=HELLO)
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert "budget" in refused.value.body["error"]["message"].lower()
    assert up.requests == []


def test_client_leaving_mid_stream_is_charged(server, up):
    body = {"model": "gpt-4o", "max_tokens": 100, "stream": True, "messages": HELLO}
    headers = {"x-api-key": server.master_key}
    assert_charged_after_leaving_mid_stream(server, up, "/v1/messages", body, headers, "anthropic_messages")


# --- what Anthropic's own API keeps: cache hints, thinking, stop sequences, documents ---------------------------

EPHEMERAL = {"type": "ephemeral"}
PDF = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQKJcOkw7zDtsOfCg=="}


def sent_to_upstream(up) -> dict:
    (request,) = [recorded for recorded in up.requests if recorded.path.endswith(("/messages", "/chat/completions"))]
    return request.json


def test_cache_hints_reach_anthropic_and_are_priced_as_the_chat_call_with_them(server, up):
    up.cache_needs_hint = True  # the fake reports cache reads and writes only when asked with a breakpoint
    up.cached_tokens, up.cache_creation_tokens = 3, 4
    raw = client(server).messages.with_raw_response.create(
        model="claude-sonnet",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello", "cache_control": EPHEMERAL}]}],
        tools=[{**TOOLS[0], "cache_control": EPHEMERAL}],
    )
    message = raw.parse()

    sent = sent_to_upstream(up)
    assert sent["system"] == [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}]
    assert sent["messages"][0]["content"] == [{"type": "text", "text": "Hello", "cache_control": EPHEMERAL}]
    assert sent["tools"][0]["cache_control"] == EPHEMERAL
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (3, 4)
    # 5 input tokens at $3/M, 4 cache writes at $3.75/M, 3 cache reads at $0.30/M, 7 output tokens at $15/M.
    cost = Decimal(raw.headers["x-litellm-response-cost"])
    assert cost == Decimal("0.0001359")
    assert wait_for_log(server, message.id)["spend"] == cost
    assert cost == chat_cost(
        server,
        "claude-sonnet",
        [
            {"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}]},
            {"role": "user", "content": [{"type": "text", "text": "Hello", "cache_control": EPHEMERAL}]},
        ],
        max_tokens=100,
        tools=[{"type": "function", "function": {"name": "weather"}, "cache_control": EPHEMERAL}],
    )


def test_cache_hint_on_a_tool_result_reaches_anthropic(server, up):
    client(server).messages.create(
        model="claude-sonnet",
        max_tokens=100,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C", "cache_control": EPHEMERAL}
                ],
            },
        ],
        tools=TOOLS,
    )
    assert sent_to_upstream(up)["messages"][-1]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C", "cache_control": EPHEMERAL}
    ]


def test_an_openai_upstream_gets_no_anthropic_only_fields(server, up):
    client(server).messages.create(
        model="gpt-4o",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}],
        messages=[
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Hm.", "signature": "sig"},
                    {"type": "text", "text": "Hello"},
                ],
            },
            {"role": "user", "content": [{"type": "text", "text": "Again", "cache_control": EPHEMERAL}]},
        ],
        tools=[{**TOOLS[0], "cache_control": EPHEMERAL}],
        thinking={"type": "enabled", "budget_tokens": 2048},
        extra_body={"top_k": 5},  # this SDK version names no top_k
    )
    sent = sent_to_upstream(up)
    assert b"cache_control" not in orjson.dumps(sent)
    assert sent["messages"][2] == {"role": "assistant", "content": "Hello"}
    assert ("thinking" in sent, "top_k" in sent, sent["reasoning_effort"]) == (False, False, "medium")


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_round_trip_keeps_the_signature(server, up, stream):
    sdk = client(server)
    thinking = {"type": "enabled", "budget_tokens": 2048}
    if stream:
        with sdk.messages.stream(model="claude-sonnet", max_tokens=4096, messages=HELLO, thinking=thinking) as events:
            first = events.get_final_message()
    else:
        first = sdk.messages.create(model="claude-sonnet", max_tokens=4096, messages=HELLO, thinking=thinking)

    assert sent_to_upstream(up)["thinking"] == thinking
    block, text = first.content
    assert (block.type, block.thinking, block.signature) == ("thinking", *ANTHROPIC_THINKING.values())
    assert text.text == "Hello from the fake upstream!"

    up.reset()
    sdk.messages.create(
        model="claude-sonnet",
        max_tokens=4096,
        thinking=thinking,
        messages=[*HELLO, {"role": "assistant", "content": [b.model_dump() for b in first.content]}, *HELLO],
    )
    assert sent_to_upstream(up)["messages"][1]["content"] == [
        {"type": "thinking", **ANTHROPIC_THINKING},
        {"type": "text", "text": "Hello from the fake upstream!"},
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequence_is_the_stop_reason_with_the_sequence(server, up, stream):
    body = {"model": "claude-sonnet", "max_tokens": 100, "messages": HELLO, "stop_sequences": ["END", "fake"]}
    if stream:
        with client(server).messages.stream(**body) as events:
            message = events.get_final_message()
    else:
        message = client(server).messages.create(**body)

    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "fake")
    assert message.content[0].text == "Hello from the "


def test_a_document_reaches_anthropic_as_a_document(server, up):
    document = {"type": "document", "source": PDF, "title": "Report", "cache_control": EPHEMERAL}
    client(server).messages.create(
        model="claude-sonnet",
        max_tokens=100,
        messages=[{"role": "user", "content": [document, {"type": "text", "text": "Summarize it."}]}],
    )
    assert sent_to_upstream(up)["messages"][0]["content"] == [document, {"type": "text", "text": "Summarize it."}]


def test_a_document_for_an_openai_upstream_is_refused_not_dropped(server, up):
    text = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "The report."}}
    with pytest.raises(anthropic.BadRequestError) as refused:
        client(server).messages.create(model="gpt-4o", max_tokens=100, messages=[{"role": "user", "content": [text]}])

    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert "is served by openai, which does not take documents" in refused.value.body["error"]["message"]
    assert up.requests == []
