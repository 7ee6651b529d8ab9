"""Gemini (`gemini/`, Google AI Studio): what is sent for an OpenAI chat, what is made of generateContent's answers,
usage and stream, Google's errors, and the round trip against the fake upstream speaking Google's wire format."""

import json
from decimal import Decimal

import httpx
import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from gateway.config_import import apply_config, parse_config
from gateway.providers import get_provider, unservable_reason
from gateway.providers.base import ProviderError, Target
from gateway.proxy.upstream import close_upstream_pool
from pricing.active import SHIPPED_COST_MAP
from pricing.calculator import Usage, compute_cost
from tests.e2e.server import MASTER_KEY
from tests.fakes.upstream import Behaviour, FakeUpstream

GEMINI = get_provider("gemini")
FLASH = Target(provider="gemini", model="gemini-2.5-flash", api_key="AIza-test-key")
PNG = "iVBORw0KGgo="
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather in a city",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "additionalProperties": False,
        },
    },
}


def sent(payload: dict, stream: bool = False, target: Target = FLASH, call_type: str = "chat"):
    request = GEMINI.build_request(target, call_type, {"model": target.model, **payload}, stream)
    return request, orjson.loads(request.content)


def test_registered_so_a_gemini_deployment_is_served():
    assert get_provider("gemini").name == "gemini"
    assert unservable_reason("gemini/gemini-2.5-flash") == ""


@pytest.mark.parametrize(
    ("stream", "url"),
    [
        (False, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"),
        (
            True,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        ),
    ],
)
def test_the_key_goes_in_x_goog_api_key_and_the_model_in_the_path(stream, url):
    request, _ = sent({"messages": [{"role": "user", "content": "Hi"}]}, stream)

    assert request.url == url
    assert request.headers["x-goog-api-key"] == "AIza-test-key"
    assert "key=" not in request.url  # never in the address, where access logs would keep it


def test_system_messages_images_and_audio_become_gemini_parts():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "gs://bucket/cat.webp"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            ],
        },
        {"role": "assistant", "content": "Un chat."},
        {"role": "user", "content": "Sure?"},
    ]
    _, body = sent({"messages": messages})

    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]}
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "What is this?"},
                {"inlineData": {"mimeType": "image/png", "data": PNG}},
                {"fileData": {"mimeType": "image/webp", "fileUri": "gs://bucket/cat.webp"}},
                {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
            ],
        },
        {"role": "model", "parts": [{"text": "Un chat."}]},
        {"role": "user", "parts": [{"text": "Sure?"}]},
    ]


def test_a_tool_conversation_becomes_function_calls_and_named_responses():
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
    ]
    messages = [
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
    ]
    _, body = sent({"messages": messages, "tools": [WEATHER], "tool_choice": "required"})

    assert body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "time", "args": {}}},
            ],
        },
        {
            "role": "user",  # both results in one turn, each named after the call it answers
            "parts": [
                {"functionResponse": {"name": "weather", "response": {"content": "Sunny"}}},
                {"functionResponse": {"name": "time", "response": {"content": "noon"}}},
            ],
        },
    ]
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "weather",
                    "description": "Weather in a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                }
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ({"type": "function", "function": {"name": "weather"}}, {"mode": "ANY", "allowedFunctionNames": ["weather"]}),
    ],
)
def test_tool_choice(choice, config):
    _, body = sent({"messages": [{"role": "user", "content": "Hi"}], "tools": [WEATHER], "tool_choice": choice})

    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_google_tools_pass_as_they_are():
    _, body = sent({"messages": [{"role": "user", "content": "News?"}], "tools": [{"googleSearch": {}}]})

    assert body["tools"] == [{"googleSearch": {}}]


@pytest.mark.parametrize(
    ("given", "config"),
    [
        (
            {"temperature": 0.2, "top_p": 0.9, "max_tokens": 100, "stop": "END", "n": 2, "seed": 7},
            {
                "temperature": 0.2,
                "topP": 0.9,
                "maxOutputTokens": 100,
                "stopSequences": ["END"],
                "candidateCount": 2,
                "seed": 7,
            },
        ),
        ({"max_completion_tokens": 50, "stop": ["a", "b"]}, {"maxOutputTokens": 50, "stopSequences": ["a", "b"]}),
        ({"response_format": {"type": "json_object"}}, {"responseMimeType": "application/json"}),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}},
            {"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}},
        ),
        ({"reasoning_effort": "low"}, {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}),
        ({"reasoning_effort": "none"}, {"thinkingConfig": {"thinkingBudget": 0, "includeThoughts": False}}),
    ],
)
def test_openai_settings_become_generation_config(given, config):
    _, body = sent({"messages": [{"role": "user", "content": "Hi"}], **given})

    assert body["generationConfig"] == config


def test_a_deployment_without_a_key_takes_gemini_api_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-from-env")

    assert GEMINI.environment_api_key() == "AIza-from-env"
    with pytest.raises(ProviderError) as missing:
        sent({"messages": [{"role": "user", "content": "Hi"}]}, target=Target("gemini", "gemini-2.5-flash"))
    assert (missing.value.status, missing.value.retryable) == (500, False)
    assert "GEMINI_API_KEY" in missing.value.message


def test_an_unsupported_content_part_is_the_clients_400():
    with pytest.raises(ProviderError) as refused:
        sent({"messages": [{"role": "user", "content": [{"type": "video", "video": "x"}]}]})

    assert (refused.value.status, refused.value.retryable) == (400, False)


# --- answers --------------------------------------------------------------------------------------------------


def answer(*candidates: dict, usage: dict | None = None, **more) -> bytes:
    return orjson.dumps({"candidates": list(candidates), "usageMetadata": usage or {}, "modelVersion": "v", **more})


def parsed(body: bytes, status: int = 200, headers: dict | None = None) -> dict:
    payload = {"model": "gemini-2.5-flash", "messages": []}
    return GEMINI.parse_response(FLASH, "chat", payload, status, body, headers or {})


def text(words: str, finish: str = "STOP", index: int = 0) -> dict:
    return {"content": {"role": "model", "parts": [{"text": words}]}, "finishReason": finish, "index": index}


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(reason, finish):
    assert parsed(answer(text("x", reason)))["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(
    ("raw", "usage"),
    [
        (
            {"promptTokenCount": 30, "candidatesTokenCount": 5, "totalTokenCount": 35},
            {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35},
        ),
        (
            {"promptTokenCount": 30, "cachedContentTokenCount": 20, "candidatesTokenCount": 5, "thoughtsTokenCount": 9},
            {
                "prompt_tokens": 30,  # the cached tokens are part of the prompt: a cache read, not more input
                "completion_tokens": 14,  # thoughts are billed as output
                "total_tokens": 44,
                "prompt_tokens_details": {"cached_tokens": 20},
                "completion_tokens_details": {"reasoning_tokens": 9},
            },
        ),
        (
            {
                "promptTokenCount": 10,
                "toolUsePromptTokenCount": 4,
                "candidatesTokenCount": 1,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4}, {"modality": "AUDIO", "tokenCount": 6}],
            },
            {
                "prompt_tokens": 14,
                "completion_tokens": 1,
                "total_tokens": 15,
                "prompt_tokens_details": {"audio_tokens": 6},
            },
        ),
    ],
    ids=["plain", "cache and thoughts", "tool use and audio"],
)
def test_usage_metadata_in_openai_terms(raw, usage):
    assert parsed(answer(text("x"), usage=raw))["usage"] == usage


def test_thoughts_and_function_calls():
    parts = [
        {"text": "Let me check.", "thought": True},
        {"text": "Checking."},
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
    ]
    body = answer({"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}, responseId="resp-1")

    response = parsed(body)
    [choice] = response["choices"]
    [call] = choice["message"].pop("tool_calls")
    assert response["id"] == "resp-1" and response["model"] == "v"
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {"role": "assistant", "content": "Checking.", "reasoning_content": "Let me check."}
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "weather", "arguments": '{"city":"Paris"}'}


def test_a_gemini_3_thought_signature_rides_in_the_tool_call_id_and_goes_back_with_the_call():
    part = {"functionCall": {"name": "weather", "args": {}}, "thoughtSignature": "c2lnbmF0dXJl"}
    answered = parsed(answer({"content": {"role": "model", "parts": [part]}, "finishReason": "STOP"}))
    [call] = answered["choices"][0]["message"]["tool_calls"]

    history = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Sunny"},
    ]
    _, body = sent({"messages": history})

    assert call["id"].startswith("call_") and call["id"].endswith("__thought__c2lnbmF0dXJl")
    assert body["contents"][1]["parts"] == [part]
    assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "weather"


GROUNDED = {"groundingMetadata": {"webSearchQueries": ["weather paris"], "groundingChunks": []}}


def test_a_search_grounded_answer_is_one_web_search_priced_from_the_cost_map():
    entry = json.loads(SHIPPED_COST_MAP.read_text(), parse_float=Decimal)["gemini/gemini-2.5-flash"]
    raw = {"promptTokenCount": 10, "candidatesTokenCount": 4}

    grounded = parsed(answer({**text("Sunny."), **GROUNDED}, usage=raw))["usage"]
    plain = parsed(answer(text("Sunny."), usage=raw))["usage"]

    assert grounded["prompt_tokens_details"] == {"web_search_requests": 1}
    assert "prompt_tokens_details" not in plain
    search = compute_cost(entry, Usage.from_openai(grounded)).search
    assert search == entry["search_context_cost_per_query"]["search_context_size_medium"] == Decimal("0.035")


def test_a_grounded_stream_reports_its_search_in_the_usage():
    data = sse(
        {**piece({"text": "Sunny."}), "usageMetadata": {"promptTokenCount": 10}},
        {
            "candidates": [{**text("", "STOP"), **GROUNDED}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 2},
        },
    )

    chunks, parser = streamed(data, len(data))

    assert parser.done and chunks[-1]["usage"]["prompt_tokens_details"] == {"web_search_requests": 1}


def test_each_candidate_is_a_choice():
    response = parsed(answer(text("one"), text("two", "MAX_TOKENS", index=1)))

    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in response["choices"]] == [
        (0, "one", "stop"),
        (1, "two", "length"),
    ]


def test_a_blocked_prompt_is_an_empty_filtered_answer():
    body = orjson.dumps({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 8}})

    [choice] = parsed(body)["choices"]
    assert (choice["message"]["content"], choice["finish_reason"]) == (None, "content_filter")


@pytest.mark.parametrize(
    ("status", "details", "headers", "retryable", "retry_after"),
    [
        (429, [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}], {}, True, 37.0),
        (
            429,
            [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}],
            {"retry-after": "2"},
            True,
            2.0,
        ),
        (503, [], {}, True, None),
        (500, [], {}, True, None),
        (400, [{"@type": "type.googleapis.com/google.rpc.BadRequest"}], {}, False, None),
        (403, [], {}, False, None),
    ],
)
def test_googles_errors_keep_their_message_and_say_when_to_retry(status, details, headers, retryable, retry_after):
    body = orjson.dumps({"error": {"code": status, "message": "Quota exceeded.", "status": "X", "details": details}})

    with pytest.raises(ProviderError) as failed:
        parsed(body, status, headers)
    assert (failed.value.status, failed.value.message) == (status, "Quota exceeded.")
    assert (failed.value.retryable, failed.value.retry_after) == (retryable, retry_after)


# --- streams --------------------------------------------------------------------------------------------------


def sse(*events: dict) -> bytes:
    return b"".join(b"data: " + orjson.dumps(event) + b"\r\n\r\n" for event in events)


def streamed(data: bytes, size: int) -> tuple[list[dict], object]:
    parser = GEMINI.stream_parser(FLASH, "chat", {"model": "gemini-2.5-flash", "messages": []})
    chunks = []
    for start in range(0, len(data), size):
        chunks += parser.feed(data[start : start + size])
    return chunks + parser.finish(), parser


def piece(part: dict, **more) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0, **more}]}


FINAL_USAGE = {"promptTokenCount": 9, "candidatesTokenCount": 3, "thoughtsTokenCount": 2, "cachedContentTokenCount": 4}
STREAM = sse(
    {**piece({"text": "Hmm", "thought": True}), "usageMetadata": {"promptTokenCount": 9}, "responseId": "r1"},
    {**piece({"text": "Hello "}), "usageMetadata": {"promptTokenCount": 9}},
    {**piece({"functionCall": {"name": "weather", "args": {"city": "Paris"}}})},
    {**piece({"text": "there"}, finishReason="STOP"), "usageMetadata": FINAL_USAGE},
)


@pytest.mark.parametrize("size", [1, 7, len(STREAM)])
def test_a_stream_becomes_one_chunk_per_piece_then_the_finish_and_usage(size):
    chunks, parser = streamed(STREAM, size)

    deltas = [chunk["choices"][0]["delta"] if chunk["choices"] else None for chunk in chunks]
    call = deltas[3]["tool_calls"][0]
    assert call["function"] == {"name": "weather", "arguments": '{"city":"Paris"}'} and call["index"] == 0
    assert deltas[:3] == [{"role": "assistant", "content": ""}, {"reasoning_content": "Hmm"}, {"content": "Hello "}]
    assert deltas[4:] == [{"content": "there"}, {}, None]
    assert chunks[5]["choices"][0]["finish_reason"] == "tool_calls"
    assert {chunk["id"] for chunk in chunks} == {"r1"}
    assert parser.done
    assert (
        chunks[-1]["usage"]
        == parser.usage
        == {
            "prompt_tokens": 9,
            "completion_tokens": 5,
            "total_tokens": 14,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
    )


def test_a_stream_cut_before_its_finish_is_not_done_but_knows_its_prompt():
    chunks, parser = streamed(STREAM[: STREAM.index(b"weather")], 50)

    assert parser.done is False
    assert parser.usage["prompt_tokens"] == 9
    assert [chunk["choices"][0]["delta"].get("content") for chunk in chunks] == ["", None, "Hello "]


def test_an_error_inside_a_stream():
    data = sse(
        piece({"text": "Hel"}), {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    )

    with pytest.raises(ProviderError) as failed:
        streamed(data, len(data))
    assert (failed.value.status, failed.value.message, failed.value.retryable) == (
        503,
        "The model is overloaded.",
        True,
    )


# --- round trip against the fake upstream ----------------------------------------------------------------------


async def round_trip(up: FakeUpstream, call_type: str, payload: dict, stream: bool):
    target = Target("gemini", "gemini-2.5-flash", api_base=up.url, api_key="AIza-test-key")
    request = GEMINI.build_request(target, call_type, payload, stream)
    async with httpx.AsyncClient() as client:
        response = await client.post(request.url, headers=request.headers, content=request.content)
    if not stream or response.status_code >= 300:
        return GEMINI.parse_response(
            target, call_type, payload, response.status_code, response.content, response.headers
        )
    parser = GEMINI.stream_parser(target, call_type, payload)
    return parser.feed(response.content) + parser.finish(), parser


CHAT = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_round_trip(stream):
    with FakeUpstream(
        reply="Hello there!", prompt_tokens=30, completion_tokens=7, cached_tokens=10, reasoning_tokens=2
    ) as up:
        result = await round_trip(up, "chat", CHAT, stream)

    [seen] = up.requests
    assert seen.path == "/v1beta/models/gemini-2.5-flash:" + ("streamGenerateContent" if stream else "generateContent")
    assert seen.query == ({"alt": "sse"} if stream else {})
    assert seen.headers["x-goog-api-key"] == "AIza-test-key"
    if stream:
        chunks, parser = result
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        usage = parser.usage
        assert parser.done
    else:
        content, usage = result["choices"][0]["message"]["content"], result["usage"]
    assert content == "Hello there!"
    assert usage == {
        "prompt_tokens": 30,
        "completion_tokens": 7,
        "total_tokens": 37,
        "prompt_tokens_details": {"cached_tokens": 10},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_round_trip_errors_and_malformed_answers(stream):
    with FakeUpstream() as up:
        up.script(Behaviour(status=429, message="Resource has been exhausted."), Behaviour(malformed=True))
        with pytest.raises(ProviderError) as limited:
            await round_trip(up, "chat", CHAT, stream)
        with pytest.raises(ProviderError) as malformed:
            await round_trip(up, "chat", CHAT, stream)

    assert (limited.value.status, limited.value.message, limited.value.retryable) == (
        429,
        "Resource has been exhausted.",
        True,
    )
    assert (malformed.value.status, malformed.value.retryable) == (502, True)


async def test_round_trip_stream_without_its_end():
    with FakeUpstream() as up:
        up.script(Behaviour(stream_end="missing"))
        chunks, parser = await round_trip(up, "chat", CHAT, True)

    assert parser.done is False
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello from the fake upstream!"


async def test_embeddings_through_batch_embed_contents():
    with FakeUpstream(embedding_dimensions=3) as up:
        payload = {"model": "gemini-embedding-001", "input": ["abcdefgh", "abcd"], "dimensions": 3}
        response = await round_trip(up, "embedding", payload, False)

    [seen] = up.requests
    assert seen.path == "/v1beta/models/gemini-2.5-flash:batchEmbedContents"
    assert seen.json["requests"][0] == {
        "model": "models/gemini-2.5-flash",
        "content": {"parts": [{"text": "abcdefgh"}]},
        "outputDimensionality": 3,
    }
    assert [item["embedding"] for item in response["data"]] == [[0.1, 0.11, 0.12], [0.2, 0.21, 0.22]]
    assert response["usage"]["prompt_tokens"] == 3  # Google reports none: estimated, 4 characters a token


def test_a_stream_whose_prompt_is_blocked_ends_filtered():
    chunks, parser = streamed(
        sse({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 8}}), 9
    )

    assert parser.done and parser.usage["prompt_tokens"] == 8
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks[:-1]] == [None, "content_filter"]


# --- through the proxy ----------------------------------------------------------------------------------------


@pytest.fixture
async def proxied():
    async with FakeUpstream() as up:
        config = f"""
model_list:
  - model_name: flash
    litellm_params: {{model: gemini/gemini-2.5-flash, api_base: "{up.url}", api_key: AIza-proxy-test-key}}
router_settings: {{num_retries: 2}}
"""
        await sync_to_async(apply_config)(parse_config(config))
        yield up
    await close_upstream_pool()


async def proxy_chat() -> tuple[int, dict]:
    response = await AsyncClient().post(
        "/v1/chat/completions",
        orjson.dumps({**CHAT, "model": "flash"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
    )
    return response.status_code, orjson.loads(response.content)


@pytest.mark.django_db(transaction=True)
async def test_the_proxy_retries_googles_overload_and_passes_its_refusals_through(proxied):
    proxied.script(Behaviour(status=503, message="The model is overloaded."))
    retried = await proxy_chat()
    proxied.script(Behaviour(status=400, message="API key not valid. Please pass a valid API key."))
    refused = await proxy_chat()

    assert retried[0] == 200 and retried[1]["choices"][0]["message"]["content"] == proxied.reply
    assert refused[0] == 400 and "API key not valid" in refused[1]["error"]["message"]
    assert len(proxied.requests) == 3  # 503, then its retry; the 400 is not retried
