"""What every provider shares: the deployment target, the upstream request, the error type, stream framing, and
the builders of the OpenAI-shaped responses, chunks and usage the gateway hands back to clients.

Pure Python (plus orjson): no Django, no network. The gateway sends an `UpstreamRequest` with its own client,
then gives the answer back to the provider to parse.
"""

import base64
import math
import os
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal, Protocol

import orjson

CallType = Literal["chat", "completion", "embedding"]

# Anything a provider reads from an upstream's JSON can be missing or of the wrong type; these are what that raises.
SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)


@dataclass(frozen=True, slots=True)
class Target:
    """What a provider needs to know about one deployment."""

    provider: str
    model: str
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes


class ProviderError(Exception):
    """An upstream answered with an error or with something we cannot parse (or a deployment cannot be called)."""

    def __init__(self, status: int, message: str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ProviderError({self.status}, {self.message!r}, retryable={self.retryable})"


# The gateway's own client, lent to `Provider.authorization`: sends a request, answers with an httpx.Response.
Send = Callable[[UpstreamRequest], Awaitable[Any]]


class StreamParser(Protocol):
    """Turns an upstream's stream, however its bytes were cut, into OpenAI chunks (one parser per stream).

    The last chunk of a complete stream has `choices: []` and the normalized usage, whatever the client asked.
    `usage` is set as soon as it is known (Anthropic and SageMaker: from the start, growing); `done` becomes True
    at the upstream's end marker, so False after `finish()` means the stream was cut short.
    """

    usage: dict | None
    done: bool

    def feed(self, data: bytes) -> list[dict]: ...

    def finish(self) -> list[dict]: ...


class Provider:
    """One upstream protocol. Instances are stateless and shared by every request.

    The gateway checks `call_type in call_types`, then either answers with `local_response` (local providers) or
    sends `build_request(...)` (which raises ProviderError for a deployment that cannot be called). A whole answer
    goes to `parse_response`. A stream with a non-2xx status is read whole and goes to `parse_response` too (it
    raises); otherwise its decoded body bytes go to a fresh `stream_parser`, with `finish()` at EOF.
    """

    name: ClassVar[str]
    call_types: ClassVar[frozenset[str]]
    local: ClassVar[bool] = False
    # LiteLLM's environment variables for a deployment that names no key or api_base: the first one set wins.
    api_key_env: tuple[str, ...] = ()
    api_base_env: tuple[str, ...] = ()

    # Set by a provider whose credentials come from the network (Vertex AI's OAuth access tokens): the gateway
    # awaits `authorization` before each call and adds the headers it returns to the built request.
    fetches_credentials: ClassVar[bool] = False

    async def authorization(self, target: Target, send: Send) -> dict[str, str]:
        raise NotImplementedError

    def environment_api_key(self) -> str | None:
        return _first_set(self.api_key_env)

    def environment_api_base(self) -> str | None:
        return _first_set(self.api_base_env)

    def build_request(self, target: Target, call_type: CallType, payload: dict, stream: bool) -> UpstreamRequest:
        raise NotImplementedError

    def parse_response(
        self, target: Target, call_type: CallType, payload: dict, status: int, body: bytes, headers: Mapping[str, str]
    ) -> dict:
        if not 200 <= status < 300:
            raise self.error_from_response(status, body, headers)
        data = decode_json(body)
        try:
            return self.parse_success(target, call_type, payload, data)
        except SHAPE_ERRORS as exc:
            raise unexpected_shape(self.name, exc) from exc

    def error_from_response(self, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
        return ProviderError(status, upstream_message(body, status), is_retryable(status), retry_after(headers))

    def parse_success(self, target: Target, call_type: CallType, payload: dict, data: Any) -> dict:
        raise NotImplementedError

    def stream_parser(self, target: Target, call_type: CallType, payload: dict) -> StreamParser:
        raise NotImplementedError

    def local_response(self, target: Target, call_type: CallType, payload: dict, stream: bool) -> dict | list[dict]:
        raise NotImplementedError(f"{self.name} calls an upstream; only local providers answer by themselves")


def _first_set(names: tuple[str, ...]) -> str | None:
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


# --- errors -------------------------------------------------------------------------------------------------


def is_retryable(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


def config_error(provider: str, message: str) -> ProviderError:
    """The deployment itself cannot be called (missing api_base, credentials...): not the client's fault."""
    return ProviderError(500, f"{provider}: {message}", retryable=False)


def bad_request(provider: str, message: str) -> ProviderError:
    return ProviderError(400, f"{provider}: {message}", retryable=False)


def unexpected_shape(provider: str, exc: Exception) -> ProviderError:
    return ProviderError(502, f"{provider}: unexpected upstream response ({type(exc).__name__}: {exc})", True)


def decode_json(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProviderError(502, f"upstream sent malformed JSON: {exc}", retryable=True) from exc


def upstream_message(body: bytes, status: int) -> str:
    """The upstream's own words: error.message, error, message, Message or detail; else the raw body."""
    try:
        found = _message_in(orjson.loads(body))
    except orjson.JSONDecodeError:
        found = None
    return found or body.decode("utf-8", "replace").strip()[:2000] or f"upstream answered HTTP {status}"


def _message_in(data: Any) -> str | None:
    if isinstance(data, list) and data:
        return _message_in(data[0])
    if not isinstance(data, dict):
        return None
    for key in ("error", "message", "Message", "OriginalMessage", "detail"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict | list) and (found := _message_in(value)):
            return found
    return None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that works for plain dicts as well as httpx/aiohttp header objects."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    millis = _seconds(header(headers, "retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = header(headers, "retry-after")
    seconds = _seconds(value)
    if seconds is not None or value is None:
        return seconds
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def _seconds(value: str | None) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return max(number, 0.0) if math.isfinite(number) else None


# --- usage ----------------------------------------------------------------------------------------------------


def make_usage(
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cached_tokens: int | None = None,
    cache_creation_tokens: int = 0,
    reasoning_tokens: int | None = None,
    prompt_audio_tokens: int | None = None,
    completion_audio_tokens: int | None = None,
) -> dict:
    """Normalized usage in OpenAI's shape; `prompt_tokens` already includes cache reads and cache writes."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    details = _known(cached_tokens=cached_tokens, audio_tokens=prompt_audio_tokens)
    if details:
        usage["prompt_tokens_details"] = details
    details = _known(reasoning_tokens=reasoning_tokens, audio_tokens=completion_audio_tokens)
    if details:
        usage["completion_tokens_details"] = details
    if cache_creation_tokens:
        usage["cache_creation_input_tokens"] = cache_creation_tokens
    return usage


def _known(**counts: int | None) -> dict[str, int]:
    return {name: count for name, count in counts.items() if count is not None}


def normalize_openai_usage(raw: Mapping[str, Any]) -> dict:
    """OpenAI's own usage is already normalized; other OpenAI-compatible servers leave gaps or add dialects."""
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    cached = prompt_details.get("cached_tokens")
    if cached is None:
        cached = raw.get("prompt_cache_hit_tokens")  # DeepSeek's spelling
    usage = make_usage(
        int(raw.get("prompt_tokens") or 0),
        int(raw.get("completion_tokens") or 0),
        cached_tokens=cached,
        cache_creation_tokens=int(raw.get("cache_creation_input_tokens") or 0),
        reasoning_tokens=completion_details.get("reasoning_tokens"),
        prompt_audio_tokens=prompt_details.get("audio_tokens"),
        completion_audio_tokens=completion_details.get("audio_tokens"),
    )
    for name in ("accepted_prediction_tokens", "rejected_prediction_tokens"):
        if isinstance(completion_details.get(name), int):
            usage.setdefault("completion_tokens_details", {})[name] = completion_details[name]
    _perplexity_counts(raw, usage)
    return usage


def _perplexity_counts(raw: Mapping[str, Any], usage: dict) -> None:
    """Perplexity's own counts, kept for pricing.charges: searches, their context size, citation tokens; and its
    reasoning tokens, which it counts outside completion_tokens, moved inside them as OpenAI counts them."""
    reasoning = raw.get("reasoning_tokens")
    if (
        isinstance(reasoning, int)
        and reasoning > 0
        and "reasoning_tokens" not in usage.get("completion_tokens_details", {})
    ):
        usage["completion_tokens"] += reasoning
        usage["total_tokens"] += reasoning
        usage.setdefault("completion_tokens_details", {})["reasoning_tokens"] = reasoning
    for name in ("num_search_queries", "citation_tokens"):
        if isinstance(raw.get(name), int):
            usage[name] = raw[name]
    if isinstance(raw.get("search_context_size"), str):
        usage["search_context_size"] = raw["search_context_size"]


def estimate_tokens(text: str) -> int:
    """For upstreams that report no usage: one token per four characters, rounded up (OpenAI's rule of thumb)."""
    return math.ceil(len(text) / 4)


# --- OpenAI shapes --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Envelope:
    """The id, creation time and model that every response or chunk of one call carries, and their shapes.

    Providers speak in chat terms (a message, a delta); for a text completion the envelope keeps only the text.
    """

    call_type: CallType
    model: str
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if not self.id:
            self.id = ("cmpl-" if self.call_type == "completion" else "chatcmpl-") + uuid.uuid4().hex

    @property
    def _object(self) -> str:
        return "text_completion" if self.call_type == "completion" else "chat.completion.chunk"

    def response(self, message: dict, finish_reason: str, usage: dict) -> dict:
        if self.call_type == "completion":
            choice = {"index": 0, "text": message.get("content") or "", "logprobs": None}
            obj = "text_completion"
        else:
            choice = {"index": 0, "message": message, "logprobs": None}
            obj = "chat.completion"
        choice["finish_reason"] = finish_reason
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": usage,
        }

    def chunk(self, delta: dict, finish_reason: str | None = None) -> dict:
        if self.call_type == "completion":
            choice = {"index": 0, "text": delta.get("content") or "", "logprobs": None, "finish_reason": finish_reason}
        else:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {
            "id": self.id,
            "object": self._object,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }

    def usage_chunk(self, usage: dict) -> dict:
        """The last chunk of a stream asked with `stream_options.include_usage`: no choices, only usage."""
        return {
            "id": self.id,
            "object": self._object,
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        }


def embedding_list(vectors: list[list[float]], model: str, usage: dict, encoding_format: str | None) -> dict:
    """OpenAI's embedding response; `base64` packs little-endian float32s, as the openai SDK asks by default."""
    if encoding_format == "base64":
        encoded: list = [base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode("ascii") for v in vectors]
    else:
        encoded = vectors
    data = [{"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(encoded)]
    return {"object": "list", "data": data, "model": model, "usage": usage}


def message_text(content: Any) -> str:
    """The text of an OpenAI message content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def messages_to_prompt(messages: list[dict]) -> str:
    """A plain-text transcript for upstreams that take one prompt string.

    A lone user message is sent as it is; a conversation becomes "Role: text" paragraphs ending in "Assistant:",
    so the model continues as the assistant.
    """
    if len(messages) == 1 and messages[0].get("role") == "user":
        return message_text(messages[0].get("content"))
    lines = [f"{str(m.get('role', 'user')).capitalize()}: {message_text(m.get('content'))}" for m in messages]
    return "\n\n".join([*lines, "Assistant:"])


def completion_prompt(payload: dict) -> str:
    """The prompt of a /completions request (a string, or a list holding one)."""
    prompt = payload.get("prompt", "")
    if isinstance(prompt, list):
        return "\n".join(str(p) for p in prompt)
    return str(prompt)


def max_output_tokens(payload: dict) -> int | None:
    return payload.get("max_completion_tokens") or payload.get("max_tokens")


def stop_sequences(payload: dict) -> list[str]:
    stop = payload.get("stop")
    if not stop:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def tool_arguments(provider: str, function: dict) -> Any:
    """The arguments of an OpenAI tool call (a JSON string) as the object other APIs want."""
    try:
        return orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError as exc:
        raise bad_request(provider, f"tool call {function.get('name')!r} has arguments that are not JSON") from exc


def without_system(messages: list[dict], blocks: Callable[[Any], list]) -> tuple[list, list[dict]]:
    """The system (and developer) messages' content, spelled by `blocks`, apart from the conversation's other
    messages: Anthropic, Bedrock and Gemini take the system prompt beside the turns, not among them."""
    system: list = []
    conversation = []
    for message in messages:
        if message.get("role") in ("system", "developer"):
            system.extend(blocks(message.get("content")))
        else:
            conversation.append(message)
    return system, conversation


def add_turn(turns: list[dict], role: str, content_key: str, content: list) -> None:
    """Append a turn, or extend the last one when it has the same role: consecutive OpenAI messages of one role (tool
    results, say) become one turn of Anthropic's or Gemini's, whose content is a list under `content_key`."""
    if turns and turns[-1]["role"] == role:
        turns[-1][content_key].extend(content)
    else:
        turns.append({"role": role, content_key: content})


def json_headers(**more: str | None) -> dict[str, str]:
    return {"Content-Type": "application/json", **{name: value for name, value in more.items() if value}}


def with_extra_headers(headers: dict[str, str], target: Target) -> dict[str, str]:
    """LiteLLM's `extra_headers` deployment parameter: sent as given, after ours."""
    extra = target.extra.get("extra_headers")
    if isinstance(extra, Mapping):
        headers.update({str(k): str(v) for k, v in extra.items()})
    return headers


# --- stream framing -------------------------------------------------------------------------------------------


class LineStream:
    """Splits bytes into lines however they were cut in transit, and hands each complete line to `_line`."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.usage: dict | None = None
        self.done = False
        self._partial = bytearray()
        self._error: ProviderError | None = None  # a bad line met after good chunks of the same read

    def feed(self, data: bytes) -> list[dict]:
        self._raise_pending()
        if b"\n" not in data:
            self._partial += data
            return []
        lines = (bytes(self._partial) + data).split(b"\n")
        self._partial = bytearray(lines.pop())
        return self._lines(lines, keep_parsed=True)

    def finish(self) -> list[dict]:
        """At EOF: a last line without its newline still counts, but a JSON fragment only says the stream was cut
        (and `done` stays False)."""
        self._raise_pending()
        rest, self._partial = bytes(self._partial), bytearray()
        try:
            return self._lines([rest, b""] if rest else [b""])
        except ProviderError as error:
            if isinstance(error.__cause__, orjson.JSONDecodeError):
                return []
            raise

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def _lines(self, lines: list[bytes], keep_parsed: bool = False) -> list[dict]:
        """The chunks of complete lines. With `keep_parsed`, a bad line after good ones lets those through first
        (they were sent upstream and are charged): the error is raised by the next feed() or finish()."""
        chunks: list[dict] = []
        try:
            for line in lines:
                chunks.extend(self._line(line.rstrip(b"\r")))
        except SHAPE_ERRORS as exc:
            error = unexpected_shape(self.provider, exc)
            error.__cause__ = exc
        except ProviderError as exc:
            error = exc
        else:
            return chunks
        if not (keep_parsed and chunks):
            raise error
        self._error = error
        return chunks

    def _line(self, line: bytes) -> list[dict]:
        raise NotImplementedError


class SSEStream(LineStream):
    """Server-sent events: `event:` and `data:` lines, dispatched to `_event` at each blank line."""

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self._event_name = ""
        self._data: list[str] = []

    def _line(self, line: bytes) -> list[dict]:
        if not line:
            if not self._data:
                return []
            name, data = self._event_name, "\n".join(self._data)
            self._event_name, self._data = "", []
            return [] if self.done else self._event(name, data)
        text = line.decode("utf-8")
        field_name, _, value = text.partition(":")
        value = value.removeprefix(" ")
        if field_name == "data":
            self._data.append(value)
        elif field_name == "event":
            self._event_name = value
        return []

    def _event(self, name: str, data: str) -> list[dict]:
        raise NotImplementedError


class JSONLineStream(LineStream):
    """A JSON object a line (NDJSON, or TGI's `data:{...}` events), each turned into chunks by `_event`.

    Chat streams open with the assistant role; an `{"error": ...}` line ends the stream with a ProviderError.
    """

    def __init__(self, provider: str, target: Target, call_type: CallType) -> None:
        super().__init__(provider)
        self.envelope = Envelope(call_type, target.model)
        self._opened = call_type != "chat"

    def _line(self, line: bytes) -> list[dict]:
        line = line.strip().removeprefix(b"data:").strip()
        if self.done or not line.startswith(b"{"):
            return []
        event = decode_json(line)
        if "error" in event:
            raise ProviderError(500, str(event["error"]), retryable=True)
        chunks = [] if self._opened else [self.envelope.chunk({"role": "assistant", "content": ""})]
        self._opened = True
        return chunks + self._event(event)

    def _event(self, event: dict) -> list[dict]:
        raise NotImplementedError
