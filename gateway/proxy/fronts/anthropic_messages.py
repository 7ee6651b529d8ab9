"""Anthropic's Messages API (`POST /v1/messages`) as a front: its request turned into a chat call, the chat answer and
chunks turned back into a Message and Anthropic's stream events, refusals in Anthropic's error shape.

Every deployment is reached through the chat translation, Anthropic's included (its provider turns the chat call
back into a Messages request): one charging path for every call. Cache hints, thinking, earlier thinking blocks and
documents ride in the chat payload in LiteLLM's extensions of it, adapted to each deployment as it is tried
(gateway.proxy.fronts.anthropic_request); thinking comes back as thinking blocks, signatures included, and the stop
sequence that ended an answer as `stop_sequence`, when the upstream says so (Anthropic and Bedrock do).
"""

import uuid
from typing import Any

import orjson

from gateway.proxy.errors import BadRequest
from gateway.proxy.fronts import anthropic_request as request
from gateway.proxy.fronts.sse import answer_parts, named_event, reshaped_error
from pricing.calculator import Usage

# Chat finish reasons as Anthropic's stop reasons (a stop is a `stop_sequence` when the choice names the sequence).
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}

# Anthropic's error type for each status the proxy refuses with.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}

_SAMPLING = ("temperature", "top_p", "top_k", "stream")
_invalid = request.invalid


class AnthropicMessagesFront:
    call_type = "anthropic_messages"
    id_prefix = "msg_"

    def __init__(self, *, counting: bool = False):
        self.counting = counting  # for count_tokens, whose requests have no max_tokens
        self.seen = request.Seen()

    def to_chat(self, body: dict) -> dict:
        max_tokens = body.get("max_tokens")
        if not self.counting and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
            raise BadRequest("max_tokens: Field required (an integer).", param="max_tokens", code="missing_max_tokens")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _invalid("messages: a non-empty list of messages is required.", "messages")
        chat: dict[str, Any] = {"model": body.get("model")}
        if not self.counting:
            chat["max_tokens"] = max_tokens
        seen, system = self.seen, body.get("system")
        chat["messages"] = [{"role": "system", "content": request.system_content(system, seen)}] if system else []
        for index, message in enumerate(messages):
            chat["messages"] += request.messages(message, index, seen)
        chat.update({name: body[name] for name in _SAMPLING if body.get(name) is not None})
        if body.get("thinking") is not None:
            chat["thinking"] = request.thinking(body["thinking"])
        if body.get("stop_sequences"):
            chat["stop"] = body["stop_sequences"]
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and metadata.get("user_id") is not None:
            chat["user"] = metadata["user_id"]
        if body.get("tools"):
            if not isinstance(body["tools"], list):
                raise _invalid("tools: a list of tools is required.", "tools")
            chat["tools"] = [request.tool(tool, seen) for tool in body["tools"]]
        if body.get("tool_choice") is not None:
            chat.update(request.tool_choice(body["tool_choice"]))
        return chat

    def for_deployment(self, payload: dict, deployment) -> dict:
        """The chat payload as this attempt's deployment takes it: everything for Anthropic's family; for any other
        provider, without what it would refuse or misread (anthropic_request.for_provider)."""
        seen = self.seen
        if not (seen.cache or seen.thinking_blocks or seen.documents or "thinking" in payload or "top_k" in payload):
            return payload
        target = deployment.target
        if request.anthropic_family(target.provider, target.model):
            return payload
        return request.for_provider(payload, target.provider, target.model, seen)

    def answer(self, chat: dict, call) -> dict:
        text, calls, finish_reason = answer_parts(chat)
        choice = chat["choices"][0]
        content = _thinking_blocks(choice.get("message") or {})
        content += [{"type": "text", "text": text}] if text else []
        content += [
            {"type": "tool_use", "id": id_, "name": name, "input": _input(arguments)} for id_, name, arguments in calls
        ]
        stop_reason, stop_sequence = _stop(finish_reason, choice.get("stop_sequence"))
        return {
            "id": call.request_id,
            "type": "message",
            "role": "assistant",
            "model": chat.get("model") or call.payload["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": anthropic_usage(Usage.from_openai(chat.get("usage"))),
        }

    def stream(self, call) -> "MessagesStream":
        return MessagesStream(call)

    def error_response(self, exc: Exception):
        return reshaped_error(exc, anthropic_error)


def anthropic_error(status: int, error: dict) -> dict:
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error["message"]}}


def anthropic_usage(usage: Usage) -> dict:
    """Anthropic counts `input_tokens` without the cache reads and writes that OpenAI's prompt_tokens includes."""
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens - usage.cache_creation_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": usage.cache_creation_tokens,
    }


def _stop(finish_reason: str | None, sequence: Any) -> tuple[str, str | None]:
    if finish_reason == "stop" and isinstance(sequence, str):
        return "stop_sequence", sequence
    return STOP_REASONS.get(finish_reason, "end_turn"), None


def _thinking_blocks(message: dict) -> list[dict]:
    """An answer's thinking as Anthropic's blocks: as the upstream gave them (Anthropic's, Bedrock's: signed), or
    another upstream's reasoning text as one thinking block with no signature."""
    blocks = message.get("thinking_blocks")
    if isinstance(blocks, list) and blocks:
        return [
            {"type": "redacted_thinking", "data": block.get("data") or ""}
            if block.get("type") == "redacted_thinking"
            else {
                "type": "thinking",
                "thinking": block.get("thinking") or "",
                "signature": block.get("signature") or "",
            }
            for block in blocks
            if isinstance(block, dict)
        ]
    reasoning = message.get("reasoning_content")
    return (
        [{"type": "thinking", "thinking": reasoning, "signature": ""}]
        if isinstance(reasoning, str) and reasoning
        else []
    )


def _input(arguments: str) -> Any:
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}  # a model's malformed arguments: Anthropic's input is an object, never a string


# --- stream --------------------------------------------------------------------------------------------------


class MessagesStream:
    """Chat chunks as Anthropic's events: message_start and a ping first; a content block per thinking run, text run
    or tool call (start, deltas, stop), a thinking block ending with its signature_delta; at the end message_delta
    with the stop reason and the usage, and message_stop."""

    def __init__(self, call):
        self.call = call
        self.started = False
        self.block = -1  # the index of the open content block, if `open`
        self.open = False
        self.kind = ""  # the open block's type
        self.tool_blocks: dict[int, int] = {}  # chat tool call index -> content block index
        self.stop_reason = "end_turn"
        self.stop_sequence: str | None = None

    def _start(self, chunk: dict) -> list[bytes]:
        self.started = True
        message = {
            "id": self.call.request_id,
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self.call.payload["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The prompt's size is reported with message_delta, once the upstream has said it.
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [named_event({"type": "message_start", "message": message}), named_event({"type": "ping"})]

    def _open(self, block: dict) -> bytes:
        events = self._close()
        self.block += 1
        self.open = True
        self.kind = block["type"]
        return events + named_event({"type": "content_block_start", "index": self.block, "content_block": block})

    def _close(self) -> bytes:
        if not self.open:
            return b""
        self.open = False
        return named_event({"type": "content_block_stop", "index": self.block})

    def _delta(self, delta: dict) -> bytes:
        return named_event({"type": "content_block_delta", "index": self.block, "delta": delta})

    def chunk(self, chunk: dict) -> bytes:
        events = [] if self.started else self._start(chunk)
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            events.extend(self._thinking(delta))
            text = delta.get("content")
            if text:
                if not self.open or self.kind != "text":
                    events.append(self._open({"type": "text", "text": ""}))
                events.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or ():
                events.extend(self._tool_call(call))
            if choice.get("finish_reason"):
                self.stop_reason, self.stop_sequence = _stop(choice["finish_reason"], choice.get("stop_sequence"))
                events.append(self._close())
        return b"".join(events)

    def _thinking(self, delta: dict) -> list[bytes]:
        """Reasoning text as thinking_delta events; from Anthropic-family upstreams, a block's signature (which
        closes it) and redacted thinking as blocks of their own."""
        events = []
        if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
            if not self.open or self.kind != "thinking":
                events.append(self._open({"type": "thinking", "thinking": "", "signature": ""}))
            events.append(self._delta({"type": "thinking_delta", "thinking": delta["reasoning_content"]}))
        for block in delta.get("thinking_blocks") or ():
            if not isinstance(block, dict):
                continue
            if block.get("type") == "redacted_thinking":
                events.append(self._open({"type": "redacted_thinking", "data": str(block.get("data") or "")}))
            elif block.get("signature"):
                if not self.open or self.kind != "thinking":
                    events.append(self._open({"type": "thinking", "thinking": "", "signature": ""}))
                events.append(self._delta({"type": "signature_delta", "signature": str(block["signature"])}))
        return events

    def _tool_call(self, call: dict) -> list[bytes]:
        index = call.get("index", 0)
        function = call.get("function") or {}
        events = []
        if index not in self.tool_blocks:
            block = {"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}", "input": {}}
            block["name"] = function.get("name") or ""
            events.append(self._open(block))
            self.tool_blocks[index] = self.block
        if function.get("arguments"):
            if self.tool_blocks[index] != self.block:
                return events  # arguments of a call whose block is closed: chat streams send a call's pieces in order
            events.append(self._delta({"type": "input_json_delta", "partial_json": function["arguments"]}))
        return events

    def end(self, usage: Usage, cost) -> bytes:
        delta = {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence}
        events = [
            b"" if self.started else b"".join(self._start({})),
            self._close(),
            named_event({"type": "message_delta", "delta": delta, "usage": anthropic_usage(usage)}),
            named_event({"type": "message_stop"}),
        ]
        return b"".join(events)

    def error(self, code: str, message: str) -> bytes:
        return named_event({"type": "error", "error": {"type": "api_error", "message": message}})
