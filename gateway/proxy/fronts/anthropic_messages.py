"""Anthropic's Messages API (`POST /v1/messages`) as a front: its request turned into a chat call, the chat answer and
chunks turned back into a Message and Anthropic's stream events, refusals in Anthropic's error shape.

Every deployment is reached through the chat translation, Anthropic's included (its provider turns the chat call
back into a Messages request): one charging path for every call. What that costs a native caller: `cache_control`
hints are not carried (OpenAI-format upstreams refuse the field), and thinking blocks of earlier turns are dropped.
"""

import uuid
from typing import Any

import orjson

from gateway.proxy.errors import BadRequest
from gateway.proxy.fronts.sse import answer_parts, named_event, reshaped_error
from pricing.calculator import Usage

# Chat finish reasons as Anthropic's stop reasons. A chat answer does not say which stop sequence ended it, so a
# stop is an end_turn.
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

_SAMPLING = ("temperature", "top_p", "top_k", "thinking", "stream")


def _invalid(message: str, param: str) -> BadRequest:
    return BadRequest(message, param=param, code="invalid_value")


class AnthropicMessagesFront:
    call_type = "anthropic_messages"
    id_prefix = "msg_"

    def __init__(self, *, counting: bool = False):
        self.counting = counting  # for count_tokens, whose requests have no max_tokens

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
        system = body.get("system")
        chat["messages"] = ([{"role": "system", "content": _text(system, "system", "\n\n")}] if system else []) + [
            chat_message for index, message in enumerate(messages) for chat_message in _messages(message, index)
        ]
        chat.update({name: body[name] for name in _SAMPLING if body.get(name) is not None})
        if body.get("stop_sequences"):
            chat["stop"] = body["stop_sequences"]
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and metadata.get("user_id") is not None:
            chat["user"] = metadata["user_id"]
        if body.get("tools"):
            if not isinstance(body["tools"], list):
                raise _invalid("tools: a list of tools is required.", "tools")
            chat["tools"] = [_tool(tool) for tool in body["tools"]]
        if body.get("tool_choice") is not None:
            chat.update(_tool_choice(body["tool_choice"]))
        return chat

    def answer(self, chat: dict, call) -> dict:
        text, calls, finish_reason = answer_parts(chat)
        content = [{"type": "text", "text": text}] if text else []
        content += [
            {"type": "tool_use", "id": id_, "name": name, "input": _input(arguments)} for id_, name, arguments in calls
        ]
        return {
            "id": call.request_id,
            "type": "message",
            "role": "assistant",
            "model": chat.get("model") or call.payload["model"],
            "content": content,
            "stop_reason": STOP_REASONS.get(finish_reason, "end_turn"),
            "stop_sequence": None,
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


def _input(arguments: str) -> Any:
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}  # a model's malformed arguments: Anthropic's input is an object, never a string


# --- request -------------------------------------------------------------------------------------------------


def _messages(message: Any, index: int) -> list[dict]:
    """One Anthropic message as chat messages: a user turn's tool results become `tool` messages (first, as chat
    wants them right after the assistant's calls); an assistant's tool_use blocks become its tool_calls."""
    param = f"messages[{index}]"
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise _invalid(f"{param}: an object with role 'user' or 'assistant' is required.", param)
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise _invalid(f"{param}.content: a string or a list of content blocks is required.", f"{param}.content")
    results, parts, calls = [], [], []
    for position, block in enumerate(content):
        where = f"{param}.content[{position}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result" and role == "user":
            text = _text(block.get("content"), where)
            results.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id")), "content": text})
        elif kind == "tool_use" and role == "assistant":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": str(block.get("name")), "arguments": arguments}
            calls.append({"id": str(block.get("id")), "type": "function", "function": function})
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            parts.append(_part(block, where))
    chat: list[dict] = list(results)
    if parts or calls:
        turn: dict[str, Any] = {"role": role, "content": parts or None}
        if role == "assistant" and all(part["type"] == "text" for part in parts):
            turn["content"] = "".join(part["text"] for part in parts) or None
        if calls:
            turn["tool_calls"] = calls
        chat.append(turn)
    return chat


def _part(block: Any, where: str) -> dict:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text" and isinstance(block.get("text"), str):
        return {"type": "text", "text": block["text"]}
    if kind == "image" and isinstance(block.get("source"), dict):
        source = block["source"]
        if source.get("type") == "base64":
            return {
                "type": "image_url",
                "image_url": {"url": f"data:{source.get('media_type')};base64,{source.get('data')}"},
            }
        if source.get("type") == "url":
            return {"type": "image_url", "image_url": {"url": str(source.get("url"))}}
    raise _invalid(f"{where}: content block type {kind!r} is not supported here.", where)


def _text(content: Any, where: str, separator: str = "") -> str:
    """The text of a string or of a list of blocks (a tool result's, the system prompt's); images are not carried."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = [_part(block, where) for block in content]
        return separator.join(part["text"] for part in parts if part["type"] == "text")
    raise _invalid(f"{where}: content must be a string or a list of blocks.", where)


def _tool(tool: Any) -> dict:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise _invalid("tools: each tool needs a string 'name'.", "tools")
    if tool.get("type") not in (None, "custom"):
        return tool  # Anthropic's server tools (web_search_...): only an Anthropic deployment knows them
    function = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> dict:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool" and isinstance(choice.get("name"), str):
        chat: dict[str, Any] = {"tool_choice": {"type": "function", "function": {"name": choice["name"]}}}
    elif kind in ("auto", "any", "none"):
        chat = {"tool_choice": {"auto": "auto", "any": "required", "none": "none"}[kind]}
    else:
        raise _invalid("tool_choice: type must be auto, any, tool (with a name) or none.", "tool_choice")
    if choice.get("disable_parallel_tool_use"):
        chat["parallel_tool_calls"] = False
    return chat


# --- stream --------------------------------------------------------------------------------------------------


class MessagesStream:
    """Chat chunks as Anthropic's events: message_start and a ping first; a content block per text run or tool call
    (start, deltas, stop); at the end message_delta with the stop reason and the usage, and message_stop."""

    def __init__(self, call):
        self.call = call
        self.started = False
        self.block = -1  # the index of the open content block, if `open`
        self.open = False
        self.tool_blocks: dict[int, int] = {}  # chat tool call index -> content block index
        self.stop_reason = "end_turn"

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
            text = delta.get("content")
            if text:
                if not self.open or self.block in self.tool_blocks.values():
                    events.append(self._open({"type": "text", "text": ""}))
                events.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or ():
                events.extend(self._tool_call(call))
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
                events.append(self._close())
        return b"".join(events)

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
        delta = {"stop_reason": self.stop_reason, "stop_sequence": None}
        events = [
            b"" if self.started else b"".join(self._start({})),
            self._close(),
            named_event({"type": "message_delta", "delta": delta, "usage": anthropic_usage(usage)}),
            named_event({"type": "message_stop"}),
        ]
        return b"".join(events)

    def error(self, code: str, message: str) -> bytes:
        return named_event({"type": "error", "error": {"type": "api_error", "message": message}})
