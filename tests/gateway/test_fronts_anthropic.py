"""Anthropic's Messages API as a front: its requests as chat calls, chat answers and chunks as Messages and events."""

from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.proxy.errors import BadRequest, UpstreamFailed
from gateway.proxy.fronts.anthropic_messages import AnthropicMessagesFront
from gateway.proxy.payload import parse_payload
from keys.errors import BudgetExceeded
from pricing.calculator import Usage
from tests.gateway.fronts_samples import ANSWER_WITH_TOOL_CALL, events, json_values, play


def call():
    return SimpleNamespace(request_id="msg_test", payload={"model": "claude"}, start_time=datetime.now(UTC))


def to_chat(**body):
    return AnthropicMessagesFront().to_chat({"model": "claude", "max_tokens": 100, **body})


def test_system_blocks_images_sampling_and_user():
    chat = to_chat(
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                ],
            }
        ],
        temperature=0.2,
        top_p=0.9,
        top_k=5,
        stop_sequences=["END"],
        metadata={"user_id": "u-42"},
    )
    assert chat["messages"][0] == {"role": "system", "content": "Be brief.\n\nBe kind."}
    assert chat["messages"][1]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    assert (chat["temperature"], chat["top_p"], chat["top_k"], chat["stop"]) == (0.2, 0.9, 5, ["END"])
    assert chat["user"] == "u-42"
    assert chat["max_tokens"] == 100
    assert "metadata" not in chat


def test_tool_use_round_trip_becomes_tool_calls_and_tool_messages():
    chat = to_chat(
        tools=[{"name": "weather", "description": "Weather now", "input_schema": {"type": "object"}}],
        tool_choice={"type": "tool", "name": "weather", "disable_parallel_tool_use": True},
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
    )
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "weather", "parameters": {"type": "object"}, "description": "Weather now"},
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert chat["parallel_tool_calls"] is False
    assistant, result, follow_up = chat["messages"][1:]
    assert assistant["content"] == "Checking."
    assert assistant["tool_calls"] == [
        {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
    ]
    assert result == {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}
    assert follow_up == {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]}


@pytest.mark.parametrize(("choice", "expected"), [("auto", "auto"), ("any", "required"), ("none", "none")])
def test_tool_choice_types(choice, expected):
    assert (
        to_chat(messages=[{"role": "user", "content": "hi"}], tool_choice={"type": choice})["tool_choice"] == expected
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"max_tokens": "10", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"max_tokens": 10, "messages": []}, "messages"),
        ({"max_tokens": 10, "messages": [{"role": "system", "content": "hi"}]}, "messages[0]"),
        (
            {"max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "document"}]}]},
            "messages[0].content[0]",
        ),
        (
            {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], "tool_choice": {"type": "x"}},
            "tool_choice",
        ),
    ],
)
def test_bad_requests_are_refused_naming_the_field(body, param):
    with pytest.raises(BadRequest) as refused:
        AnthropicMessagesFront().to_chat({"model": "claude", **body})
    assert refused.value.param == param


def test_count_tokens_requests_need_no_max_tokens():
    chat = AnthropicMessagesFront(counting=True).to_chat({"model": "c", "messages": [{"role": "user", "content": "x"}]})
    assert "max_tokens" not in chat


def test_answer_is_a_message_with_anthropic_usage():
    message = AnthropicMessagesFront().answer(ANSWER_WITH_TOOL_CALL, call())
    assert message == {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o-2024",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "call_1", "name": "look", "input": {"x": 1}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 15,
            "output_tokens": 7,
            "cache_read_input_tokens": 10,
            "cache_creation_input_tokens": 5,
        },
    }


@pytest.mark.parametrize(("finish", "stop"), [("stop", "end_turn"), ("length", "max_tokens")])
def test_stop_reasons(finish, stop):
    chat = {"choices": [{"message": {"content": "x"}, "finish_reason": finish}], "usage": {}}
    assert AnthropicMessagesFront().answer(chat, call())["stop_reason"] == stop


def test_stream_events_in_anthropic_order_with_text_and_tool_blocks():
    stream = AnthropicMessagesFront().stream(call())
    out = play(stream, Usage(prompt_tokens=20, completion_tokens=9, cached_tokens=4))
    seen = events(out)
    assert [name for name, _ in seen] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(name == data["type"] for name, data in seen)
    assert seen[0][1]["message"]["id"] == "msg_test"
    assert seen[3][1] == {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}}
    assert seen[6][1]["content_block"] == {"type": "tool_use", "id": "call_1", "input": {}, "name": "look"}
    assert seen[8][1]["delta"] == {"type": "input_json_delta", "partial_json": "1}"}
    assert seen[8][1]["index"] == 1
    assert seen[10][1]["delta"]["stop_reason"] == "tool_use"
    assert seen[10][1]["usage"] == {
        "input_tokens": 16,
        "output_tokens": 9,
        "cache_read_input_tokens": 4,
        "cache_creation_input_tokens": 0,
    }


def test_stream_error_event_is_anthropic_shaped():
    stream = AnthropicMessagesFront().stream(call())
    assert events(stream.error("upstream_timeout", "The upstream stopped.")) == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "The upstream stopped."}})
    ]


@pytest.mark.parametrize(
    ("exc", "status", "kind"),
    [
        (BadRequest("max_tokens: Field required", param="max_tokens"), 400, "invalid_request_error"),
        (BudgetExceeded("Budget has been exceeded"), 400, "invalid_request_error"),
        (UpstreamFailed("timed out", status=504, code="upstream_timeout"), 504, "timeout_error"),
        (UpstreamFailed("bad", status=502, code="upstream_error"), 502, "api_error"),
    ],
)
def test_refusals_in_anthropic_error_shape_with_the_proxy_status(exc, status, kind):
    response = AnthropicMessagesFront().error_response(exc)
    assert response.status_code == status
    assert orjson.loads(response.content) == {"type": "error", "error": {"type": kind, "message": str(exc)}}


IMAGE = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
FUZZED_KEYS = [
    "model",
    "messages",
    "max_tokens",
    "system",
    "role",
    "content",
    "type",
    "text",
    "image",
    "source",
    "base64",
    "url",
    "data",
    "media_type",
    "tool_use",
    "tool_result",
    "tool_use_id",
    "id",
    "name",
    "input",
    "tools",
    "input_schema",
    "tool_choice",
    "auto",
    "any",
    "tool",
    "none",
    "stop_sequences",
    "metadata",
    "user_id",
    "temperature",
    "top_p",
    "top_k",
    "stream",
    "user",
    "assistant",
    "thinking",
    "disable_parallel_tool_use",
]


@settings(deadline=None, derandomize=True, max_examples=400)
@example(body={"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "system": [IMAGE]})
@given(body=st.dictionaries(st.sampled_from(FUZZED_KEYS), json_values(FUZZED_KEYS), max_size=8))
def test_any_body_is_a_checked_chat_call_or_a_bad_request(body):
    """Whatever a client sends, the front's translation and the chat checks refuse it with a 400 or pass it: never
    another exception (a 500)."""
    try:
        parse_payload(orjson.dumps(body), "chat", 10**7, translate=AnthropicMessagesFront().to_chat)
    except BadRequest:
        pass
