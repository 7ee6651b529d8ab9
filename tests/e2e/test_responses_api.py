"""End to end: the official openai SDK's Responses API against /v1/responses on a live server, with an OpenAI-format
and an Anthropic deployment behind it. Each call is priced and logged as the same call through /chat/completions."""

from decimal import Decimal

import openai
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

pytestmark = pytest.mark.live

# The shared live server, its fake upstream, and the fake reset for each test.
upstream, server, up = fronts.upstream, fronts.server, fronts.up

TOOLS = [{"type": "function", "name": "weather", "description": "The weather now", "parameters": {"type": "object"}}]


def client(server, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key or server.master_key, max_retries=0, timeout=20)


@pytest.mark.parametrize("model", MODELS)
def test_create_answers_a_response_charged_as_the_chat_call(server, up, model):
    up.cached_tokens = 2
    raw = client(server).responses.with_raw_response.create(
        model=model, input="Hello", instructions="Be brief.", max_output_tokens=100
    )
    response = raw.parse()

    assert response.id.startswith("resp_")
    assert (response.object, response.status) == ("response", "completed")
    assert response.output_text == "Hello from the fake upstream!"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (12, 7, 19)
    assert response.usage.input_tokens_details.cached_tokens == 2
    cost = Decimal(raw.headers["x-litellm-response-cost"])
    assert cost > 0
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    assert cost == chat_cost(server, model, messages, max_tokens=100)
    log = wait_for_log(server, response.id)
    assert (log["call_type"], log["spend"], log["status"]) == ("responses", cost, "success")


@pytest.mark.parametrize("model", MODELS)
def test_function_call_round_trip(server, up, model):
    up.tool_call = WEATHER
    sdk = client(server)
    first = sdk.responses.create(model=model, input="Weather in Paris?", tools=TOOLS)
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert (call.name, call.arguments) == ("weather", '{"city":"Paris"}')

    up.tool_call = None
    second = sdk.responses.create(
        model=model,
        tools=TOOLS,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "18C"},
        ],
    )
    assert second.output_text == "Hello from the fake upstream!"
    sent = up.requests[-1].json
    if model == "gpt-4o":
        assert sent["messages"][-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "18C"}
        assert sent["messages"][-2]["tool_calls"][0]["function"] == {"name": "weather", "arguments": '{"city":"Paris"}'}
    else:
        assert sent["messages"][-1]["content"] == [
            {"type": "tool_result", "tool_use_id": call.call_id, "content": "18C"}
        ]
        assert sent["messages"][-2]["content"][-1]["input"] == {"city": "Paris"}


@pytest.mark.parametrize("model", MODELS)
def test_stream_events_reach_the_sdk_and_the_call_is_charged_as_chat(server, up, model):
    events = list(client(server).responses.create(model=model, input="Hello", stream=True))

    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == "Hello from the fake upstream!"
    completed = events[-1].response
    assert completed.output_text == text
    assert (completed.usage.input_tokens, completed.usage.output_tokens) == (12, 7)
    log = wait_for_log(server, completed.id)
    assert log["call_type"] == "responses"
    assert log["spend"] == chat_cost(server, model, [{"role": "user", "content": "Hello"}])


@pytest.mark.parametrize("model", MODELS)
def test_streamed_function_call_arguments(server, up, model):
    up.tool_call = WEATHER
    events = list(client(server).responses.create(model=model, input="Weather?", tools=TOOLS, stream=True))

    pieces = "".join(event.delta for event in events if event.type == "response.function_call_arguments.delta")
    (done,) = [event for event in events if event.type == "response.function_call_arguments.done"]
    assert pieces == done.arguments == '{"city":"Paris"}'
    (call,) = [item for item in events[-1].response.output if item.type == "function_call"]
    assert (call.name, call.arguments, call.status) == ("weather", '{"city":"Paris"}', "completed")


def test_previous_response_id_is_refused(server, up):
    with pytest.raises(openai.BadRequestError) as refused:
        client(server).responses.create(model="gpt-4o", input="Hello", previous_response_id="resp_earlier")
    assert refused.value.code == "unsupported_parameter"
    assert up.requests == []


def test_bad_key_is_refused_in_openai_shape(server, up):
    with pytest.raises(openai.AuthenticationError) as refused:
        client(server, "sk-wrong-key").responses.create(model="gpt-4o", input="Hello")
    assert refused.value.status_code == 401
    assert set(refused.value.body) == {"message", "type", "param", "code"}


def test_budget_refusal_in_openai_shape(server, up):
    key = generate_key(server, max_budget=0.0000001)
    with pytest.raises(openai.BadRequestError) as refused:
        client(server, key).responses.create(model="gpt-4o", input="Hello")
    assert refused.value.code == "budget_exceeded"
    assert up.requests == []


def test_client_leaving_mid_stream_is_charged(server, up):
    body = {"model": "gpt-4o", "stream": True, "input": "Hello"}
    assert_charged_after_leaving_mid_stream(server, up, "/v1/responses", body, server.admin_headers(), "responses")
