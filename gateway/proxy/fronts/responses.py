"""OpenAI's Responses API (`POST /v1/responses`) as a front: its request turned into a chat call, the chat answer and
chunks turned back into a Response and its stream events. Refusals keep OpenAI's error shape, which this API shares.

Every deployment is reached through the chat translation, OpenAI's included: one charging path for every call.
Nothing is stored: `store` is accepted and ignored, and `previous_response_id` is refused (400), since there is no
earlier response to continue from; a client sends the whole conversation as `input` instead.
"""

import uuid
from typing import Any

from gateway.proxy.errors import BadRequest, error_response
from gateway.proxy.fronts.sse import answer_parts, named_event
from pricing.calculator import Usage

_PASSED = ("temperature", "top_p", "user", "metadata", "parallel_tool_calls", "stream")


def _invalid(message: str, param: str) -> BadRequest:
    return BadRequest(message, param=param, code="invalid_value")


class ResponsesFront:
    """One /v1/responses call: keeps what the Response repeats of its request (instructions, tools, settings)."""

    call_type = "responses"
    id_prefix = "resp_"

    def __init__(self):
        self.request: dict = {}

    def for_deployment(self, payload: dict, deployment) -> dict:
        return payload  # its translation uses only what every chat provider takes

    def to_chat(self, body: dict) -> dict:
        if body.get("previous_response_id") is not None:
            raise BadRequest(
                "previous_response_id is not supported: Tollgate stores no responses. Send the conversation in "
                "'input' instead.",
                param="previous_response_id",
                code="unsupported_parameter",
            )
        self.request = body
        messages = []
        instructions = body.get("instructions")
        if instructions is not None:
            if not isinstance(instructions, str):
                raise _invalid("'instructions' must be a string.", "instructions")
            messages.append({"role": "system", "content": instructions})
        messages.extend(_input_messages(body.get("input")))
        chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
        chat.update({name: body[name] for name in _PASSED if body.get(name) is not None})
        if body.get("max_output_tokens") is not None:
            chat["max_tokens"] = body["max_output_tokens"]
        if body.get("tools"):
            if not isinstance(body["tools"], list):
                raise _invalid("'tools' must be a list.", "tools")
            chat["tools"] = [_tool(tool) for tool in body["tools"]]
        if body.get("tool_choice") is not None:
            chat["tool_choice"] = _tool_choice(body["tool_choice"])
        response_format = _response_format(body.get("text"))
        if response_format:
            chat["response_format"] = response_format
        reasoning = body.get("reasoning")
        if isinstance(reasoning, dict) and reasoning.get("effort"):
            chat["reasoning_effort"] = reasoning["effort"]
        return chat

    def answer(self, chat: dict, call) -> dict:
        text, calls, finish_reason = answer_parts(chat)
        output = [_message_item(_item_id("msg_"), text, "completed")] if text else []
        output += [_function_item(_item_id("fc_"), *call, "completed") for call in calls]
        usage = responses_usage(Usage.from_openai(chat.get("usage")))
        return self.response(call, chat.get("model"), output, usage, finish_reason)

    def response(self, call, model: str | None, output: list, usage: dict | None, finish_reason: str | None) -> dict:
        """The Response object: `usage` None while it is in progress."""
        request = self.request
        status = "in_progress" if usage is None else "completed"
        incomplete = None
        if finish_reason == "length":
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        return {
            "id": call.request_id,
            "object": "response",
            "created_at": int(call.start_time.timestamp()),
            "status": status,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": request.get("instructions"),
            "max_output_tokens": request.get("max_output_tokens"),
            "model": model or call.payload["model"],
            "output": output,
            "parallel_tool_calls": request.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": False,
            "temperature": request.get("temperature"),
            "text": request.get("text") or {"format": {"type": "text"}},
            "tool_choice": request.get("tool_choice", "auto"),
            "tools": request.get("tools") or [],
            "top_p": request.get("top_p"),
            "truncation": "disabled",
            "usage": usage,
            "user": request.get("user"),
            "metadata": request.get("metadata") or {},
        }

    def stream(self, call) -> "ResponseStream":
        return ResponseStream(self, call)

    def error_response(self, exc: Exception):
        return error_response(exc)


def responses_usage(usage: Usage) -> dict:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_creation_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def _item_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _message_item(item_id: str, text: str | None, status: str) -> dict:
    content = [] if text is None else [_text_part(text)]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def _text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": []}


def _function_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


# --- request -------------------------------------------------------------------------------------------------


def _input_messages(items: Any) -> list[dict]:
    """`input` as chat messages: a string is one user message; function_call items join the assistant turn before
    them as its tool_calls; function_call_output items become `tool` messages; reasoning items are dropped."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise _invalid("'input' is required: a string or a non-empty list of items.", "input")
    messages: list[dict] = []
    for index, item in enumerate(items):
        param = f"input[{index}]"
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call":
            call = {"id": str(item.get("call_id")), "type": "function"}
            call["function"] = {"name": str(item.get("name")), "arguments": str(item.get("arguments") or "{}")}
            previous = messages[-1] if messages else None
            if previous is None or previous["role"] != "assistant":
                previous = {"role": "assistant", "content": None}
                messages.append(previous)
            previous.setdefault("tool_calls", []).append(call)
        elif kind == "function_call_output":
            output = item.get("output")
            if isinstance(output, list):
                output = "".join(str(part.get("text", "")) for part in output if isinstance(part, dict))
            elif not isinstance(output, str):
                raise _invalid(f"{param}.output must be a string or a list of parts.", f"{param}.output")
            messages.append({"role": "tool", "tool_call_id": str(item.get("call_id")), "content": output})
        elif kind != "reasoning":
            raise _invalid(f"{param}: item type {kind!r} is not supported.", param)
    return messages


def _message(item: dict, param: str) -> dict:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise _invalid(f"{param}.role must be user, assistant, system or developer.", f"{param}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _invalid(f"{param}.content must be a string or a list of parts.", f"{param}.content")
    parts = [_part(part, f"{param}.content[{position}]") for position, part in enumerate(content)]
    if role != "user":
        return {"role": role, "content": "".join(part["text"] for part in parts if part["type"] == "text")}
    return {"role": role, "content": parts}


def _part(part: Any, where: str) -> dict:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        image = {"url": part["image_url"]}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise _invalid(f"{where}: part type {kind!r} is not supported.", where)


def _tool(tool: Any) -> dict:
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("name"), str):
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise _invalid(f"tools: only function tools with a name are supported (got {kind!r}).", "tools")
    function = {name: tool[name] for name in ("name", "description", "parameters", "strict") if name in tool}
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _invalid("tool_choice must be auto, none, required or a function by name.", "tool_choice")


def _response_format(text: Any) -> dict | None:
    form = text.get("format") if isinstance(text, dict) else None
    kind = form.get("type") if isinstance(form, dict) else None
    if kind == "json_schema":
        schema = {name: form[name] for name in ("name", "schema", "strict", "description") if name in form}
        return {"type": "json_schema", "json_schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


# --- stream --------------------------------------------------------------------------------------------------


class ResponseStream:
    """Chat chunks as the Responses API's events: created and in_progress first; an output item per text run
    (with its content part and text deltas) or tool call (with argument deltas), each closed with its done events;
    response.completed with the whole Response and its usage last. Every event carries a sequence_number."""

    def __init__(self, front: ResponsesFront, call):
        self.front = front
        self.call = call
        self.sequence = 0
        self.started = False
        self.model: str | None = None
        self.output: list[dict] = []  # the items so far; the last one is open while `open`
        self.open = False
        self.tool_items: dict[int, int] = {}  # chat tool call index -> output index
        self.finish_reason: str | None = None

    def _event(self, kind: str, **fields) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return named_event(data)

    def _start(self, chunk: dict) -> bytes:
        self.started = True
        self.model = chunk.get("model") or self.call.payload["model"]
        response = self.front.response(self.call, self.model, [], None, None)
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def _add(self, item: dict) -> bytes:
        events = self._close()
        self.output.append(item)
        self.open = True
        added = self._event("response.output_item.added", output_index=len(self.output) - 1, item=dict(item))
        if item["type"] == "message":
            part = _text_part("")
            added += self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=len(self.output) - 1,
                content_index=0,
                part=part,
            )
            item["content"] = [part]
        return events + added

    def _close(self) -> bytes:
        if not self.open:
            return b""
        self.open = False
        index, item = len(self.output) - 1, self.output[-1]
        item["status"] = "completed"
        if item["type"] == "message":
            part = item["content"][0]
            events = self._event(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=part["text"],
                logprobs=[],
            )
            events += self._event(
                "response.content_part.done", item_id=item["id"], output_index=index, content_index=0, part=part
            )
        else:
            events = self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=item["arguments"],
            )
        return events + self._event("response.output_item.done", output_index=index, item=item)

    def chunk(self, chunk: dict) -> bytes:
        events = [] if self.started else [self._start(chunk)]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if not self.open or self.output[-1]["type"] != "message":
                    events.append(self._add(_message_item(_item_id("msg_"), None, "in_progress")))
                item = self.output[-1]
                item["content"][0]["text"] += text
                events.append(
                    self._event(
                        "response.output_text.delta",
                        item_id=item["id"],
                        output_index=len(self.output) - 1,
                        content_index=0,
                        delta=text,
                        logprobs=[],
                    )
                )
            for call in delta.get("tool_calls") or ():
                events.append(self._tool_call(call))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                events.append(self._close())
        return b"".join(events)

    def _tool_call(self, call: dict) -> bytes:
        index = call.get("index", 0)
        function = call.get("function") or {}
        events = b""
        if index not in self.tool_items:
            call_id = call.get("id") or _item_id("call_")
            events = self._add(_function_item(_item_id("fc_"), call_id, function.get("name") or "", "", "in_progress"))
            self.tool_items[index] = len(self.output) - 1
        arguments = function.get("arguments")
        position = self.tool_items[index]
        if arguments and self.open and position == len(self.output) - 1:
            item = self.output[position]
            item["arguments"] += arguments
            events += self._event(
                "response.function_call_arguments.delta", item_id=item["id"], output_index=position, delta=arguments
            )
        return events

    def end(self, usage: Usage, cost) -> bytes:
        events = (b"" if self.started else self._start({})) + self._close()
        response = self.front.response(self.call, self.model, self.output, responses_usage(usage), self.finish_reason)
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        return events + self._event(kind, response=response)

    def error(self, code: str, message: str) -> bytes:
        return self._event("error", code=code, message=message, param=None)
