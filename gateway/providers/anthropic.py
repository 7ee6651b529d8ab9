"""Anthropic's Messages API, translated from and to OpenAI chat completions.

Anthropic counts `input_tokens` without the cache: the prompt a client is billed for is input + cache writes +
cache reads, which is what normalized usage reports as `prompt_tokens`.

What OpenAI's chat format has no word for is carried in LiteLLM's extensions of it, so a call from /chat/completions
and the same call from /v1/messages reach Anthropic alike: `cache_control` on content parts, tools, tool messages
and tool calls; `thinking`; an assistant message's `thinking_blocks` (thinking with its signature, or
redacted_thinking), sent back first in its turn and answered the same way; `document` content parts (Anthropic's
document block as it is); and the `stop_sequence` that ended an answer, on its choice.
"""

from collections.abc import Callable
from typing import Any

import orjson

from gateway.providers import base
from gateway.providers.base import CallType, Envelope, Provider, ProviderError, SSEStream, Target, UpstreamRequest

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI clients often leave it out

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# The HTTP status each documented error type comes with, for errors that arrive inside a stream.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

# OpenAI's own `metadata` (tags for stored completions) is not Anthropic's, which only takes a user_id.
PASSED_THROUGH = ("temperature", "top_p", "top_k", "thinking")


class AnthropicProvider(Provider):
    name = "anthropic"
    call_types = frozenset({"chat"})

    def build_request(self, target: Target, call_type: CallType, payload: dict, stream: bool) -> UpstreamRequest:
        body = request_body(payload)
        if stream:
            body["stream"] = True
        headers = base.json_headers(**{"x-api-key": target.api_key, "anthropic-version": API_VERSION})
        return UpstreamRequest("POST", _url(target), base.with_extra_headers(headers, target), orjson.dumps(body))

    def parse_success(self, target: Target, call_type: CallType, payload: dict, data: Any) -> dict:
        text, thinking, tool_calls = [], [], []
        for block in data["content"]:
            if block["type"] == "text":
                text.append(block["text"])
            elif block["type"] == "thinking":
                thinking.append({"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]})
            elif block["type"] == "redacted_thinking":
                thinking.append({"type": "redacted_thinking", "data": block["data"]})
            elif block["type"] == "tool_use":
                arguments = orjson.dumps(block["input"]).decode()
                tool_calls.append(
                    {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}
                )
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not tool_calls else None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        if thinking:
            message["reasoning_content"] = "".join(block.get("thinking", "") for block in thinking)
            message["thinking_blocks"] = thinking  # with their signatures: the next turn must send them back
        envelope = Envelope("chat", data.get("model") or target.model, id=data.get("id", ""))
        response = envelope.response(message, FINISH_REASONS.get(data.get("stop_reason"), "stop"), usage(data["usage"]))
        if data.get("stop_sequence"):
            response["choices"][0]["stop_sequence"] = data["stop_sequence"]
        return response

    def stream_parser(self, target: Target, call_type: CallType, payload: dict) -> "AnthropicStream":
        return AnthropicStream(target)


def _url(target: Target) -> str:
    root = (target.api_base or "https://api.anthropic.com").rstrip("/")
    if root.endswith("/v1/messages"):
        return root
    return root + ("/messages" if root.endswith("/v1") else "/v1/messages")


USAGE_NAMES = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def usage(raw: dict, names: tuple[str, str, str, str] = USAGE_NAMES) -> dict:
    """Normalized usage from counts whose input excludes the cache: Anthropic's, or Bedrock's under its `names`
    (input, output, cache read, cache write)."""
    uncached, output, cache_read, cache_write = (raw.get(name) or 0 for name in names)
    return base.make_usage(
        uncached + cache_read + cache_write, output, cached_tokens=cache_read, cache_creation_tokens=cache_write
    )


# --- request --------------------------------------------------------------------------------------------------


def request_body(payload: dict) -> dict:
    system, messages = _messages(payload["messages"])
    max_tokens = base.max_output_tokens(payload) or DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": payload["model"], "messages": messages, "max_tokens": max_tokens}
    if system:
        body["system"] = system
    body.update({key: payload[key] for key in PASSED_THROUGH if payload.get(key) is not None})
    if base.stop_sequences(payload):
        body["stop_sequences"] = base.stop_sequences(payload)
    if payload.get("user"):
        body["metadata"] = {"user_id": str(payload["user"])}
    if payload.get("tools"):
        body["tools"] = [_tool(tool) for tool in payload["tools"]]
    choice = _tool_choice(payload.get("tool_choice"), payload.get("parallel_tool_calls"))
    if choice and (payload.get("tools") or choice["type"] == "none"):
        body["tool_choice"] = choice
    return body


def _messages(openai_messages: list[dict]) -> tuple[str | list[dict], list[dict]]:
    system, messages = turns(openai_messages, _blocks, _tool_result, _tool_use, _thinking)
    if any("cache_control" in block for block in system):
        return system, messages
    return "\n\n".join(block["text"] for block in system), messages


def turns(
    openai_messages: list[dict],
    blocks: Callable[[Any], list[dict]],
    tool_result: Callable[[dict], list[dict]],
    tool_use: Callable[[dict], list[dict]],
    thinking: Callable[[dict], dict],
) -> tuple[list[dict], list[dict]]:
    """OpenAI messages as the system blocks and alternating turns that Anthropic's Messages API and Bedrock's
    Converse both take: system messages become system blocks; tool results become user turns; an assistant's
    thinking blocks come first in its turn, as both APIs require; consecutive same-role turns merge. Each API spells
    its blocks with `blocks`, `tool_result`, `tool_use` and `thinking`."""
    system, conversation = base.without_system(openai_messages, blocks)
    messages: list[dict] = []
    for message in conversation:
        role = message.get("role")
        if role == "tool":
            role, content = "user", tool_result(message)
        else:
            role = "assistant" if role == "assistant" else "user"
            content = [thinking(block) for block in message.get("thinking_blocks") or ()] if role == "assistant" else []
            content += blocks(message.get("content"))
            for call in message.get("tool_calls") or ():
                content += tool_use(call)
        base.add_turn(messages, role, "content", content)
    return system, messages


def _tool_result(message: dict) -> list[dict]:
    content = base.message_text(message.get("content"))
    return [_cached({"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": content}, message)]


def _cached(block: dict, source: dict) -> dict:
    """`block` with the cache breakpoint its OpenAI-format `source` (a part, message, call or tool) sets."""
    if source.get("cache_control"):
        block["cache_control"] = source["cache_control"]
    return block


def _thinking(block: dict) -> dict:
    """An earlier answer's thinking, sent back as it came (Anthropic checks its signature)."""
    if block.get("type") == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.get("data")}
    return {"type": "thinking", "thinking": block.get("thinking") or "", "signature": block.get("signature") or ""}


def _blocks(content: Any) -> list[dict]:
    if not content:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            if not part.get("text"):
                continue  # Anthropic rejects empty text blocks
            block = {"type": "text", "text": part["text"]}
        elif kind == "image_url":
            image = part["image_url"]
            block = _image(image["url"] if isinstance(image, dict) else image)
        elif kind == "document":
            block = {name: value for name, value in part.items() if name != "cache_control"}
        else:
            raise base.bad_request("anthropic", f"unsupported content part type {kind!r}")
        blocks.append(_cached(block, part))
    return blocks


def _image(url: str) -> dict:
    if url.startswith("data:"):
        media_type, _, data = url[5:].partition(";base64,")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _tool_use(call: dict) -> list[dict]:
    arguments = base.tool_arguments("anthropic", call["function"])
    return [_cached({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": arguments}, call)]


def _tool(tool: dict) -> dict:
    if tool.get("type") != "function":
        return tool  # Anthropic's own server tools (web_search...) are already in its shape
    function = tool["function"]
    translated = {"name": function["name"], "input_schema": function.get("parameters") or {"type": "object"}}
    if function.get("description"):
        translated["description"] = function["description"]
    return _cached(translated, tool)


def _tool_choice(choice: Any, parallel: bool | None) -> dict | None:
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict):
        translated = {"type": "tool", "name": choice["function"]["name"]}
    elif choice == "required":
        translated = {"type": "any"}
    elif choice == "auto" or parallel is False:
        translated = {"type": "auto"}
    else:
        return None
    if parallel is False:
        translated["disable_parallel_tool_use"] = True
    return translated


# --- streaming ------------------------------------------------------------------------------------------------


class AnthropicStream(SSEStream):
    """message_start, content blocks, message_delta, message_stop (pings and unknown events are skipped).

    Usage is known from message_start on (input and cache tokens) and completed by message_delta, so a stream
    cut short still reports what was consumed.
    """

    def __init__(self, target: Target) -> None:
        super().__init__("anthropic")
        self._envelope = Envelope("chat", target.model)
        self._tool_index: dict[int, int] = {}  # content block index -> OpenAI tool call index
        self._raw_usage: dict[str, int] = {}

    def _event(self, name: str, data: str) -> list[dict]:
        event = base.decode_json(data)
        kind = event.get("type")
        if kind == "message_start":
            message = event["message"]
            self._envelope.id = message.get("id") or self._envelope.id
            self._envelope.model = message.get("model") or self._envelope.model
            self._count(message.get("usage"))
            return [self._envelope.chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(event["index"], event["content_block"])
        if kind == "content_block_delta":
            return self._block_delta(event["index"], event["delta"])
        if kind == "message_delta":
            self._count(event.get("usage"))
            reason = FINISH_REASONS.get(event["delta"].get("stop_reason"), "stop")
            chunk = self._envelope.chunk({}, reason)
            if event["delta"].get("stop_sequence"):
                chunk["choices"][0]["stop_sequence"] = event["delta"]["stop_sequence"]
            return [chunk]
        if kind == "message_stop":
            self.done = True
            return [self._envelope.usage_chunk(self.usage or usage({}))]
        if kind == "error":
            raise stream_error(event.get("error") or {})
        return []

    def _count(self, raw: dict | None) -> None:
        if raw:
            self._raw_usage.update({key: value for key, value in raw.items() if isinstance(value, int)})
            self.usage = usage(self._raw_usage)

    def _block_start(self, index: int, block: dict) -> list[dict]:
        if block["type"] == "tool_use":
            position = self._tool_index[index] = len(self._tool_index)
            call = {"index": position, "id": block["id"], "type": "function"}
            call["function"] = {"name": block["name"], "arguments": ""}
            return [self._envelope.chunk({"tool_calls": [call]})]
        if block["type"] == "text" and block.get("text"):
            return [self._envelope.chunk({"content": block["text"]})]
        if block["type"] == "redacted_thinking":
            return [self._envelope.chunk({"thinking_blocks": [{"type": "redacted_thinking", "data": block["data"]}]})]
        return []

    def _block_delta(self, index: int, delta: dict) -> list[dict]:
        kind = delta["type"]
        if kind == "text_delta":
            return [self._envelope.chunk({"content": delta["text"]})]
        if kind == "thinking_delta":
            block = {"type": "thinking", "thinking": delta["thinking"]}
            return [self._envelope.chunk({"reasoning_content": delta["thinking"], "thinking_blocks": [block]})]
        if kind == "signature_delta":  # ends a thinking block: the signature the next turn sends back with it
            block = {"type": "thinking", "signature": delta["signature"]}
            return [self._envelope.chunk({"thinking_blocks": [block]})]
        if kind == "input_json_delta":
            call = {"index": self._tool_index[index], "function": {"arguments": delta["partial_json"]}}
            return [self._envelope.chunk({"tool_calls": [call]})]
        return []


def stream_error(error: dict) -> ProviderError:
    status = ERROR_STATUS.get(error.get("type"), 500)
    return ProviderError(
        status, str(error.get("message") or error.get("type") or "stream error"), base.is_retryable(status)
    )
