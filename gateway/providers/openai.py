"""OpenAI and every server that speaks its wire format (Groq, Mistral, OpenRouter, vLLM... any api_base).

Requests pass through as the client sent them, so parameters we do not know still reach the upstream; we only
ask a stream to end with a usage chunk, and normalize the usage we get back.
"""

from typing import Any

import orjson

from gateway.providers import base
from gateway.providers.base import CallType, Envelope, Provider, ProviderError, SSEStream, Target, UpstreamRequest

PATHS = {"chat": "/chat/completions", "completion": "/completions", "embedding": "/embeddings"}


class OpenAIProvider(Provider):
    name = "openai"
    call_types = frozenset({"chat", "completion", "embedding"})
    default_api_base: str | None = "https://api.openai.com/v1"
    api_key_env = ("OPENAI_API_KEY",)
    api_base_env = ("OPENAI_BASE_URL", "OPENAI_API_BASE")

    def build_request(self, target: Target, call_type: CallType, payload: dict, stream: bool) -> UpstreamRequest:
        body = dict(payload)
        if stream and call_type != "embedding":
            body["stream"] = True
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        headers = base.with_extra_headers(self.auth_headers(target), target)
        return UpstreamRequest("POST", self.url(target, call_type), headers, orjson.dumps(body))

    def url(self, target: Target, call_type: CallType) -> str:
        root = target.api_base or self.default_api_base
        if not root:
            raise base.config_error(self.name, "api_base is required")
        return root.rstrip("/") + PATHS[call_type]

    def auth_headers(self, target: Target) -> dict[str, str]:
        return base.json_headers(
            Authorization=f"Bearer {target.api_key}" if target.api_key else None,
            **{"OpenAI-Organization": target.extra.get("organization")},
        )

    def parse_success(self, target: Target, call_type: CallType, payload: dict, data: Any) -> dict:
        if "error" in data and not data.get("choices") and not data.get("data"):
            raise _error_in_body(data["error"])  # some OpenAI-compatible servers answer errors with a 200
        if not isinstance(data["data" if call_type == "embedding" else "choices"], list):
            raise TypeError("no choices / data list")
        if data.get("usage"):
            data["usage"] = base.normalize_openai_usage(data["usage"])
        return data

    def stream_parser(self, target: Target, call_type: CallType, payload: dict) -> "OpenAIStream":
        return OpenAIStream(self.name)


class OpenAIStream(SSEStream):
    """`data: {chunk}` events until `data: [DONE]`; the chunk that carries usage has it normalized."""

    def _event(self, name: str, data: str) -> list[dict]:
        if data == "[DONE]":
            self.done = True
            return []
        chunk = base.decode_json(data)
        if "error" in chunk and not chunk.get("choices"):
            raise _error_in_body(chunk["error"])
        if chunk.get("usage"):
            chunk["usage"] = self.usage = base.normalize_openai_usage(chunk["usage"])
        return self._keep(chunk)

    def _keep(self, chunk: dict) -> list[dict]:
        return [chunk]


def _error_in_body(error: Any) -> ProviderError:
    if not isinstance(error, dict):
        return ProviderError(502, str(error), retryable=True)
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else 502
    return ProviderError(status, str(error.get("message") or error), base.is_retryable(status))


class OpenAICompatibleProvider(OpenAIProvider):
    """A provider whose API is OpenAI's under another name: only its default address and key variables differ
    (one row of gateway.providers.openai_compatible.OPENAI_COMPATIBLE each)."""

    def __init__(
        self, name: str, default_api_base: str | None, api_key_env: tuple[str, ...], api_base_env: tuple[str, ...]
    ) -> None:
        self.name = name
        self.default_api_base = default_api_base
        self.api_key_env = api_key_env
        self.api_base_env = api_base_env


class TextCompletionOpenAIProvider(OpenAIProvider):
    """Models only served on /completions (gpt-3.5-turbo-instruct...): a chat call is sent as a text completion
    of the conversation transcript, and the answer is turned back into a chat completion."""

    name = "text-completion-openai"

    def build_request(self, target: Target, call_type: CallType, payload: dict, stream: bool) -> UpstreamRequest:
        if call_type == "chat":
            prompt = base.messages_to_prompt(payload["messages"])
            payload = {k: v for k, v in payload.items() if k not in ("messages", "tools", "tool_choice")}
            payload["prompt"] = prompt
            call_type = "completion"
        return super().build_request(target, call_type, payload, stream)

    def parse_success(self, target: Target, call_type: CallType, payload: dict, data: Any) -> dict:
        data = super().parse_success(target, call_type, payload, data)
        if call_type != "chat":
            return data
        envelope = Envelope("chat", data.get("model") or target.model, id=data.get("id", ""))
        choice = data["choices"][0]
        message = {"role": "assistant", "content": choice.get("text", "")}
        return envelope.response(message, choice.get("finish_reason") or "stop", data.get("usage") or {})

    def stream_parser(self, target: Target, call_type: CallType, payload: dict) -> OpenAIStream:
        return ChatFromTextStream(self.name) if call_type == "chat" else OpenAIStream(self.name)


class ChatFromTextStream(OpenAIStream):
    """Text-completion chunks re-shaped as chat chunks, the first one carrying the assistant role."""

    _started = False

    def _keep(self, chunk: dict) -> list[dict]:
        envelope = Envelope("chat", chunk.get("model", ""), id=chunk.get("id", ""), created=chunk.get("created", 0))
        if not chunk.get("choices"):
            return [envelope.usage_chunk(chunk["usage"])] if chunk.get("usage") else []
        choice = chunk["choices"][0]
        delta: dict[str, Any] = {"content": choice.get("text", "")}
        if not self._started:
            self._started = True
            delta = {"role": "assistant", **delta}
        return [envelope.chunk(delta, choice.get("finish_reason"))]
