"""What /v1/messages carries beyond plain chat (cache hints, thinking, documents, top_k): how the front's payload is
adapted to each provider, how Bedrock's Converse spells it, and thinking coming back as Anthropic's blocks."""

from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest

from gateway.providers import get_provider
from gateway.providers.anthropic import AnthropicStream
from gateway.providers.base import ProviderError, Target
from gateway.providers.bedrock import BedrockStream, converse_body
from gateway.proxy.errors import BadRequest
from gateway.proxy.fronts.anthropic_messages import AnthropicMessagesFront
from pricing.calculator import Usage
from tests.gateway.fronts_samples import chunk, events

EPHEMERAL = {"type": "ephemeral"}
PDF = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}
THINKING = {"type": "enabled", "budget_tokens": 1024}


def call():
    return SimpleNamespace(request_id="msg_test", payload={"model": "claude"}, start_time=datetime.now(UTC))


def deployment(provider: str, model: str):
    return SimpleNamespace(target=Target(provider, model))


def translated(**body) -> tuple[AnthropicMessagesFront, dict]:
    front = AnthropicMessagesFront()
    return front, front.to_chat({"model": "claude", "max_tokens": 100, **body})


CONVERSATION = {
    "system": [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}],
    "messages": [
        {"role": "user", "content": [{"type": "document", "source": PDF, "title": "Q3: report!"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Hm.", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C", "cache_control": EPHEMERAL}
            ],
        },
    ],
    "tools": [{"name": "weather", "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}],
    "thinking": THINKING,
    "top_k": 5,
}


@pytest.mark.parametrize(
    ("provider", "model", "family"),
    [
        ("anthropic", "claude-sonnet-4", True),
        ("bedrock", "us.anthropic.claude-3-7-sonnet-20250219-v1:0", True),
        ("bedrock", "arn:aws:bedrock:us-east-1:1:application-inference-profile/x", True),
        ("bedrock", "meta.llama3-70b-instruct-v1:0", False),
        ("vertex_ai", "claude-3-5-sonnet@20240620", True),
        ("vertex_ai", "gemini-2.5-pro", False),
        ("openai", "gpt-4o", False),
    ],
)
def test_anthropic_family_deployments_get_everything_others_a_plain_chat_call(provider, model, family):
    front, chat = translated(**{**CONVERSATION, "messages": CONVERSATION["messages"][1:]})
    sent = front.for_deployment(chat, deployment(provider, model))

    assert (sent is chat) is family
    if not family:
        assert b"cache_control" not in orjson.dumps(sent)
        assert "thinking_blocks" not in sent["messages"][1]
        assert sent["reasoning_effort"] == "low"  # a budget of 1024
        assert ("top_k" in sent) is (provider == "vertex_ai")  # Gemini has a topK; OpenAI refuses one
        assert "thinking" not in sent


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1023}, "minimal"),
        ({"type": "enabled", "budget_tokens": 2048}, "medium"),
        ({"type": "enabled", "budget_tokens": 4096}, "high"),
        ({"type": "adaptive"}, "medium"),
        ({"type": "disabled"}, None),
    ],
)
def test_thinking_is_litellms_reasoning_effort_elsewhere(thinking, effort):
    front, chat = translated(messages=[{"role": "user", "content": "Hi"}], thinking=thinking)
    assert front.for_deployment(chat, deployment("openai", "o4-mini")).get("reasoning_effort") == effort


def test_a_plain_call_is_sent_as_it_is_to_any_provider():
    front, chat = translated(messages=[{"role": "user", "content": "Hi"}])
    assert front.for_deployment(chat, deployment("openai", "gpt-4o")) is chat


@pytest.mark.parametrize(("provider", "model"), [("gemini", "gemini-2.5-pro"), ("groq", "llama-3.3-70b")])
def test_a_document_for_a_provider_without_documents_is_a_400_naming_it(provider, model):
    front, chat = translated(messages=CONVERSATION["messages"][:1])
    with pytest.raises(ProviderError) as refused:
        front.for_deployment(chat, deployment(provider, model))
    assert (refused.value.status, refused.value.retryable) == (400, False)
    assert f"is served by {provider}, which does not take documents" in refused.value.message


def test_converse_takes_the_cache_points_thinking_and_documents_of_a_messages_call():
    front, chat = translated(**CONVERSATION)
    body = orjson.loads(converse_body(front.for_deployment(chat, deployment("bedrock", "anthropic.claude-3"))))

    assert body["system"] == [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}]
    document = body["messages"][0]["content"][0]["document"]
    assert document == {"format": "pdf", "source": {"bytes": PDF["data"]}, "name": "Q3 report"}
    assert body["messages"][1]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "Hm.", "signature": "sig-1"}}},
        {"reasoningContent": {"redactedContent": "opaque"}},
        {"toolUse": {"toolUseId": "toolu_1", "name": "weather", "input": {}}},
    ]
    assert body["messages"][2]["content"][1:] == [{"cachePoint": {"type": "default"}}]
    assert body["toolConfig"]["tools"][1:] == [{"cachePoint": {"type": "default"}}]
    assert body["additionalModelRequestFields"] == {"top_k": 5, "thinking": THINKING}


def test_a_text_document_is_a_converse_txt_document_for_any_bedrock_model():
    source = {"type": "text", "media_type": "text/plain", "data": "The report."}
    front, chat = translated(messages=[{"role": "user", "content": [{"type": "document", "source": source}]}])
    body = orjson.loads(converse_body(front.for_deployment(chat, deployment("bedrock", "meta.llama3-70b"))))
    assert body["messages"][0]["content"][0]["document"] == {
        "format": "txt",
        "source": {"bytes": "VGhlIHJlcG9ydC4="},
        "name": "document 1",
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"thinking": "on"}, "thinking"),
        (
            {"messages": [{"role": "user", "content": [{"type": "thinking", "thinking": "x"}]}]},
            "messages[0].content[0]",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "url"}}]}]},
            "messages[0].content[0]",
        ),
    ],
)
def test_what_cannot_be_carried_is_refused_naming_the_field(body, param):
    with pytest.raises(BadRequest) as refused:
        translated(**{"messages": [{"role": "user", "content": "Hi"}], **body})
    assert refused.value.param == param


def test_an_answers_thinking_becomes_thinking_blocks_first():
    signed = {"type": "thinking", "thinking": "Hm.", "signature": "sig-1"}
    answer = {
        "choices": [
            {
                "message": {"content": "Hi", "reasoning_content": "Hm.", "thinking_blocks": [signed]},
                "finish_reason": "stop",
            }
        ],
        "usage": {},
    }
    assert AnthropicMessagesFront().answer(answer, call())["content"] == [signed, {"type": "text", "text": "Hi"}]
    del answer["choices"][0]["message"]["thinking_blocks"]  # another upstream's reasoning: no signature to give
    assert AnthropicMessagesFront().answer(answer, call())["content"][0] == {**signed, "signature": ""}


def test_streamed_thinking_is_a_thinking_block_closed_by_its_signature_then_text():
    stream = AnthropicMessagesFront().stream(call())
    out = b"".join(
        [
            stream.chunk(
                chunk({"reasoning_content": "Hm", "thinking_blocks": [{"type": "thinking", "thinking": "Hm"}]})
            ),
            stream.chunk(chunk({"thinking_blocks": [{"type": "thinking", "signature": "sig-1"}]})),
            stream.chunk(chunk({"thinking_blocks": [{"type": "redacted_thinking", "data": "opaque"}]})),
            stream.chunk(chunk({"content": "Hi"})),
            stream.chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_sequence": "END"}]}),
            stream.end(Usage(prompt_tokens=3, completion_tokens=2), None),
        ]
    )
    blocks = [(data["type"], data.get("content_block") or data.get("delta")) for _, data in events(out)[2:-2]]
    assert blocks == [
        ("content_block_start", {"type": "thinking", "thinking": "", "signature": ""}),
        ("content_block_delta", {"type": "thinking_delta", "thinking": "Hm"}),
        ("content_block_delta", {"type": "signature_delta", "signature": "sig-1"}),
        ("content_block_stop", None),
        ("content_block_start", {"type": "redacted_thinking", "data": "opaque"}),
        ("content_block_stop", None),
        ("content_block_start", {"type": "text", "text": ""}),
        ("content_block_delta", {"type": "text_delta", "text": "Hi"}),
        ("content_block_stop", None),
    ]
    assert events(out)[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_upstream_streams_give_thinking_signatures_and_redacted_thinking():
    anthropic = AnthropicStream(Target("anthropic", "claude"))
    frames = [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking", "data": "opaque"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "signature_delta", "signature": "sig-1"}},
    ]
    chunks = anthropic.feed(b"".join(b"data: " + orjson.dumps(frame) + b"\n\n" for frame in frames))
    assert [c["choices"][0]["delta"]["thinking_blocks"] for c in chunks] == [
        [{"type": "redacted_thinking", "data": "opaque"}],
        [{"type": "thinking", "signature": "sig-1"}],
    ]
    bedrock = BedrockStream(Target("bedrock", "anthropic.claude"))
    delta = bedrock._delta(0, {"reasoningContent": {"signature": "sig-2"}})
    assert delta[0]["choices"][0]["delta"] == {"thinking_blocks": [{"type": "thinking", "signature": "sig-2"}]}


def test_claude_on_bedrock_is_asked_which_stop_sequence_ended_the_answer():
    payload = {"model": "anthropic.claude-3", "messages": [{"role": "user", "content": "Hi"}], "stop": ["END"]}
    assert orjson.loads(converse_body(payload))["additionalModelResponseFieldPaths"] == ["/stop_sequence"]
    llama = orjson.loads(converse_body({**payload, "model": "meta.llama3-70b"}))
    assert "additionalModelResponseFieldPaths" not in llama  # a field of Claude's answers only

    answer = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
        "stopReason": "stop_sequence",
        "additionalModelResponseFields": {"stop_sequence": "END"},
        "usage": {"inputTokens": 3, "outputTokens": 1},
    }
    target = Target("bedrock", "anthropic.claude-3")
    parsed = get_provider("bedrock").parse_response(target, "chat", payload, 200, orjson.dumps(answer), {})
    message = AnthropicMessagesFront().answer(parsed, call())
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")

    stop = {"stopReason": "stop_sequence", "additionalModelResponseFields": {"stop_sequence": "END"}}
    (chunk,) = BedrockStream(target)._event("messageStop", stop)
    assert chunk["choices"][0]["stop_sequence"] == "END"
