"""Providers: what we send each upstream, what we make of its answers, errors and streams, and the round trip
against fake upstreams speaking the real wire formats. No Django needed."""

import base64
import math
import struct
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from httpx_aiohttp import AiohttpTransport

from gateway.providers import PROVIDERS, get_provider
from gateway.providers.aws import Credentials, sign_v4
from gateway.providers.base import ProviderError, Target, estimate_tokens
from tests.fakes.upstream import Behaviour, FakeUpstream, event_stream_message

AWS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret", "aws_region_name": "eu-west-1"}
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def target(provider: str, model: str = "m", **kwargs) -> Target:
    return Target(provider=provider, model=model, **kwargs)


# --- registry -------------------------------------------------------------------------------------------------


def test_registry_knows_each_provider_by_its_litellm_prefix():
    assert set(PROVIDERS) >= {
        "openai",
        "azure",
        "anthropic",
        "ollama",
        "ollama_chat",
        "sagemaker",
        "mock",
        "huggingface",
        "openrouter",
        "hosted_vllm",
        "text-completion-openai",
    }
    assert all(get_provider(name).name == name for name in PROVIDERS)
    assert [name for name, provider in PROVIDERS.items() if provider.local] == ["mock"]
    with pytest.raises(KeyError):
        get_provider("no-such-provider")


# --- requests -------------------------------------------------------------------------------------------------

REQUESTS = [
    pytest.param(
        target("openai", "gpt-4o", api_key="sk-1"),
        "chat",
        {"model": "gpt-4o", "messages": HELLO, "logit_bias": {"50256": -100}, "stream": True},
        False,
        "https://api.openai.com/v1/chat/completions",
        {"Authorization": "Bearer sk-1"},
        {"model": "gpt-4o", "messages": HELLO, "logit_bias": {"50256": -100}},
        id="openai passes unknown parameters through",
    ),
    pytest.param(
        target("openai", "gpt-4o", api_key="sk-1", extra={"organization": "org-9"}),
        "chat",
        {"model": "gpt-4o", "messages": HELLO, "stream_options": {"continuous_usage_stats": False}},
        True,
        "https://api.openai.com/v1/chat/completions",
        {"OpenAI-Organization": "org-9"},
        {
            "model": "gpt-4o",
            "messages": HELLO,
            "stream": True,
            "stream_options": {"continuous_usage_stats": False, "include_usage": True},
        },
        id="openai stream asks for usage",
    ),
    pytest.param(
        target("hosted_vllm", "llama", api_base="http://vllm:8000/v1/"),
        "embedding",
        {"model": "llama", "input": ["a"]},
        False,
        "http://vllm:8000/v1/embeddings",
        {},
        {"model": "llama", "input": ["a"]},
        id="vllm without key",
    ),
    pytest.param(
        target("openrouter", "anthropic/claude-3.5-sonnet", api_key="or"),
        "completion",
        {"model": "anthropic/claude-3.5-sonnet", "prompt": "Once"},
        True,
        "https://openrouter.ai/api/v1/completions",
        {"Authorization": "Bearer or"},
        {
            "model": "anthropic/claude-3.5-sonnet",
            "prompt": "Once",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        id="openrouter",
    ),
    pytest.param(
        target("text-completion-openai", "gpt-3.5-turbo-instruct", api_key="sk"),
        "chat",
        {"model": "gpt-3.5-turbo-instruct", "messages": HELLO, "max_tokens": 5},
        False,
        "https://api.openai.com/v1/completions",
        {},
        {"model": "gpt-3.5-turbo-instruct", "max_tokens": 5, "prompt": "System: Be brief.\n\nUser: Hi\n\nAssistant:"},
        id="chat to an instruct model",
    ),
    pytest.param(
        target("azure", "my-gpt4o", api_base="https://res.openai.azure.com/", api_key="az"),
        "chat",
        {"model": "my-gpt4o", "messages": HELLO},
        False,
        "https://res.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21",
        {"api-key": "az"},
        {"model": "my-gpt4o", "messages": HELLO},
        id="azure default api-version",
    ),
    pytest.param(
        target(
            "azure",
            "emb",
            api_base="https://res.openai.azure.com",
            api_version="2025-01-01-preview",
            extra={"azure_ad_token": "aad"},
        ),
        "embedding",
        {"model": "emb", "input": "x"},
        False,
        "https://res.openai.azure.com/openai/deployments/emb/embeddings?api-version=2025-01-01-preview",
        {"Authorization": "Bearer aad"},
        {"model": "emb", "input": "x"},
        id="azure embeddings with an Entra token",
    ),
    pytest.param(
        target("anthropic", "claude-sonnet-4-5", api_key="ak"),
        "chat",
        {"model": "claude-sonnet-4-5", "messages": HELLO, "presence_penalty": 1, "metadata": {"k": "v"}, "stop": "END"},
        True,
        "https://api.anthropic.com/v1/messages",
        {"x-api-key": "ak", "anthropic-version": "2023-06-01"},
        {
            "model": "claude-sonnet-4-5",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "max_tokens": 4096,
            "system": "Be brief.",
            "stop_sequences": ["END"],
            "stream": True,
        },
        id="anthropic defaults max_tokens and drops what it does not know",
    ),
    pytest.param(
        target("ollama", "llama3"),
        "chat",
        {
            "model": "llama3",
            "messages": HELLO,
            "temperature": 0.1,
            "max_tokens": 50,
            "stop": "\n\n",
            "seed": 7,
            "response_format": {"type": "json_object"},
        },
        False,
        "http://localhost:11434/api/generate",
        {},
        {
            "model": "llama3",
            "prompt": "Hi",
            "system": "Be brief.",
            "stream": False,
            "format": "json",
            "options": {"temperature": 0.1, "seed": 7, "num_predict": 50, "stop": ["\n\n"]},
        },
        id="ollama generate, not streaming said out loud",
    ),
    pytest.param(
        target("ollama_chat", "llama3", api_base="http://gpu:11434"),
        "chat",
        {"model": "llama3", "messages": HELLO, "max_completion_tokens": 9},
        True,
        "http://gpu:11434/api/chat",
        {},
        {
            "model": "llama3",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "stream": True,
            "options": {"num_predict": 9},
        },
        id="ollama chat",
    ),
    pytest.param(
        target("ollama", "nomic-embed-text"),
        "embedding",
        {"model": "nomic-embed-text", "input": ["a", "b"], "encoding_format": "float"},
        False,
        "http://localhost:11434/api/embed",
        {},
        {"model": "nomic-embed-text", "input": ["a", "b"]},
        id="ollama embed",
    ),
    pytest.param(
        target("sagemaker", "my-endpoint", extra=AWS),
        "chat",
        {
            "model": "my-endpoint",
            "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 0,
            "top_p": 1,
            "max_tokens": 20,
            "stop": "###",
        },
        False,
        "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/my-endpoint/invocations",
        {"Content-Type": "application/json", "Host": "runtime.sagemaker.eu-west-1.amazonaws.com"},
        {"inputs": "Hi", "parameters": {"temperature": 0.01, "max_new_tokens": 20, "stop": ["###"]}},
        id="sagemaker TGI shape",
    ),
    pytest.param(
        target("sagemaker", "my-endpoint", api_base="http://127.0.0.1:9", extra=AWS),
        "completion",
        {"model": "my-endpoint", "prompt": "Once upon"},
        True,
        "http://127.0.0.1:9/endpoints/my-endpoint/invocations-response-stream",
        {"Host": "127.0.0.1:9"},
        {"inputs": "Once upon", "parameters": {}, "stream": True},
        id="sagemaker stream",
    ),
]


@pytest.mark.parametrize(("target_", "call_type", "payload", "stream", "url", "headers", "body"), REQUESTS)
def test_build_request(target_, call_type, payload, stream, url, headers, body):
    request = get_provider(target_.provider).build_request(target_, call_type, payload, stream)

    assert (request.method, request.url) == ("POST", url)
    assert headers.items() <= request.headers.items()
    assert orjson.loads(request.content) == body


def test_anthropic_translates_a_tool_conversation():
    payload = {
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
            {"role": "user", "content": "Thanks"},
        ],
        "max_completion_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-42",
        "tools": [
            {
                "type": "function",
                "function": {"name": "weather", "description": "By city", "parameters": {"type": "object"}},
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }

    request = get_provider("anthropic").build_request(target("anthropic"), "chat", payload, stream=False)

    assert orjson.loads(request.content) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": "You are terse.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18°C"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "metadata": {"user_id": "u-42"},
        "tools": [{"name": "weather", "description": "By city", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }


@pytest.mark.parametrize(
    ("target_", "message"),
    [
        (target("azure"), "azure: api_base is required"),
        (target("hosted_vllm"), "hosted_vllm: api_base is required"),
        (target("sagemaker", extra={"aws_region_name": "us-east-1"}), "sagemaker: aws_access_key_id and"),
    ],
)
def test_a_deployment_missing_its_configuration_cannot_be_called(monkeypatch, target_, message):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)

    with pytest.raises(ProviderError) as error:
        get_provider(target_.provider).build_request(target_, "chat", {"model": "m", "messages": HELLO}, False)

    assert error.value.message.startswith(message)
    assert (error.value.status, error.value.retryable) == (500, False)


# --- responses ------------------------------------------------------------------------------------------------

OPENAI_USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 192,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def openai_usage(prompt: int, completion: int, **details) -> dict:
    """OpenAI's usage object: the two counts, their total, and any details."""
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion, **details}


ANTHROPIC_USAGE = {
    "input_tokens": 20,
    "cache_creation_input_tokens": 1000,
    "cache_read_input_tokens": 3000,
    "output_tokens": 50,
}
# ANTHROPIC_USAGE as the gateway reports it.
ANTHROPIC_AS_OPENAI = openai_usage(
    4020, 50, prompt_tokens_details={"cached_tokens": 3000}, cache_creation_input_tokens=1000
)


def openai_chat(usage: dict, finish: str = "stop") -> dict:
    message = {"role": "assistant", "content": "Hi there"}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [choice],
        "usage": usage,
    }


def anthropic_message(content: list, stop_reason: str) -> dict:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": ANTHROPIC_USAGE,
    }


RESPONSES = [
    pytest.param("openai", "chat", openai_chat(OPENAI_USAGE), "Hi there", "stop", OPENAI_USAGE, id="openai"),
    pytest.param(
        "hosted_vllm",
        "chat",
        openai_chat(openai_usage(9, 3, prompt_tokens_details=None)),
        "Hi there",
        "stop",
        openai_usage(9, 3),
        id="vllm usage with nulls",
    ),
    pytest.param(
        "openai",
        "chat",
        openai_chat(openai_usage(9, 3, prompt_cache_hit_tokens=8)),
        "Hi there",
        "stop",
        openai_usage(9, 3, prompt_tokens_details={"cached_tokens": 8}),
        id="deepseek cache hits",
    ),
    pytest.param(
        "text-completion-openai",
        "chat",
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "text": "Hi there", "logprobs": None, "finish_reason": "length"}],
            "usage": openai_usage(5, 2),
        },
        "Hi there",
        "length",
        openai_usage(5, 2),
        id="instruct model answers a chat",
    ),
    *[
        pytest.param(
            "anthropic",
            "chat",
            anthropic_message([{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}], stop_reason),
            "Hi there",
            finish,
            ANTHROPIC_AS_OPENAI,
            id=f"anthropic {stop_reason}",
        )
        for stop_reason, finish in [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length")]
    ],
    pytest.param(
        "ollama_chat",
        "chat",
        {
            "model": "llama3",
            "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": "Hi there"},
            "done": True,
            "done_reason": "length",
            "prompt_eval_count": 26,
            "eval_count": 298,
        },
        "Hi there",
        "length",
        openai_usage(26, 298),
        id="ollama chat",
    ),
    pytest.param(
        "ollama",
        "completion",
        {"model": "llama3", "response": "Hi there", "done": True, "done_reason": "stop", "eval_count": 3},
        "Hi there",
        "stop",
        openai_usage(1, 3),
        id="ollama generate with a cached prompt estimates it",
    ),
    pytest.param(
        "sagemaker",
        "chat",
        [{"generated_text": "System: Be brief.\n\nUser: Hi\n\nAssistant: Hi there"}],
        " Hi there",
        "stop",
        openai_usage(10, 3),
        id="sagemaker echoing the prompt, usage estimated",
    ),
    pytest.param(
        "sagemaker",
        "completion",
        {"generated_text": "Hi there", "details": {"finish_reason": "length", "generated_tokens": 4}},
        "Hi there",
        "length",
        openai_usage(1, 4),
        id="sagemaker with TGI details",
    ),
]


@pytest.mark.parametrize(("provider", "call_type", "upstream_body", "text", "finish", "usage"), RESPONSES)
def test_parse_response(provider, call_type, upstream_body, text, finish, usage):
    payload = {"model": "m", "messages": HELLO} if call_type == "chat" else {"model": "m", "prompt": "Once"}

    response = get_provider(provider).parse_response(
        target(provider), call_type, payload, 200, orjson.dumps(upstream_body), {}
    )

    [choice] = response["choices"]
    assert (choice["message"]["content"] if call_type == "chat" else choice["text"]) == text
    assert choice["finish_reason"] == finish
    assert response["usage"] == usage
    assert response["object"] == ("chat.completion" if call_type == "chat" else "text_completion")


def test_anthropic_tool_use_becomes_tool_calls():
    content = [{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}]
    body = orjson.dumps(anthropic_message(content, "tool_use"))

    response = get_provider("anthropic").parse_response(target("anthropic"), "chat", {}, 200, body, {})

    assert response["choices"][0]["finish_reason"] == "tool_calls"
    assert response["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
        ],
    }


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_ollama_embeddings_in_openai_shape(encoding_format):
    body = orjson.dumps({"model": "nomic", "embeddings": [[0.5, -0.25], [1.0, 0.0]], "prompt_eval_count": 4})
    payload = {"model": "nomic", "input": ["a", "b"], "encoding_format": encoding_format}

    response = get_provider("ollama").parse_response(target("ollama"), "embedding", payload, 200, body, {})

    vectors = [item["embedding"] for item in response["data"]]
    if encoding_format == "base64":
        vectors = [list(struct.unpack("<2f", base64.b64decode(v))) for v in vectors]
    assert vectors == [[0.5, -0.25], [1.0, 0.0]]
    assert response["usage"] == openai_usage(4, 0)


ERRORS = [
    pytest.param(
        "openai",
        429,
        {"error": {"message": "Rate limit reached", "type": "requests"}},
        {"retry-after": "7"},
        True,
        7.0,
        id="openai 429",
    ),
    pytest.param(
        "openai",
        400,
        {"error": {"message": "Unknown parameter: 'foo'.", "code": "unknown_parameter"}},
        {},
        False,
        None,
        id="openai 400",
    ),
    pytest.param(
        "azure",
        408,
        {"error": {"code": "Timeout", "message": "The operation was timeout."}},
        {"Retry-After-Ms": "1500"},
        True,
        1.5,
        id="azure 408",
    ),
    pytest.param("openrouter", 409, {"error": {"message": "conflict"}}, {}, True, None, id="409"),
    pytest.param(
        "anthropic",
        529,
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        {},
        True,
        None,
        id="anthropic overloaded",
    ),
    pytest.param(
        "anthropic",
        401,
        {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
        {},
        False,
        None,
        id="anthropic 401",
    ),
    pytest.param(
        "ollama", 404, {"error": 'model "llama9" not found, try pulling it first'}, {}, False, None, id="ollama 404"
    ),
    pytest.param(
        "sagemaker",
        400,
        {"message": "Rate exceeded"},
        {"x-amzn-ErrorType": "ThrottlingException:"},
        True,
        None,
        id="sagemaker throttled with a 400",
    ),
    pytest.param(
        "sagemaker",
        424,
        {
            "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
            "OriginalStatusCode": 422,
            "OriginalMessage": "Input validation error",
        },
        {},
        False,
        None,
        id="sagemaker model error",
    ),
]


@pytest.mark.parametrize(("provider", "status", "body", "headers", "retryable", "retry_after"), ERRORS)
def test_errors_keep_the_upstreams_message(provider, status, body, headers, retryable, retry_after):
    with pytest.raises(ProviderError) as error:
        get_provider(provider).parse_response(target(provider), "chat", {}, status, orjson.dumps(body), headers)

    expected = {
        "Overloaded",
        "Rate limit reached",
        "Unknown parameter: 'foo'.",
        "The operation was timeout.",
        "conflict",
        "invalid x-api-key",
        'model "llama9" not found, try pulling it first',
        "Rate exceeded",
        "Input validation error",
    }
    assert error.value.message in expected
    assert (error.value.status, error.value.retryable, error.value.retry_after) == (status, retryable, retry_after)


def test_error_without_json_keeps_the_body_and_reads_an_http_date():
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}

    with pytest.raises(ProviderError) as error:
        get_provider("openai").parse_response(target("openai"), "chat", {}, 502, b"<html>Bad Gateway</html>", headers)

    assert (error.value.message, error.value.retryable, error.value.retry_after) == (
        "<html>Bad Gateway</html>",
        True,
        0,
    )


@pytest.mark.parametrize(
    "body",
    [b'{"id": "chatcmpl-1", "choices": [', b'{"object": "list"}', b'{"error": {"message": "upstream hiccup"}}'],
    ids=["malformed JSON", "no choices", "error under a 200"],
)
def test_a_2xx_that_is_no_answer_is_a_retryable_error(body):
    with pytest.raises(ProviderError) as error:
        get_provider("openai").parse_response(target("openai"), "chat", {}, 200, body, {})

    assert (error.value.status, error.value.retryable) == (502, True)


# --- streams --------------------------------------------------------------------------------------------------


def sse(*events: dict | str, named: bool = False) -> bytes:
    def frame(event: dict | str) -> bytes:
        data = event if isinstance(event, str) else orjson.dumps(event).decode()
        name = f"event: {event['type']}\n" if named and isinstance(event, dict) else ""
        return f"{name}data: {data}\n\n".encode()

    return b"".join(frame(event) for event in events)


def openai_chunk(delta: dict, finish: str | None = None) -> dict:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [choice]}


OPENAI_STREAM = sse(
    openai_chunk({"role": "assistant", "content": ""}),
    openai_chunk({"content": "Grüß "}),
    openai_chunk({"content": "dich 👋"}),
    openai_chunk({}, "stop"),
    {**openai_chunk({}), "choices": [], "usage": OPENAI_USAGE},
    "[DONE]",
)
ANTHROPIC_STREAM = sse(
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude",
            "content": [],
            "stop_reason": None,
            "usage": {**ANTHROPIC_USAGE, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Grüß "}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "dich 👋"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
    },
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}},
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 50},
    },
    {"type": "message_stop"},
    named=True,
)
OLLAMA_CHAT_STREAM = b"".join(
    orjson.dumps(line) + b"\n"
    for line in [
        {"model": "llama3", "message": {"role": "assistant", "content": "Grüß "}, "done": False},
        {"model": "llama3", "message": {"role": "assistant", "content": "dich 👋"}, "done": False},
        {
            "model": "llama3",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 26,
            "eval_count": 5,
        },
    ]
)
OLLAMA_GENERATE_STREAM = b"".join(
    orjson.dumps(line) + b"\n"
    for line in [
        {"model": "llama3", "response": "Grüß ", "done": False},
        {"model": "llama3", "response": "dich 👋", "done": False},
        {
            "model": "llama3",
            "response": "",
            "done": True,
            "done_reason": "length",
            "prompt_eval_count": 3,
            "eval_count": 2,
        },
    ]
)
TGI_EVENTS = b"".join(
    b"data:" + orjson.dumps(event) + b"\n\n"
    for event in [
        {"token": {"id": 1, "text": "Grüß ", "special": False}, "generated_text": None, "details": None},
        {"token": {"id": 2, "text": "dich 👋", "special": False}, "generated_text": None, "details": None},
        {"token": {"id": 3, "text": "</s>", "special": True}, "generated_text": "Grüß dich 👋", "details": None},
    ]
)
SAGEMAKER_STREAM = b"".join(event_stream_message(TGI_EVENTS[i : i + 20]) for i in range(0, len(TGI_EVENTS), 20))

STREAMS = [
    pytest.param("openai", "chat", OPENAI_STREAM, "stop", OPENAI_USAGE, id="openai"),
    pytest.param("openai", "chat", OPENAI_STREAM.replace(b"\n", b"\r\n"), "stop", OPENAI_USAGE, id="openai CRLF"),
    pytest.param(
        "azure",
        "chat",
        sse({**openai_chunk({}), "choices": [], "prompt_filter_results": []}) + OPENAI_STREAM,
        "stop",
        OPENAI_USAGE,
        id="azure",
    ),
    pytest.param(
        "anthropic",
        "chat",
        ANTHROPIC_STREAM,
        "tool_calls",
        ANTHROPIC_AS_OPENAI,
        id="anthropic",
    ),
    pytest.param(
        "ollama_chat",
        "chat",
        OLLAMA_CHAT_STREAM,
        "stop",
        openai_usage(26, 5),
        id="ollama chat",
    ),
    pytest.param(
        "ollama",
        "completion",
        OLLAMA_GENERATE_STREAM,
        "length",
        openai_usage(3, 2),
        id="ollama generate",
    ),
    pytest.param(
        "sagemaker",
        "chat",
        SAGEMAKER_STREAM,
        "stop",
        openai_usage(10, 3),
        id="sagemaker",
    ),
]


def feed(parser, data: bytes, size: int) -> list[dict]:
    chunks = []
    for start in range(0, len(data), size):
        chunks += parser.feed(data[start : start + size])
    return chunks + parser.finish()


def text_of(chunks: list[dict]) -> str:
    choices = [chunk["choices"][0] for chunk in chunks if chunk["choices"]]
    return "".join(choice["delta"].get("content") or "" if "delta" in choice else choice["text"] for choice in choices)


def without_ids(chunks: list[dict]) -> list[dict]:
    return [{k: v for k, v in chunk.items() if k not in ("id", "created")} for chunk in chunks]


@pytest.mark.parametrize(("provider", "call_type", "data", "finish", "usage"), STREAMS)
def test_stream_parser(provider, call_type, data, finish, usage):
    payload = {"model": "m", "messages": HELLO} if call_type == "chat" else {"model": "m", "prompt": "Once"}
    parse = get_provider(provider).stream_parser

    results = {}
    for size in (1, 7, len(data)):  # byte by byte, awkward cuts, all at once
        parser = parse(target(provider), call_type, payload)
        chunks = feed(parser, data, size)
        results[size] = without_ids(chunks)
        assert len({chunk["id"] for chunk in chunks}) == 1
        assert (parser.done, parser.usage) == (True, usage)

    assert results[1] == results[7] == results[len(data)]
    assert text_of(chunks) == "Grüß dich 👋"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == finish
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage
    if call_type == "chat":
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"


def test_anthropic_stream_tool_calls_arrive_as_openai_deltas():
    chunks = feed(get_provider("anthropic").stream_parser(target("anthropic"), "chat", {}), ANTHROPIC_STREAM, 5)

    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    assert "".join(call["function"]["arguments"] for call in calls) == '{"city": "Paris"}'


ANTHROPIC_STREAM_START = b"".join(event + b"\n\n" for event in ANTHROPIC_STREAM.split(b"\n\n")[:4])
SAGEMAKER_EXCEPTION = {
    ":message-type": "exception",
    ":exception-type": "ModelStreamError",
    ":content-type": "application/json",
}


@pytest.mark.parametrize(
    ("provider", "data", "status", "message", "retryable"),
    [
        pytest.param(
            "anthropic",
            ANTHROPIC_STREAM_START
            + sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, named=True),
            529,
            "Overloaded",
            True,
            id="anthropic",
        ),
        pytest.param(
            "openai",
            sse(openai_chunk({"content": "a"}), {"error": {"message": "The server had an error"}}),
            502,
            "The server had an error",
            True,
            id="openai",
        ),
        pytest.param(
            "ollama",
            b'{"response": "a", "done": false}\n{"error": "model runner crashed"}\n',
            500,
            "model runner crashed",
            True,
            id="ollama",
        ),
        pytest.param("openai", b"data: {not json}\n\n", 502, "upstream sent malformed JSON", True, id="malformed"),
        pytest.param(
            "sagemaker",
            event_stream_message(b"data:{")[:-1] + b"\x00",
            502,
            "sagemaker: corrupt event-stream frame",
            True,
            id="sagemaker bad CRC",
        ),
        pytest.param(
            "sagemaker",
            event_stream_message(b'{"Message": "CUDA out of memory", "ErrorCode": "ModelError"}', SAGEMAKER_EXCEPTION),
            424,
            "sagemaker: CUDA out of memory",
            False,
            id="sagemaker model stream error",
        ),
    ],
)
def test_errors_inside_a_stream(provider, data, status, message, retryable):
    parser = get_provider(provider).stream_parser(target(provider), "chat", {"model": "m", "messages": HELLO})

    with pytest.raises(ProviderError) as error:
        feed(parser, data, 3)

    assert error.value.status == status
    assert error.value.message.startswith(message)
    assert error.value.retryable is retryable


def test_a_bad_frame_loses_none_of_the_chunks_before_it_in_the_same_read():
    parser = get_provider("openai").stream_parser(target("openai"), "chat", {"model": "m", "messages": HELLO})
    good = b'data: {"choices": [{"index": 0, "delta": {"content": "Hello"}}]}\n\n'

    chunks = parser.feed(good + b"data: {not json}\n\n")

    assert [chunk["choices"][0]["delta"]["content"] for chunk in chunks] == ["Hello"]
    with pytest.raises(ProviderError):
        parser.finish()  # the error comes once the chunks before it are out


@pytest.mark.parametrize(("provider", "call_type", "data", "finish", "usage"), STREAMS)
def test_a_stream_cut_before_its_end_is_not_done(provider, call_type, data, finish, usage):
    payload = {"model": "m", "messages": HELLO} if call_type == "chat" else {"model": "m", "prompt": "Once"}
    parser = get_provider(provider).stream_parser(target(provider), call_type, payload)

    feed(parser, data[: len(data) * 2 // 3], 64)

    assert parser.done is False


# --- mock -----------------------------------------------------------------------------------------------------


def test_mock_answers_deterministically_with_realistic_usage():
    mock, payload = get_provider("mock"), {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}

    first, second = (mock.local_response(target("mock"), "chat", payload, stream=False) for _ in range(2))

    assert first["choices"][0]["message"] == {"role": "assistant", "content": "This is a mock response from Tollgate."}
    assert first["usage"] == openai_usage(10, 10)
    assert without_ids([first]) == without_ids([second])


@pytest.mark.parametrize("call_type", ["chat", "completion"])
def test_mock_streams_several_chunks_then_usage(call_type):
    payload = {"model": "m", "messages": HELLO, "prompt": "Once"}

    chunks = get_provider("mock").local_response(
        target("mock", extra={"mock_response": "a b c"}), call_type, payload, stream=True
    )

    assert text_of(chunks) == "a b c"
    assert len(chunks) >= 5
    assert chunks[-1]["usage"]["completion_tokens"] == estimate_tokens("a b c")


def test_mock_embeddings_are_unit_vectors_of_a_fixed_size():
    mock = get_provider("mock")
    payload = {"model": "m", "input": ["cat", "dog", "cat"], "encoding_format": "base64"}

    response = mock.local_response(target("mock"), "embedding", payload, stream=False)

    vectors = [struct.unpack("<1536f", base64.b64decode(item["embedding"])) for item in response["data"]]
    assert vectors[0] == vectors[2] != vectors[1]
    assert math.isclose(math.fsum(v * v for v in vectors[0]), 1.0, rel_tol=1e-5)
    assert (
        len(
            mock.local_response(target("mock"), "embedding", {"input": "x", "dimensions": 8}, False)["data"][0][
                "embedding"
            ]
        )
        == 8
    )


# --- round trips against the fake upstreams ---------------------------------------------------------------------

ROUND_TRIPS = [
    # provider, api_base path, call type, path the upstream sees, (prompt, completion, cached, cache writes)
    ("openai", "/v1", "chat", "/v1/chat/completions", (30, 7, 10, 0)),
    ("openai", "/v1", "completion", "/v1/completions", (30, 7, 10, 0)),
    ("text-completion-openai", "/v1", "chat", "/v1/completions", (30, 7, 10, 0)),
    ("azure", "", "chat", "/openai/deployments/m/chat/completions", (30, 7, 10, 0)),
    ("anthropic", "", "chat", "/v1/messages", (30, 7, 10, 5)),
    ("ollama", "", "chat", "/api/generate", (30, 7, None, 0)),
    ("ollama", "", "completion", "/api/generate", (30, 7, None, 0)),
    ("ollama_chat", "", "chat", "/api/chat", (30, 7, None, 0)),
    (
        "sagemaker",
        "",
        "chat",
        "/endpoints/m/invocations",
        (estimate_tokens("Hi"), estimate_tokens("Hello there!"), None, 0),
    ),
]


@pytest.fixture(params=["httpx", "aiohttp"])
async def client(request):
    transport = AiohttpTransport() if request.param == "aiohttp" else None
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


async def call(client, deployment: Target, call_type: str, payload: dict, stream: bool):
    """What the gateway does: build, send, then parse the answer or feed the stream to the parser."""
    provider = get_provider(deployment.provider)
    request = provider.build_request(deployment, call_type, payload, stream)
    if not stream:
        response = await client.request(request.method, request.url, headers=request.headers, content=request.content)
        return provider.parse_response(
            deployment, call_type, payload, response.status_code, response.content, response.headers
        ), None
    parser = provider.stream_parser(deployment, call_type, payload)
    chunks = []
    async with client.stream(request.method, request.url, headers=request.headers, content=request.content) as answer:
        if answer.status_code >= 300:
            provider.parse_response(
                deployment, call_type, payload, answer.status_code, await answer.aread(), answer.headers
            )
        async for data in answer.aiter_bytes():
            chunks += parser.feed(data)
    return chunks + parser.finish(), parser


def deployment_for(up: FakeUpstream, provider: str, base_path: str) -> Target:
    return target(provider, api_base=up.url + base_path, api_key="key", extra=AWS)


def payload_for(call_type: str) -> dict:
    return (
        {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
        if call_type == "chat"
        else {"model": "m", "prompt": "Hi"}
    )


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("provider", "base_path", "call_type", "path", "tokens"), ROUND_TRIPS)
async def test_round_trip(client, provider, base_path, call_type, path, tokens, stream):
    prompt, completion, cached, cache_writes = tokens
    up = FakeUpstream(
        reply="Hello there!",
        prompt_tokens=30,
        completion_tokens=7,
        cached_tokens=10,
        cache_creation_tokens=5,
        reasoning_tokens=2,
    )
    with up:
        deployment = deployment_for(up, provider, base_path)
        response, parser = await call(client, deployment, call_type, payload_for(call_type), stream)

    seen = up.requests[-1]
    assert seen.path == path + ("-response-stream" if stream and provider == "sagemaker" else "")
    if stream:
        assert parser.done
        usage, text = parser.usage, text_of(response)
    else:
        [choice] = response["choices"]
        usage, text = response["usage"], choice["message"]["content"] if call_type == "chat" else choice["text"]
    assert text == "Hello there!"
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (prompt, completion)
    assert usage.get("prompt_tokens_details", {}).get("cached_tokens") == cached
    assert usage.get("cache_creation_input_tokens", 0) == cache_writes


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_sagemaker_signature_covers_what_arrives(client, stream):
    with FakeUpstream() as up:
        deployment = deployment_for(up, "sagemaker", "")
        await call(client, deployment, "chat", payload_for("chat"), stream)

    seen = up.requests[0]
    arrived = sign_v4(
        "POST",
        up.url + seen.path,
        {"Content-Type": seen.headers["content-type"]},
        seen.body,
        credentials=Credentials("AKIDEXAMPLE", "secret", None, "eu-west-1"),
        service="sagemaker",
        now=datetime.strptime(seen.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
    )
    assert seen.headers["host"] == up.url.removeprefix("http://")
    assert seen.headers["authorization"] == arrived["Authorization"]


@pytest.mark.parametrize(
    ("provider", "base_path"), [("openai", "/v1"), ("azure", ""), ("ollama", ""), ("ollama_chat", "")]
)
async def test_embeddings_round_trip(client, provider, base_path):
    with FakeUpstream(prompt_tokens=4, embedding_dimensions=3) as up:
        payload = {"model": "m", "input": ["a", "b"], "encoding_format": "base64"}
        response, _ = await call(client, deployment_for(up, provider, base_path), "embedding", payload, False)

    vectors = [struct.unpack("<3f", base64.b64decode(item["embedding"])) for item in response["data"]]
    assert [[round(x, 4) for x in vector] for vector in vectors] == [[0.1, 0.11, 0.12], [0.2, 0.21, 0.22]]
    assert response["usage"] == openai_usage(4, 0)


SCRIPTED = [(provider, base_path, call_type) for provider, base_path, call_type, *_ in ROUND_TRIPS[3:]]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("provider", "base_path", "call_type"), SCRIPTED)
async def test_round_trip_errors_and_malformed_answers(client, provider, base_path, call_type, stream):
    with FakeUpstream() as up:
        up.script(Behaviour(status=429, retry_after="3", message="slow down"), Behaviour(malformed=True))
        deployment = deployment_for(up, provider, base_path)
        with pytest.raises(ProviderError) as limited:
            await call(client, deployment, call_type, payload_for(call_type), stream)
        with pytest.raises(ProviderError) as malformed:
            await call(client, deployment, call_type, payload_for(call_type), stream)

    assert (limited.value.status, limited.value.message, limited.value.retryable, limited.value.retry_after) == (
        429,
        "slow down",
        True,
        3.0,
    )
    assert (malformed.value.status, malformed.value.retryable) == (502, True)


@pytest.mark.parametrize(("provider", "base_path", "call_type"), SCRIPTED)
async def test_round_trip_stream_without_its_end(client, provider, base_path, call_type):
    with FakeUpstream() as up:
        up.script(Behaviour(stream_end="missing"))
        chunks, parser = await call(
            client, deployment_for(up, provider, base_path), call_type, payload_for(call_type), True
        )

    assert parser.done is False
    assert text_of(chunks) == "Hello from the fake upstream!"
