"""What both fronts share: a chat answer's parts, named server-sent events, a front's error shape from OpenAI's."""

import orjson
from django.http import HttpResponse

from gateway.proxy.errors import error_response


def answer_parts(chat: dict) -> tuple[str | None, list[tuple[str, str, str]], str | None]:
    """A chat completion's text, tool calls (id, name, JSON arguments) and finish reason: what a front's answer says
    in its own shape."""
    choice = chat["choices"][0]
    message = choice.get("message") or {}
    calls = [
        (call["id"], call["function"]["name"], call["function"].get("arguments") or "{}")
        for call in message.get("tool_calls") or ()
    ]
    return message.get("content") or None, calls, choice.get("finish_reason")


def named_event(data: dict) -> bytes:
    """One event as Anthropic and OpenAI's Responses API send them: `event:` the data's type, then the data."""
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def reshaped_error(exc: Exception, shape) -> HttpResponse:
    """The proxy's refusal (status, headers and message decided in one place: gateway.proxy.errors) with its body
    rewritten by `shape(status, error)`, `error` being the OpenAI error object."""
    response = error_response(exc)
    error = orjson.loads(response.content)["error"]
    response.content = orjson.dumps(shape(response.status_code, error))
    return response
