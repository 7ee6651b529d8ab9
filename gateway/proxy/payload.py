"""Checking a client's OpenAI request body before anything else happens: bad input changes nothing."""

from dataclasses import dataclass

import orjson

from gateway.proxy.errors import BadRequest, PayloadTooLarge
from keys.api.tag_serializers import MAX_TAG_LENGTH

_REQUIRED_INPUT = {"chat": "messages", "completion": "prompt", "embedding": "input"}
_NUMBER_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_COUNT_PARAMS = ("max_tokens", "max_completion_tokens", "n", "best_of")
# Far above any model's output limit; larger values are typos or attacks, not requests.
_MAX_TOKENS_CEILING = 10_000_000
# No embedding model has more; an unbounded value would let one request allocate any amount of memory.
_MAX_DIMENSIONS = 65_536


def parse_payload(
    body: bytes, call_type: str, max_bytes: int, default_model: str = "", translate=None, check=None
) -> dict:
    """The checked payload of a request body. `check` is given the body as the client sent it (a key's enforced
    params name what the client sends); `translate` then turns another API's body (a front's: Anthropic's Messages,
    OpenAI's Responses) into a chat payload, so that it is checked as any chat call is."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"Request body is {len(body)} bytes; the limit is {max_bytes} bytes.")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise BadRequest("Request body must be a JSON object.", code="invalid_json")
    if check is not None:
        check(payload)
    if translate is not None:
        payload = translate(payload)
    if default_model and "model" not in payload:
        payload["model"] = default_model
    model = payload.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("'model' is required and must be a non-empty string.", param="model", code="missing_model")
    required = _REQUIRED_INPUT[call_type]
    value = payload.get(required)
    if call_type == "chat":
        _check_messages(value)
    elif not _is_text_input(value):
        raise BadRequest(
            f"'{required}' is required: a string, a list of strings, or a list of token ids.",
            param=required,
            code="invalid_value",
        )
    stream = payload.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean.", param="stream", code="invalid_type")
    if stream and call_type == "embedding":
        raise BadRequest("Embeddings cannot be streamed.", param="stream", code="invalid_value")
    stream_options = payload.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise BadRequest("'stream_options' must be an object.", param="stream_options", code="invalid_type")
    for name in _COUNT_PARAMS:
        count = payload.get(name)
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
            raise BadRequest(f"'{name}' must be a non-negative integer.", param=name, code="invalid_type")
        if isinstance(count, int) and count > _MAX_TOKENS_CEILING:
            raise BadRequest(
                f"'{name}' is too large (at most {_MAX_TOKENS_CEILING}).", param=name, code="invalid_value"
            )
    dimensions = payload.get("dimensions")
    if dimensions is not None and (
        not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= _MAX_DIMENSIONS
    ):
        raise BadRequest(
            f"'dimensions' must be an integer from 1 to {_MAX_DIMENSIONS}.", param="dimensions", code="invalid_type"
        )
    for name in _NUMBER_PARAMS:
        number = payload.get(name)
        if number is not None and (not isinstance(number, int | float) or isinstance(number, bool)):
            raise BadRequest(f"'{name}' must be a number.", param=name, code="invalid_type")
    _check_logged_fields(payload)
    return payload


# What the spend log keeps of a request. Checked before anything is sent upstream: a value the database cannot store
# would otherwise be found only after the provider served (and billed) the call.
_LOGGED_FIELDS = ("model", "metadata", "tags", "user")
_MAX_LOGGED_DEPTH = 32


def _check_logged_fields(payload: dict) -> None:
    metadata = payload.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise BadRequest("'metadata' must be an object.", param="metadata", code="invalid_type")
    tags = payload.get("tags")
    if tags is not None and not isinstance(tags, list):
        raise BadRequest("'tags' must be a list.", param="tags", code="invalid_type")
    for name in _LOGGED_FIELDS:
        if name in payload:
            _check_storable(payload[name], name, 0)


def _check_storable(value, param: str, depth: int) -> None:
    """Refuse what PostgreSQL's text and jsonb cannot hold (NUL characters) and documents nested past any use."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest(f"'{param}' holds a NUL character.", param=param, code="invalid_value")
    elif isinstance(value, dict | list):
        if depth >= _MAX_LOGGED_DEPTH:
            raise BadRequest(
                f"'{param}' is nested more than {_MAX_LOGGED_DEPTH} levels deep.", param=param, code="invalid_value"
            )
        for key in value if isinstance(value, dict) else ():
            _check_storable(key, param, depth + 1)
        for item in value.values() if isinstance(value, dict) else value:
            _check_storable(item, param, depth + 1)


# A call's own tags (body and x-litellm-tags header): each is a log's, a rollup row's and a tag holder's name, and
# every one is looked up and charged. Bounded, so one request cannot make its log and the tag rollups as large as
# its body allows; a tag longer than a Tag's name (MAX_TAG_LENGTH) could never have a budget.
MAX_TAGS_PER_CALL = 64


def check_call_tags(tags: list[str]) -> None:
    """Refuse (400, before anything is sent) a call carrying more tags than MAX_TAGS_PER_CALL, or a longer one."""
    if len(tags) > MAX_TAGS_PER_CALL:
        raise BadRequest(
            f"A call carries at most {MAX_TAGS_PER_CALL} tags (metadata.tags or tags, and x-litellm-tags); "
            f"this one carries {len(tags)}.",
            param="tags",
            code="invalid_value",
        )
    for tag in tags:
        if len(tag) > MAX_TAG_LENGTH:
            raise BadRequest(
                f"A tag is at most {MAX_TAG_LENGTH} characters; one here has {len(tag)}.",
                param="tags",
                code="invalid_value",
            )


# Where a call names its end user (LiteLLM's customer), first match wins, as LiteLLM reads them: two headers, the
# OpenAI `user` field, then the metadata fields Anthropic-style and generic clients use.
END_USER_HEADERS = ("x-litellm-customer-id", "x-litellm-end-user-id")
_END_USER_FIELDS = (("user",), ("litellm_metadata", "user"), ("metadata", "user_id"))
MAX_END_USER_LENGTH = 200  # Customer.end_user_id and SpendLog.end_user hold this many characters


def end_user_of(payload: dict, headers) -> str:
    """The call's end user ("" for none), refused with a 400 before anything is sent if it is not a string of at most
    MAX_END_USER_LENGTH characters: it is logged, and charged as a customer."""
    for name in END_USER_HEADERS:
        if value := headers.get(name):
            return _checked_end_user(value, name)
    for path in _END_USER_FIELDS:
        container = payload if len(path) == 1 else payload.get(path[0])
        if isinstance(container, dict) and container.get(path[-1]) not in (None, ""):
            return _checked_end_user(container[path[-1]], ".".join(path))
    return ""


def _checked_end_user(value, param: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_END_USER_LENGTH or "\x00" in value:
        raise BadRequest(
            f"'{param}' (the end user) must be a string of at most {MAX_END_USER_LENGTH} characters.",
            param=param,
            code="invalid_value",
        )
    return value


def _check_messages(messages) -> None:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' is required and must be a non-empty list.", param="messages", code="invalid_value")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(
                f"'messages[{index}]' must be an object with a string 'role'.",
                param=f"messages[{index}]",
                code="invalid_value",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str) and not _is_part_list(content):
            raise BadRequest(
                f"'messages[{index}].content' must be a string, null, or a list of content parts (objects with a "
                "string 'type').",
                param=f"messages[{index}].content",
                code="invalid_type",
            )


def _is_part_list(content) -> bool:
    return isinstance(content, list) and all(
        isinstance(part, dict) and isinstance(part.get("type"), str) for part in content
    )


def _is_text_input(value) -> bool:
    if isinstance(value, str):
        return True
    if isinstance(value, list) and value:
        return (
            all(isinstance(item, str) for item in value)
            or all(isinstance(item, int) and not isinstance(item, bool) for item in value)
            or all(isinstance(item, list) and all(isinstance(t, int) for t in item) for item in value)
        )
    return False


def client_wants_usage(payload: dict) -> bool:
    options = payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def estimate_prompt_tokens(payload: dict, call_type: str) -> int:
    """A rough token count (4 characters a token) for budgets and for calls the upstream never reported on.

    Reads only the call type's own input, which `parse_payload` has checked; other fields may hold anything."""
    value = payload.get(_REQUIRED_INPUT[call_type])
    if call_type == "chat":
        characters = sum(_content_characters(message.get("content")) for message in value)
    elif isinstance(value, str):
        characters = len(value)
    else:
        characters = sum(len(item) if isinstance(item, str) else 1 for item in value)
    return max(1, (characters + 3) // 4)


def _content_characters(content) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(part["text"]) for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return 0


# The most input tokens one image can be billed at. OpenAI scales an image into 2048 x 768 at most, 8 tiles of 512
# px: 85 + 170 x 8 = 1,445 tokens on gpt-4o; gpt-4.1-mini and o4-mini bill up to 1,536 32-px patches times 1.62 and
# 1.72 (2,642); Anthropic's largest image is about 1,600 tokens. gpt-4o-mini bills an image as 33 times as many
# tokens: 2,833 + 5,667 x 8.
IMAGE_TOKEN_BOUND = 2_642
_IMAGE_TOKEN_BOUNDS = (("4o-mini", 48_169),)


@dataclass(frozen=True, slots=True)
class PromptBound:
    """What a request's input can be billed at most, for any byte-level tokenizer (a token is at least one byte)."""

    text_bytes: int  # the request body's bytes less its images' data: JSON never encodes text shorter than UTF-8
    images: int

    def tokens(self, *model_names: str) -> int:
        per_image = IMAGE_TOKEN_BOUND
        for marker, bound in _IMAGE_TOKEN_BOUNDS:
            if any(marker in name for name in model_names):
                per_image = max(per_image, bound)
        return self.text_bytes + self.images * per_image


def prompt_bound(body_size: int, payload: dict, call_type: str) -> PromptBound:
    """The bound for a checked payload whose raw body was `body_size` bytes.

    The whole body counts, not only the messages' text: tool and function schemas, response_format, every content
    part, the per-message framing a provider adds (each message's JSON is longer than its framing tokens). Images are
    counted at their largest tile cost instead of by the bytes of their URL or data."""
    if call_type != "chat":
        return PromptBound(body_size, 0)
    images = image_bytes = 0
    for message in payload["messages"]:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            image = _image_data(part)
            if image is not None:
                images += 1
                image_bytes += len(image)
    return PromptBound(max(body_size - image_bytes, 1), images)


def _image_data(part: dict) -> str | None:
    """The URL or base64 data of an image part (OpenAI's image_url, Anthropic's image source), else None."""
    kind = part.get("type")
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        return url if isinstance(url, str) else ""
    if kind == "image":
        source = part.get("source")
        data = source.get("data") or source.get("url") if isinstance(source, dict) else None
        return data if isinstance(data, str) else ""
    return None
