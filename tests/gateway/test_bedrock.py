"""Bedrock: what we send Converse and invoke, what we make of their answers, event streams and errors, and the
round trip against the fake Bedrock, which checks each call's SigV4 signature as AWS does. No Django needed."""

import base64

import orjson
import pytest

from gateway.providers import get_provider
from gateway.providers.base import ProviderError, Target
from tests.fakes.aws import event
from tests.fakes.upstream import Behaviour, FakeUpstream
from tests.gateway.test_providers import call, client, text_of  # noqa: F401 -- client is a fixture

AWS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret", "aws_region_name": "eu-west-1"}
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
BEDROCK = get_provider("bedrock")


def bedrock(model: str = CLAUDE, **kwargs) -> Target:
    return Target(provider="bedrock", model=model, **{"extra": AWS, **kwargs})


def fake(up: FakeUpstream, model: str = CLAUDE, **extra) -> Target:
    return bedrock(model, api_base=up.url, extra={**AWS, **extra})


# --- requests -------------------------------------------------------------------------------------------------

CONVERSATION = {
    "model": "claude",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Cite.", "cache_control": {"type": "ephemeral"}}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"at": "x"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "a pixel"},
        {"role": "user", "content": "And?"},
    ],
    "max_tokens": 100,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop": "END",
    "tools": [
        {"type": "function", "function": {"name": "look", "description": "Look", "parameters": {"type": "object"}}}
    ],
    "tool_choice": "required",
}


def test_a_chat_becomes_a_converse_request():
    request = BEDROCK.build_request(bedrock("converse/" + CLAUDE), "chat", CONVERSATION, False)

    assert request.url == (
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse"
    )
    assert orjson.loads(request.content) == {
        "system": [{"text": "Be brief."}, {"text": "Cite."}, {"cachePoint": {"type": "default"}}],
        "messages": [
            {
                "role": "user",
                "content": [{"text": "What is this?"}, {"image": {"format": "png", "source": {"bytes": PIXEL}}}],
            },
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "call_1", "name": "look", "input": {"at": "x"}}}],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "call_1", "content": [{"text": "a pixel"}]}},
                    {"text": "And?"},
                ],
            },
        ],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
        "toolConfig": {
            "tools": [
                {"toolSpec": {"name": "look", "inputSchema": {"json": {"type": "object"}}, "description": "Look"}}
            ],
            "toolChoice": {"any": {}},
        },
    }
    assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") and request.headers[
        "Authorization"
    ].split("/")[2:4] == ["eu-west-1", "bedrock"]


def test_streams_go_to_converse_stream_and_a_bedrock_api_key_is_a_bearer_token():
    request = BEDROCK.build_request(bedrock(api_key="bedrock-api-key", extra={}), "chat", CONVERSATION, True)

    assert request.url.endswith("/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse-stream")
    assert request.headers["Authorization"] == "Bearer bedrock-api-key"
    assert "X-Amz-Date" not in request.headers


def test_an_inference_profile_arn_keeps_its_slash_encoded():
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"

    request = BEDROCK.build_request(bedrock("converse/" + arn), "chat", CONVERSATION, False)

    assert request.url.endswith(
        "/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile%2Fa1b2c3/converse"
    )


def test_the_region_and_keys_come_from_the_aws_environment(monkeypatch):
    monkeypatch.setenv("AWS_REGION_NAME", "ap-south-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")

    request = BEDROCK.build_request(bedrock(extra={}), "chat", {"messages": [{"role": "user", "content": "Hi"}]}, False)

    assert request.url.startswith("https://bedrock-runtime.ap-south-1.amazonaws.com/")
    assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDENV/")
    assert request.headers["X-Amz-Security-Token"] == "env-token"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"tool_choice": "none"}, "bedrock: Converse has no tool_choice 'none'"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}
                ]
            },
            "bedrock: images must be base64 data: URLs",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "bedrock: unsupported content part"),
    ],
    ids=["tool_choice none", "image by URL", "audio"],
)
def test_what_converse_cannot_take_is_a_400(payload, message):
    with pytest.raises(ProviderError) as error:
        BEDROCK.build_request(bedrock(), "chat", {**CONVERSATION, **payload}, False)

    assert (error.value.status, error.value.retryable) == (400, False)
    assert error.value.message.startswith(message)


# --- answers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
    ],
)
def test_a_converse_answer_becomes_a_chat_completion(stop_reason, finish_reason):
    answer = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "Hmm.", "signature": "sig"}}},
                    {"text": "It is "},
                    {"text": "a pixel."},
                    {"toolUse": {"toolUseId": "tu_1", "name": "look", "input": {"at": "y"}}},
                ],
            }
        },
        "stopReason": stop_reason,
        "usage": {
            "inputTokens": 11,
            "outputTokens": 9,
            "totalTokens": 50,
            "cacheReadInputTokens": 20,
            "cacheWriteInputTokens": 10,
        },
    }

    response = BEDROCK.parse_response(bedrock(), "chat", CONVERSATION, 200, orjson.dumps(answer), {})

    [choice] = response["choices"]
    assert choice["finish_reason"] == finish_reason
    assert choice["message"] == {
        "role": "assistant",
        "content": "It is a pixel.",
        "reasoning_content": "Hmm.",
        "thinking_blocks": [{"type": "thinking", "thinking": "Hmm.", "signature": "sig"}],
        "tool_calls": [{"id": "tu_1", "type": "function", "function": {"name": "look", "arguments": '{"at":"y"}'}}],
    }
    assert response["usage"] == {
        "prompt_tokens": 41,
        "completion_tokens": 9,
        "total_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 20},
        "cache_creation_input_tokens": 10,
    }


@pytest.mark.parametrize(
    ("status", "error_type", "retryable"),
    [
        (429, "ThrottlingException", True),
        (400, "ThrottlingException", True),  # some AWS operations throttle with a 400
        (400, "ValidationException", False),
        (403, "AccessDeniedException", False),
        (503, "ServiceUnavailableException", True),
    ],
)
def test_bedrock_errors_keep_their_message_and_retryability(status, error_type, retryable):
    headers = {"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"}

    with pytest.raises(ProviderError) as error:
        BEDROCK.parse_response(bedrock(), "chat", CONVERSATION, status, b'{"message": "Too many tokens"}', headers)

    assert (error.value.status, error.value.message, error.value.retryable) == (status, "Too many tokens", retryable)


@pytest.mark.parametrize(
    ("kind", "status", "retryable"),
    [
        ("throttlingException", 429, True),
        ("modelStreamErrorException", 424, False),
        ("validationException", 400, False),
        ("internalServerException", 500, True),
    ],
)
def test_an_exception_inside_the_stream_ends_it_with_its_status(kind, status, retryable):
    parser = BEDROCK.stream_parser(bedrock(), "chat", CONVERSATION)
    chunks = parser.feed(event(b'{"role":"assistant"}', "messageStart"))

    with pytest.raises(ProviderError) as error:
        parser.feed(event(b'{"message":"Model is busy"}', kind, message_type="exception"))

    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert (error.value.status, error.value.message, error.value.retryable) == (
        status,
        "bedrock: Model is busy",
        retryable,
    )


# --- round trips against the fake Bedrock ---------------------------------------------------------------------

HI = {"model": "claude", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_round_trip(client, stream):  # noqa: F811 -- the fixture
    up = FakeUpstream(
        reply="Hello there!", prompt_tokens=30, completion_tokens=7, cached_tokens=10, cache_creation_tokens=5
    )
    with up:
        response, parser = await call(client, fake(up, "us." + CLAUDE), "chat", HI, stream)

    [seen] = up.requests
    assert seen.path == f"/model/us.{CLAUDE}/converse" + ("-stream" if stream else "")
    assert seen.json["system"] == [{"text": "Be brief."}]
    if stream:
        assert parser.done
        usage, text = parser.usage, text_of(response)
        assert response[-2]["choices"][0]["finish_reason"] == "stop"
    else:
        usage, text = response["usage"], response["choices"][0]["message"]["content"]
    assert text == "Hello there!"
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (30, 7)
    assert (usage["prompt_tokens_details"]["cached_tokens"], usage["cache_creation_input_tokens"]) == (10, 5)


async def test_a_streamed_tool_call_arrives_whole(client):  # noqa: F811
    with FakeUpstream(tool_call={"name": "look", "arguments": {"at": "the sky", "n": 2}}) as up:
        chunks, parser = await call(client, fake(up), "chat", HI, True)

    calls = [call for chunk in chunks for choice in chunk["choices"] for call in choice["delta"].get("tool_calls", ())]
    assert (calls[0]["id"], calls[0]["function"]["name"]) == ("tooluse_fake", "look")
    assert orjson.loads("".join(call["function"]["arguments"] for call in calls)) == {"at": "the sky", "n": 2}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


async def test_a_stream_cut_before_its_metadata_is_not_done(client):  # noqa: F811
    with FakeUpstream() as up:
        up.script(Behaviour(stream_end="missing"))
        chunks, parser = await call(client, fake(up), "chat", HI, True)

    assert text_of(chunks) == "Hello from the fake upstream!"
    assert (parser.done, parser.usage) == (False, None)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_the_fake_refuses_a_signature_that_does_not_match(client, stream):  # noqa: F811
    with FakeUpstream() as up:
        with pytest.raises(ProviderError) as error:
            await call(client, fake(up, aws_secret_access_key="not-the-secret"), "chat", HI, stream)

    assert (error.value.status, error.value.retryable) == (403, False)
    assert error.value.message == "The request signature we calculated does not match."


async def test_throttling_is_a_retryable_429(client):  # noqa: F811
    with FakeUpstream() as up:
        up.fail(429, retry_after="3")
        with pytest.raises(ProviderError) as error:
            await call(client, fake(up), "chat", HI, False)

    assert (error.value.status, error.value.retryable, error.value.retry_after) == (429, True, 3.0)


@pytest.mark.parametrize(
    ("model", "payload", "sent", "prompt_tokens"),
    [
        ("amazon.titan-embed-text-v2:0", {"input": "Hi", "dimensions": 256}, {"inputText": "Hi", "dimensions": 256}, 4),
        (
            "cohere.embed-english-v3",
            {"input": ["Hello", "world!!"]},
            {"texts": ["Hello", "world!!"], "input_type": "search_document"},
            4,  # Cohere counts nothing: estimated, 2 + 2
        ),
    ],
)
async def test_embeddings_go_through_invoke(client, model, payload, sent, prompt_tokens):  # noqa: F811
    with FakeUpstream(prompt_tokens=4, embedding_dimensions=3) as up:
        response, _ = await call(client, fake(up, model), "embedding", {"model": "e", **payload}, False)

    [seen] = up.requests
    assert (seen.path, seen.json) == (f"/model/{model}/invoke", sent)
    assert len(response["data"]) == len(sent.get("texts", [1])) and len(response["data"][0]["embedding"]) == 3
    assert response["usage"]["prompt_tokens"] == prompt_tokens


def test_titan_takes_one_input_a_request():
    with pytest.raises(ProviderError) as error:
        BEDROCK.build_request(bedrock("amazon.titan-embed-text-v2:0"), "embedding", {"input": ["a", "b"]}, False)

    assert (error.value.status, error.value.message) == (
        400,
        "bedrock: amazon.titan-embed-text-v2:0 embeds one input per request, not 2",
    )


# --- response_format: a tool the model must call, as LiteLLM sends it ---------------------------------------

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
STRUCTURED = {
    **HI,
    "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA}},
}


@pytest.mark.parametrize(
    ("response_format", "tool"),
    [
        (STRUCTURED["response_format"], {"name": "weather", "inputSchema": {"json": WEATHER_SCHEMA}}),
        (
            {"type": "json_object"},
            {
                "name": "json_tool_call",
                "inputSchema": {"json": {"type": "object", "additionalProperties": True, "properties": {}}},
            },
        ),
    ],
    ids=["json_schema", "json_object"],
)
def test_a_response_format_becomes_a_tool_the_model_must_call(response_format, tool):
    request = BEDROCK.build_request(bedrock(), "chat", {**HI, "response_format": response_format}, False)

    assert orjson.loads(request.content)["toolConfig"] == {
        "tools": [{"toolSpec": tool}],
        "toolChoice": {"tool": {"name": tool["name"]}},
    }


def test_a_text_response_format_changes_nothing():
    request = BEDROCK.build_request(bedrock(), "chat", {**HI, "response_format": {"type": "text"}}, False)

    assert "toolConfig" not in orjson.loads(request.content)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_the_forced_tools_input_comes_back_as_the_json_content(client, stream):  # noqa: F811
    with FakeUpstream(reply="", tool_call={"name": "weather", "arguments": {"city": "Paris"}}) as up:
        response, parser = await call(client, fake(up), "chat", STRUCTURED, stream)

    if stream:
        assert not [c for c in response if c["choices"] and c["choices"][0]["delta"].get("tool_calls")]
        content, finish = text_of(response), [c["choices"][0]["finish_reason"] for c in response if c["choices"]][-1]
    else:
        [choice] = response["choices"]
        assert "tool_calls" not in choice["message"]
        content, finish = choice["message"]["content"], choice["finish_reason"]
    assert (orjson.loads(content), finish) == ({"city": "Paris"}, "stop")
