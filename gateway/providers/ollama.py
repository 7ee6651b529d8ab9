"""Ollama's native API. `ollama` completes a prompt on /api/generate, `ollama_chat` chats on /api/chat; both embed
on /api/embed. Streams are NDJSON, and the last line (`done: true`) carries the token counts.

Ollama streams unless told not to, so `stream` is always sent explicitly.
"""

import uuid
from typing import Any, ClassVar

import orjson

from gateway.providers import base
from gateway.providers.base import CallType, Envelope, JSONLineStream, Provider, ProviderError, Target, UpstreamRequest

DEFAULT_API_BASE = "http://localhost:11434"
OPTIONS = ("temperature", "top_p", "top_k", "seed", "frequency_penalty", "presence_penalty")
SYSTEM_ROLES = ("system", "developer")


class OllamaProvider(Provider):
    name = "ollama"
    call_types = frozenset({"chat", "completion", "embedding"})
    chat_endpoint: ClassVar[bool] = False

    def build_request(self, target: Target, call_type: CallType, payload: dict, stream: bool) -> UpstreamRequest:
        if call_type == "embedding":
            path, body = "/api/embed", {"model": payload["model"], "input": payload["input"]}
            if payload.get("dimensions"):
                body["dimensions"] = payload["dimensions"]
        else:
            if call_type == "chat" and self.chat_endpoint:
                path, body = "/api/chat", _chat_body(payload)
            else:
                path, body = "/api/generate", _generate_body(call_type, payload)
            body["stream"] = stream
            _add_generation_settings(body, payload)
        url = (target.api_base or DEFAULT_API_BASE).rstrip("/") + path
        headers = base.json_headers(Authorization=f"Bearer {target.api_key}" if target.api_key else None)
        return UpstreamRequest("POST", url, base.with_extra_headers(headers, target), orjson.dumps(body))

    def parse_success(self, target: Target, call_type: CallType, payload: dict, data: Any) -> dict:
        if "error" in data:
            raise ProviderError(502, str(data["error"]), retryable=True)
        model = data.get("model") or target.model
        if call_type == "embedding":
            prompt_tokens = data.get("prompt_eval_count")
            if prompt_tokens is None:
                prompt_tokens = base.estimate_tokens(_input_text(payload.get("input")))
            usage = base.make_usage(prompt_tokens, 0)
            return base.embedding_list(data["embeddings"], model, usage, payload.get("encoding_format"))
        delta = _delta(data)
        message = {"role": "assistant", "content": delta.get("content", "")}
        message.update({key: value for key, value in delta.items() if key != "content"})
        finish = _finish_reason(data, bool(delta.get("tool_calls")))
        return Envelope(call_type, model).response(message, finish, _usage(data, call_type, payload))

    def stream_parser(self, target: Target, call_type: CallType, payload: dict) -> "OllamaStream":
        return OllamaStream(target, call_type, payload)


class OllamaChatProvider(OllamaProvider):
    name = "ollama_chat"
    chat_endpoint = True


# --- request --------------------------------------------------------------------------------------------------


def _chat_body(payload: dict) -> dict:
    body: dict[str, Any] = {"model": payload["model"], "messages": [_message(m) for m in payload["messages"]]}
    if payload.get("tools"):
        body["tools"] = payload["tools"]  # Ollama takes OpenAI's tool definitions as they are
    return body


def _generate_body(call_type: CallType, payload: dict) -> dict:
    if call_type == "completion":
        body = {"model": payload["model"], "prompt": base.completion_prompt(payload)}
        if payload.get("suffix"):
            body["suffix"] = payload["suffix"]
        return body
    system = [m for m in payload["messages"] if m.get("role") in SYSTEM_ROLES]
    turns = [m for m in payload["messages"] if m.get("role") not in SYSTEM_ROLES]
    body = {"model": payload["model"], "prompt": base.messages_to_prompt(turns)}
    if system:
        body["system"] = "\n\n".join(base.message_text(m.get("content")) for m in system)
    images = [image for m in turns for image in _images(m.get("content"))]
    if images:
        body["images"] = images
    return body


def _add_generation_settings(body: dict, payload: dict) -> None:
    options = dict(payload.get("options") or {})
    options.update({key: payload[key] for key in OPTIONS if payload.get(key) is not None})
    if base.max_output_tokens(payload):
        options["num_predict"] = base.max_output_tokens(payload)
    if base.stop_sequences(payload):
        options["stop"] = base.stop_sequences(payload)
    if options:
        body["options"] = options
    response_format = payload.get("response_format") or {}
    if response_format.get("type") == "json_object":
        body["format"] = "json"
    elif response_format.get("type") == "json_schema":
        body["format"] = response_format["json_schema"]["schema"]
    if payload.get("keep_alive") is not None:
        body["keep_alive"] = payload["keep_alive"]


def _message(message: dict) -> dict:
    role = "system" if message.get("role") == "developer" else message.get("role", "user")
    translated: dict[str, Any] = {"role": role, "content": base.message_text(message.get("content"))}
    images = _images(message.get("content"))
    if images:
        translated["images"] = images
    if message.get("tool_calls"):
        translated["tool_calls"] = [
            {
                "function": {
                    "name": call["function"]["name"],
                    "arguments": base.tool_arguments("ollama", call["function"]),
                }
            }
            for call in message["tool_calls"]
        ]
    return translated


def _images(content: Any) -> list[str]:
    """Ollama takes images as bare base64 strings, beside the text."""
    if not isinstance(content, list):
        return []
    images = []
    for part in content:
        if part.get("type") != "image_url":
            continue
        url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else part["image_url"]
        if not url.startswith("data:"):
            raise base.bad_request("ollama", "images must be sent inline as data: URLs")
        images.append(url.partition(";base64,")[2])
    return images


# --- response -------------------------------------------------------------------------------------------------


def _delta(data: dict) -> dict:
    """What one response line (or the whole answer) adds: content, reasoning, tool calls."""
    message = data.get("message") or {}
    delta: dict[str, Any] = {}
    content = message.get("content") if "message" in data else data.get("response")
    if content:
        delta["content"] = content
    thinking = message.get("thinking") or data.get("thinking")
    if thinking:
        delta["reasoning_content"] = thinking
    calls = message.get("tool_calls")
    if calls:
        delta["tool_calls"] = [_tool_call(call) for call in calls]
    return delta


def _tool_call(call: dict) -> dict:
    arguments = call["function"].get("arguments") or {}
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    function = {"name": call["function"]["name"], "arguments": arguments}
    return {"id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function", "function": function}


def _finish_reason(data: dict, called_tools: bool) -> str:
    if called_tools:
        return "tool_calls"
    return "length" if data.get("done_reason") == "length" else "stop"


def _usage(data: dict, call_type: CallType, payload: dict) -> dict:
    """Ollama leaves out prompt_eval_count when the whole prompt came from its cache: estimate it then."""
    prompt_tokens = data.get("prompt_eval_count")
    if prompt_tokens is None:
        if call_type == "completion":
            text = base.completion_prompt(payload)
        else:
            text = "".join(base.message_text(m.get("content")) for m in payload.get("messages", ()))
        prompt_tokens = base.estimate_tokens(text)
    return base.make_usage(prompt_tokens, data.get("eval_count") or 0)


def _input_text(value: Any) -> str:
    return value if isinstance(value, str) else "".join(str(item) for item in value or ())


class OllamaStream(JSONLineStream):
    def __init__(self, target: Target, call_type: CallType, payload: dict) -> None:
        super().__init__("ollama", target, call_type)
        self._call_type = call_type
        self._payload = payload
        self._tool_calls = 0

    def _event(self, data: dict) -> list[dict]:
        chunks = []
        delta = _delta(data)
        for call in delta.get("tool_calls", ()):
            call["index"] = self._tool_calls
            self._tool_calls += 1
        if delta:
            chunks.append(self.envelope.chunk(delta))
        if data.get("done"):
            self.done = True
            self.usage = _usage(data, self._call_type, self._payload)
            chunks.append(self.envelope.chunk({}, _finish_reason(data, self._tool_calls > 0)))
            chunks.append(self.envelope.usage_chunk(self.usage))
        return chunks
