"""OpenAI's Responses API as a front: its requests as chat calls, chat answers and chunks as Responses and events,
each checked against the openai SDK's own types (validated, not merely constructed)."""

from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pydantic
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent

from gateway.proxy.errors import BadRequest
from gateway.proxy.fronts.responses import ResponsesFront
from gateway.proxy.payload import parse_payload
from pricing.calculator import Usage
from tests.gateway.fronts_samples import ANSWER_WITH_TOOL_CALL, json_values, play
from tests.gateway.fronts_samples import events as named_events

STREAM_EVENT = pydantic.TypeAdapter(ResponseStreamEvent)


def call():
    return SimpleNamespace(request_id="resp_test", payload={"model": "gpt-4o"}, start_time=datetime.now(UTC))


def to_chat(**body):
    return ResponsesFront().to_chat({"model": "gpt-4o", **body})


def test_string_input_instructions_and_settings():
    chat = to_chat(
        input="Hello",
        instructions="Be brief.",
        max_output_tokens=50,
        temperature=0.3,
        top_p=0.8,
        user="u-1",
        metadata={"tags": ["a"]},
        store=True,
        text={"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": True}},
    )
    assert chat["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    assert (chat["max_tokens"], chat["temperature"], chat["top_p"], chat["user"]) == (50, 0.3, 0.8, "u-1")
    assert chat["metadata"] == {"tags": ["a"]}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    assert "store" not in chat


def test_items_with_parts_function_calls_and_outputs():
    chat = to_chat(
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is in this image?"},
                    {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
                ],
            },
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "call_1", "name": "look", "arguments": '{"x":1}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "a cat"},
            {"type": "reasoning", "summary": []},
        ],
        tools=[{"type": "function", "name": "look", "description": "Look", "parameters": {"type": "object"}}],
        tool_choice={"type": "function", "name": "look"},
    )
    user, assistant, output = chat["messages"]
    assert user["content"] == [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
    ]
    assert assistant == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"x":1}'}}],
    }
    assert output == {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "look", "description": "Look", "parameters": {"type": "object"}},
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "look"}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": []}, "input"),
        ({"input": [{"type": "file_search_call"}]}, "input[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_file"}]}]}, "input[0].content[0]"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools"),
        ({"input": "hi", "instructions": 3}, "instructions"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(body, param):
    with pytest.raises(BadRequest) as refused:
        to_chat(**body)
    assert refused.value.param == param


def test_answer_is_a_response_the_sdk_validates():
    front = ResponsesFront()
    front.to_chat({"model": "gpt-4o", "input": "hi", "instructions": "Be brief."})
    answer = front.answer(ANSWER_WITH_TOOL_CALL, call())
    response = Response.model_validate(answer)
    assert response.id == "resp_test"
    assert response.status == "completed"
    assert response.instructions == "Be brief."
    assert response.output_text == "Let me look."
    assert response.output[1].type == "function_call"
    assert (response.output[1].call_id, response.output[1].name) == ("call_1", "look")
    assert response.usage.input_tokens == 30
    assert response.usage.input_tokens_details.cached_tokens == 10
    assert response.usage.output_tokens_details.reasoning_tokens == 2
    assert response.usage.total_tokens == 37


def test_a_length_finish_is_an_incomplete_response():
    front = ResponsesFront()
    chat = {"choices": [{"message": {"content": "x"}, "finish_reason": "length"}], "usage": {}}
    answer = front.answer(chat, call())
    assert (answer["status"], answer["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})


def validated(data: bytes) -> list:
    """Each event as the openai SDK's own type, its `event:` line naming its type."""
    for name, event in named_events(data):
        assert name == event["type"]
    return [STREAM_EVENT.validate_python(event) for _, event in named_events(data)]


def test_stream_events_the_sdk_validates_in_order():
    front = ResponsesFront()
    front.to_chat({"model": "gpt-4o", "input": "hi"})
    stream = front.stream(call())
    seen = validated(play(stream, Usage(prompt_tokens=20, completion_tokens=9)))
    assert [event.type for event in seen] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in seen] == list(range(len(seen)))
    assert seen[6].text == "Hi there"
    assert seen[12].arguments == '{"x":1}'
    completed = seen[-1].response
    assert completed.output_text == "Hi there"
    assert completed.output[1].arguments == '{"x":1}'
    assert (completed.usage.input_tokens, completed.usage.output_tokens, completed.usage.total_tokens) == (20, 9, 29)


def test_stream_error_event_the_sdk_validates():
    stream = ResponsesFront().stream(call())
    (error,) = validated(stream.error("upstream_timeout", "The upstream stopped."))
    assert (error.type, error.code, error.message) == ("error", "upstream_timeout", "The upstream stopped.")


FUZZED_KEYS = [
    "model",
    "input",
    "instructions",
    "role",
    "content",
    "type",
    "message",
    "input_text",
    "input_image",
    "output_text",
    "image_url",
    "detail",
    "text",
    "function_call",
    "function_call_output",
    "call_id",
    "name",
    "arguments",
    "output",
    "tools",
    "function",
    "parameters",
    "tool_choice",
    "auto",
    "required",
    "max_output_tokens",
    "temperature",
    "top_p",
    "format",
    "json_schema",
    "schema",
    "metadata",
    "user",
    "store",
    "stream",
    "reasoning",
    "effort",
    "user",
    "assistant",
    "system",
    "developer",
]


@settings(deadline=None, derandomize=True, max_examples=400)
@example(body={"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": 5}]})
@given(body=st.dictionaries(st.sampled_from(FUZZED_KEYS), json_values(FUZZED_KEYS), max_size=8))
def test_any_body_is_a_checked_chat_call_or_a_bad_request(body):
    """Whatever a client sends, the front's translation and the chat checks refuse it with a 400 or pass it: never
    another exception (a 500)."""
    try:
        parse_payload(orjson.dumps(body), "chat", 10**7, translate=ResponsesFront().to_chat)
    except BadRequest:
        pass
