"""Google's Gemini API (AI Studio, `gemini/`): generateContent and its SSE stream, translated from and to OpenAI
chat completions; batchEmbedContents for embeddings. Vertex AI speaks the same body at another address
(gateway/providers/vertex.py).

Usage, as LiteLLM maps `usageMetadata`: `promptTokenCount` already holds the cached tokens
(`cachedContentTokenCount` is a part of it, a cache read); `thoughtsTokenCount` is reasoning, billed by Google as
output and so counted in `completion_tokens` beside `candidatesTokenCount`; `toolUsePromptTokenCount` (the
results of Google's own tools fed back to the model) is billed as input.
"""

import re
import uuid
from typing import Any

import orjson

from gateway.providers import base
from gateway.providers.base import CallType, Envelope, Provider, ProviderError, SSEStream, Target, UpstreamRequest

DEFAULT_API_BASE = "https://generativelanguage.googleapis.com"

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "content_filter",
}

# OpenAI's name -> generationConfig's, for the settings that only change name.
GENERATION_SETTINGS = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "n": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "seed": "seed",
}

# LiteLLM's thinking budgets for OpenAI's reasoning_effort.
THINKING_BUDGETS = {"none": 0, "disable": 0, "minimal": 128, "low": 1024, "medium": 2048, "high": 4096}

TOOL_CHOICE_MODES = {"none": "NONE", "auto": "AUTO", "required": "ANY"}

# Gemini 3 refuses a conversation whose function calls come back without the thoughtSignature they were made with;
# OpenAI clients keep only a tool call's id, so the signature rides in it, after LiteLLM's separator.
THOUGHT_SIGNATURE_SEPARATOR = "__thought__"

# JSON Schema keywords Gemini's function parameters (an OpenAPI subset) refuse with a 400.
UNSUPPORTED_SCHEMA_KEYS = frozenset({"$schema", "additionalProperties", "strict"})

IMAGE_TYPES = {"png": "image/png", "gif": "image/gif", "webp": "image/webp", "pdf": "application/pdf"}


class GeminiProvider(Provider):
    name = "gemini"
    call_types = frozenset({"chat", "embedding"})
    api_key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    api_base_env = ("GEMINI_API_BASE",)
    embedding_method = "batchEmbedContents"  # Vertex embeds with predict, another body

    def build_request(self, target: Target, call_type: CallType, payload: dict, stream: bool) -> UpstreamRequest:
        if call_type == "embedding":
            method, body = self.embedding_method, self.embedding_body(target, payload)
        else:
            method, body = ("streamGenerateContent" if stream else "generateContent"), request_body(target, payload)
        url = f"{self.model_url(target)}:{method}" + ("?alt=sse" if stream else "")
        return UpstreamRequest("POST", url, base.with_extra_headers(self.headers(target), target), orjson.dumps(body))

    def model_url(self, target: Target) -> str:
        return f"{(target.api_base or DEFAULT_API_BASE).rstrip('/')}/v1beta/models/{target.model}"

    def headers(self, target: Target) -> dict[str, str]:
        if not target.api_key:
            raise base.config_error(self.name, "no API key (set api_key, or GEMINI_API_KEY in the environment)")
        return base.json_headers(**{"x-goog-api-key": target.api_key})

    def embedding_body(self, target: Target, payload: dict) -> dict:
        requests = []
        for text in embedding_inputs(payload):
            request: dict[str, Any] = {"model": f"models/{target.model}", "content": {"parts": [{"text": text}]}}
            if payload.get("dimensions"):
                request["outputDimensionality"] = payload["dimensions"]
            requests.append(request)
        return {"requests": requests}

    def parse_success(self, target: Target, call_type: CallType, payload: dict, data: Any) -> dict:
        if call_type == "embedding":
            return self.parse_embeddings(target, payload, data)
        return parse_generated(target, data)

    def parse_embeddings(self, target: Target, payload: dict, data: Any) -> dict:
        """batchEmbedContents reports no token count: estimated from the input's length, as for Ollama's cache."""
        vectors = [item["values"] for item in data["embeddings"]]
        tokens = sum(base.estimate_tokens(text) for text in embedding_inputs(payload))
        return base.embedding_list(vectors, target.model, base.make_usage(tokens, 0), payload.get("encoding_format"))

    def error_from_response(self, status: int, body: bytes, headers) -> ProviderError:
        error = super().error_from_response(status, body, headers)
        if error.retry_after is None:  # a retry-after header wins
            error.retry_after = _retry_delay(body)
        return error

    def stream_parser(self, target: Target, call_type: CallType, payload: dict) -> "GeminiStream":
        return GeminiStream(self.name, target)


def embedding_inputs(payload: dict) -> list[str]:
    inputs = payload["input"]
    if isinstance(inputs, str):
        return [inputs]
    if inputs and not all(isinstance(item, str) for item in inputs):
        raise base.bad_request("gemini", "embedding input must be text (token arrays cannot be sent to Gemini)")
    return list(inputs)


_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")


def _retry_delay(body: bytes) -> float | None:
    """Google says when to retry inside the error (a google.rpc.RetryInfo detail, `"retryDelay": "37s"`)."""
    try:
        details = orjson.loads(body)["error"]["details"]
        delay = next(item["retryDelay"] for item in details if "retryDelay" in item)
    except (orjson.JSONDecodeError, KeyError, TypeError, StopIteration):
        return None
    match = _DELAY.match(str(delay))
    return float(match.group(1)) if match else None


# --- request --------------------------------------------------------------------------------------------------


def request_body(target: Target, payload: dict) -> dict:
    system, contents = _contents(payload["messages"])
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config = {google: payload[name] for name, google in GENERATION_SETTINGS.items() if payload.get(name) is not None}
    if base.max_output_tokens(payload):
        config["maxOutputTokens"] = base.max_output_tokens(payload)
    if base.stop_sequences(payload):
        config["stopSequences"] = base.stop_sequences(payload)
    config.update(_response_format(payload.get("response_format")))
    if payload.get("reasoning_effort") in THINKING_BUDGETS:
        budget = THINKING_BUDGETS[payload["reasoning_effort"]]
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": budget > 0}
    if config:
        body["generationConfig"] = config
    if payload.get("tools"):
        body["tools"] = _tools(payload["tools"])
    choice = payload.get("tool_choice")
    if choice is not None and (payload.get("tools") or choice == "none"):
        body["toolConfig"] = {"functionCallingConfig": _tool_choice(choice)}
    safety = payload.get("safety_settings") or target.extra.get("safety_settings")
    if safety:
        body["safetySettings"] = safety
    return body


def _contents(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """System messages become systemInstruction; the assistant is the `model`; tool results are user turns of
    functionResponse parts, named after the call they answer; consecutive turns of one role merge (a model turn
    that called two tools is answered by one user turn holding both results)."""
    system, conversation = base.without_system(messages, _parts)
    contents: list[dict] = []
    called: dict[str, str] = {}  # tool call id -> function name
    for message in conversation:
        role = message.get("role")
        if role == "tool":
            role = "user"
            name = message.get("name") or called.get(message.get("tool_call_id"), "")
            response = {"name": name, "response": {"content": base.message_text(message.get("content"))}}
            parts = [{"functionResponse": response}]
        elif role == "assistant":
            role = "model"
            parts = _parts(message.get("content"))
            for call in message.get("tool_calls") or ():
                called[call.get("id")] = call["function"]["name"]
                arguments = base.tool_arguments("gemini", call["function"])
                part = {"functionCall": {"name": call["function"]["name"], "args": arguments}}
                signature = str(call.get("id") or "").partition(THOUGHT_SIGNATURE_SEPARATOR)[2]
                if signature:
                    part["thoughtSignature"] = signature
                parts.append(part)
        else:
            role = "user"
            parts = _parts(message.get("content"))
        if not parts:
            continue
        base.add_turn(contents, role, "parts", parts)
    return system, contents


def _parts(content: Any) -> list[dict]:
    if not content:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part["image_url"]
            parts.append(_media(image["url"] if isinstance(image, dict) else image))
        elif kind == "input_audio":
            audio = part["input_audio"]
            parts.append({"inlineData": {"mimeType": f"audio/{audio['format']}", "data": audio["data"]}})
        elif kind == "file":
            file = part["file"]
            parts.append(_media(file.get("file_data") or file["file_id"]))
        else:
            raise base.bad_request("gemini", f"unsupported content part type {kind!r}")
    return parts


def _media(url: str) -> dict:
    """A data: URL is sent inline; any other address (gs://, the File API's, YouTube's) as a file reference."""
    if url.startswith("data:"):
        mime_type, _, data = url[5:].partition(";base64,")
        return {"inlineData": {"mimeType": mime_type, "data": data}}
    extension = url.rsplit(".", 1)[-1].lower()
    return {"fileData": {"mimeType": IMAGE_TYPES.get(extension, "image/jpeg"), "fileUri": url}}


def _response_format(response_format: dict | None) -> dict:
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        return {"responseMimeType": "application/json", "responseJsonSchema": response_format["json_schema"]["schema"]}
    return {}


def _tools(tools: list[dict]) -> list[dict]:
    """OpenAI functions become one functionDeclarations tool; Google's own tools ({"googleSearch": {}}) pass."""
    declarations, others = [], []
    for tool in tools:
        if tool.get("type") != "function":
            others.append(tool)
            continue
        function = tool["function"]
        declaration = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parameters"] = _schema(function["parameters"])
        declarations.append(declaration)
    return ([{"functionDeclarations": declarations}] if declarations else []) + others


def _schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {key: _schema(value) for key, value in schema.items() if key not in UNSUPPORTED_SCHEMA_KEYS}
    if isinstance(schema, list):
        return [_schema(item) for item in schema]
    return schema


def _tool_choice(choice: Any) -> dict:
    if isinstance(choice, dict):
        return {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
    if choice not in TOOL_CHOICE_MODES:
        raise base.bad_request("gemini", f"unsupported tool_choice {choice!r}")
    return {"mode": TOOL_CHOICE_MODES[choice]}


# --- response -------------------------------------------------------------------------------------------------


def usage(raw: dict | None, searched: int = 0) -> dict:
    """`searched`: the candidates grounded with Google Search, each one web search request as LiteLLM counts them
    (one per grounded prompt, as Google bills Gemini 2.x), priced at the entry's search_context_cost_per_query."""
    raw = raw or {}
    prompt = (raw.get("promptTokenCount") or 0) + (raw.get("toolUsePromptTokenCount") or 0)
    thoughts = raw.get("thoughtsTokenCount")
    audio = sum(
        item.get("tokenCount") or 0 for item in raw.get("promptTokensDetails") or () if item.get("modality") == "AUDIO"
    )
    normalized = base.make_usage(
        prompt,
        (raw.get("candidatesTokenCount") or 0) + (thoughts or 0),
        cached_tokens=raw.get("cachedContentTokenCount"),
        reasoning_tokens=thoughts,
        prompt_audio_tokens=audio or None,
    )
    if searched:
        normalized.setdefault("prompt_tokens_details", {})["web_search_requests"] = searched
    return normalized


def searched(candidates: list[dict]) -> int:
    return sum(1 for candidate in candidates if (candidate.get("groundingMetadata") or {}).get("webSearchQueries"))


def parse_generated(target: Target, data: dict) -> dict:
    envelope = Envelope("chat", data.get("modelVersion") or target.model, id=data.get("responseId", ""))
    candidates = data.get("candidates") or []
    if not candidates:
        # The prompt itself was blocked (promptFeedback.blockReason): an empty, filtered answer, as LiteLLM gives.
        message = {"role": "assistant", "content": None}
        return envelope.response(message, "content_filter", usage(data.get("usageMetadata")))
    choices = []
    for position, candidate in enumerate(candidates):
        delta = candidate_delta(candidate, 0)
        message: dict[str, Any] = {"role": "assistant", "content": delta.get("content")}
        if "content" not in delta and "tool_calls" not in delta:
            message["content"] = ""
        message.update({key: value for key, value in delta.items() if key != "content"})
        for call in message.get("tool_calls", ()):
            del call["index"]
        finish = finish_reason(candidate, bool(delta.get("tool_calls")))
        choices.append({"index": candidate.get("index", position), "message": message, "logprobs": None})
        choices[-1]["finish_reason"] = finish
    response = envelope.response(
        choices[0]["message"], choices[0]["finish_reason"], usage(data.get("usageMetadata"), searched(candidates))
    )
    response["choices"] = choices
    return response


def candidate_delta(candidate: dict, first_tool_index: int) -> dict:
    """What one candidate (or one streamed piece of it) adds: text, thoughts, function calls (indexed from
    `first_tool_index`, the calls the stream has already seen)."""
    text, thoughts, calls = [], [], []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if "functionCall" in part:
            call = part["functionCall"]
            arguments = orjson.dumps(call.get("args") or {}).decode()
            call_id = call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
            if part.get("thoughtSignature"):
                call_id += THOUGHT_SIGNATURE_SEPARATOR + part["thoughtSignature"]
            calls.append(
                {
                    "index": first_tool_index + len(calls),
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call["name"], "arguments": arguments},
                }
            )
        elif "text" in part:
            (thoughts if part.get("thought") else text).append(part["text"])
    delta: dict[str, Any] = {}
    if "".join(text):
        delta["content"] = "".join(text)
    if thoughts:
        delta["reasoning_content"] = "".join(thoughts)
    if calls:
        delta["tool_calls"] = calls
    return delta


def finish_reason(candidate: dict, called_tools: bool) -> str:
    reason = FINISH_REASONS.get(candidate.get("finishReason"), "stop")
    return "tool_calls" if called_tools and reason == "stop" else reason


# --- streaming ------------------------------------------------------------------------------------------------


class GeminiStream(SSEStream):
    """`data:` events, each a GenerateContentResponse holding the next piece of each candidate.

    There is no end marker: the stream is complete when every candidate has its finishReason (the same event
    carries the final usageMetadata). Every event repeats the usage so far, so a stream cut short still reports
    its prompt tokens.
    """

    def __init__(self, provider: str, target: Target) -> None:
        super().__init__(provider)
        self._envelope = Envelope("chat", target.model)
        self._opened = False
        self._tool_calls: dict[int, int] = {}  # candidate index -> tool calls streamed so far
        self._unfinished: set[int] = set()
        self._grounded: set[int] = set()  # candidates that searched the web
        self._raw_usage: dict | None = None

    def _event(self, name: str, data: str) -> list[dict]:
        event = base.decode_json(data)
        if "error" in event:
            raise stream_error(event["error"])
        self._raw_usage = event.get("usageMetadata") or self._raw_usage
        chunks = []
        if not self._opened:
            self._opened = True
            self._envelope.id = event.get("responseId") or self._envelope.id
            self._envelope.model = event.get("modelVersion") or self._envelope.model
            chunks.append(self._envelope.chunk({"role": "assistant", "content": ""}))
        candidates = event.get("candidates") or []
        if not candidates and (event.get("promptFeedback") or {}).get("blockReason"):
            candidates = [{"index": 0, "finishReason": "PROHIBITED_CONTENT"}]
        for position, candidate in enumerate(candidates):
            index = candidate.get("index", position)
            if searched([candidate]):
                self._grounded.add(index)
            chunks.extend(self._candidate(index, candidate))
        if self._raw_usage:
            self.usage = usage(self._raw_usage, len(self._grounded))
        if candidates and not self._unfinished:
            self.done = True
            chunks.append(self._envelope.usage_chunk(self.usage or usage(None)))
        return chunks

    def _candidate(self, index: int, candidate: dict) -> list[dict]:
        chunks = []
        if index not in self._tool_calls:
            self._unfinished.add(index)
        streamed = self._tool_calls.get(index, 0)
        delta = candidate_delta(candidate, streamed)
        self._tool_calls[index] = streamed + len(delta.get("tool_calls", ()))
        if delta:
            chunks.append(self._indexed(self._envelope.chunk(delta), index))
        if candidate.get("finishReason"):
            self._unfinished.discard(index)
            reason = finish_reason(candidate, self._tool_calls[index] > 0)
            chunks.append(self._indexed(self._envelope.chunk({}, reason), index))
        return chunks

    @staticmethod
    def _indexed(chunk: dict, index: int) -> dict:
        chunk["choices"][0]["index"] = index
        return chunk


def stream_error(error: dict) -> ProviderError:
    status = error.get("code") if isinstance(error.get("code"), int) else 500
    return ProviderError(
        status, str(error.get("message") or error.get("status") or "stream error"), base.is_retryable(status)
    )
