"""Amazon Bedrock's Converse API (`/model/{modelId}/converse` and `/converse-stream`), translated from and to OpenAI
chat completions; embeddings through `/model/{modelId}/invoke` (Titan and Cohere). Requests are signed with SigV4
(service `bedrock`, gateway.providers.aws), or carry a Bedrock API key as a bearer token when the deployment has
an `api_key` (LiteLLM's AWS_BEARER_TOKEN_BEDROCK).

Model ids are LiteLLM's: `bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0`, a cross-region profile
(`bedrock/us.anthropic...`), an ARN, or the same behind LiteLLM's route prefix (`bedrock/converse/...`,
`bedrock/invoke/...`), which selects how LiteLLM calls the model, not which model: both are served by Converse here.

Bedrock counts `inputTokens` without the cache, as Anthropic does: the prompt is input + cache reads + cache writes.
The OpenAI-format extensions the Anthropic provider takes (its module says which) are Converse's here: a
`cache_control` becomes a cachePoint after its block or tool, `thinking` goes in additionalModelRequestFields, thinking
blocks are reasoningContent (signature kept), a `document` part a Converse document (PDF or text).
Streams answer in AWS's binary event-stream framing, one JSON event a message: messageStart, contentBlockStart/
Delta/Stop, messageStop (the stop reason), then metadata (the usage), which ends the stream.
"""

import base64
import re
from typing import Any
from urllib.parse import quote

import orjson

from gateway.providers import anthropic, base
from gateway.providers.aws import AWSProvider, EventStreamDecoder, region, stream_exception
from gateway.providers.base import CallType, Envelope, ProviderError, Target, UpstreamRequest

ROUTE_PREFIXES = ("converse/", "invoke/")

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

# The HTTP status of each exception Bedrock can send inside a stream (its `:exception-type`).
STREAM_EXCEPTION_STATUS = {
    "validationException": 400,
    "throttlingException": 429,
    "modelStreamErrorException": 424,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
}

IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
CACHE_POINT = {"cachePoint": {"type": "default"}}
STOP_SEQUENCE_PATH = "/stop_sequence"  # Claude's own response field, asked of Converse by its JSON pointer
# What Converse refuses in a document's name (it takes letters, digits, single spaces, hyphens, parentheses and
# square brackets): each run of it becomes one space.
DOCUMENT_NAME = re.compile(r"[^A-Za-z0-9\-()\[\]]+")
JSON_TOOL = "json_tool_call"  # LiteLLM's name for the tool that carries a response_format
ANY_OBJECT = {"type": "object", "additionalProperties": True, "properties": {}}


class BedrockProvider(AWSProvider):
    name = "bedrock"
    signing_service = "bedrock"
    call_types = frozenset({"chat", "embedding"})
    api_key_env = ("AWS_BEARER_TOKEN_BEDROCK",)

    def build_request(self, target: Target, call_type: CallType, payload: dict, stream: bool) -> UpstreamRequest:
        model = model_id(target.model)
        if call_type == "embedding":
            url, body = self._url(target, model, "invoke"), orjson.dumps(embedding_body(model, payload))
        else:
            url, body = self._url(target, model, "converse-stream" if stream else "converse"), converse_body(payload)
        if target.api_key:
            headers = base.with_extra_headers(base.json_headers(Authorization=f"Bearer {target.api_key}"), target)
            return UpstreamRequest("POST", url, headers, body)
        return self.signed_request(target, url, {"Content-Type": "application/json"}, body)

    def _url(self, target: Target, model: str, action: str) -> str:
        root = target.api_base or f"https://bedrock-runtime.{region(target, self.default_region)}.amazonaws.com"
        # ":" (in every versioned model id and ARN) goes as it is: the gateway's aiohttp pool would decode a "%3A"
        # before sending, and AWS signs the path that arrives. A "/" (in an ARN) stays encoded.
        return f"{root.rstrip('/')}/model/{quote(model, safe=':')}/{action}"

    def parse_success(self, target: Target, call_type: CallType, payload: dict, data: Any) -> dict:
        if call_type == "embedding":
            return parse_embeddings(target, payload, data)
        text, thinking, tool_calls = [], [], []
        for block in data["output"]["message"]["content"]:
            if "text" in block:
                text.append(block["text"])
            elif "reasoningContent" in block:
                thinking.append(_thinking_block(block["reasoningContent"]))
            elif "toolUse" in block:
                use = block["toolUse"]
                function = {"name": use["name"], "arguments": orjson.dumps(use["input"]).decode()}
                tool_calls.append({"id": use["toolUseId"], "type": "function", "function": function})
        reason = FINISH_REASONS.get(data.get("stopReason"), "stop")
        json_tool = _json_tool_name(payload)
        if json_tool and [call["function"]["name"] for call in tool_calls] == [json_tool]:
            text, tool_calls, reason = [tool_calls[0]["function"]["arguments"]], [], "stop"
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not tool_calls else None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        if thinking:
            message["reasoning_content"] = "".join(block.get("thinking", "") for block in thinking)
            message["thinking_blocks"] = thinking
        response = Envelope("chat", target.model).response(message, reason, usage(data["usage"]))
        if sequence := _stop_sequence(data):
            response["choices"][0]["stop_sequence"] = sequence
        return response

    def stream_parser(self, target: Target, call_type: CallType, payload: dict) -> "BedrockStream":
        return BedrockStream(target, _json_tool_name(payload))


def model_id(model: str) -> str:
    """The model id Bedrock knows, without LiteLLM's route prefix."""
    return next((model.removeprefix(prefix) for prefix in ROUTE_PREFIXES if model.startswith(prefix)), model)


def _thinking_block(reasoning: dict) -> dict:
    """Converse's reasoningContent as the Anthropic provider's thinking block."""
    if "redactedContent" in reasoning:
        return {"type": "redacted_thinking", "data": reasoning["redactedContent"]}
    text = reasoning.get("reasoningText") or {}
    return {"type": "thinking", "thinking": text.get("text") or "", "signature": text.get("signature") or ""}


def usage(raw: dict) -> dict:
    return anthropic.usage(raw, ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens"))


# --- request --------------------------------------------------------------------------------------------------


def converse_body(payload: dict) -> bytes:
    system, messages = anthropic.turns(payload["messages"], _blocks, _tool_result, _tool_use, _thinking)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    inference = {
        "maxTokens": base.max_output_tokens(payload),
        "temperature": payload.get("temperature"),
        "topP": payload.get("top_p"),
        "stopSequences": base.stop_sequences(payload) or None,
    }
    inference = {key: value for key, value in inference.items() if value is not None}
    if inference:
        body["inferenceConfig"] = inference
    tools, choice = payload.get("tools"), payload.get("tool_choice")
    if (answer_tool := _json_tool(payload)) is not None:
        tools, choice = [*(tools or ()), answer_tool], {"type": "function", "function": answer_tool["function"]}
    tool_config = _tool_config(tools, choice)
    if tool_config:
        body["toolConfig"] = tool_config
    extra = {key: payload[key] for key in ("top_k", "thinking") if payload.get(key) is not None}
    if extra:  # model-specific fields Converse passes through to the model (Anthropic's top_k and thinking)
        body["additionalModelRequestFields"] = extra
    if inference.get("stopSequences") and "anthropic" in str(payload.get("model")):
        body["additionalModelResponseFieldPaths"] = [STOP_SEQUENCE_PATH]  # which one ended the answer, if one did
    return orjson.dumps(body)


def _stop_sequence(event: dict) -> str | None:
    """The stop sequence that ended a Claude answer, which Converse gives only when asked for its field path."""
    sequence = (event.get("additionalModelResponseFields") or {}).get("stop_sequence")
    return sequence if isinstance(sequence, str) else None


def _json_tool(payload: dict) -> dict | None:
    """A `response_format` as LiteLLM sends it to Converse, which has none: one tool the model is made to call,
    whose input is the answer (given back as the message content)."""
    answer = payload.get("response_format")
    if not isinstance(answer, dict) or answer.get("type") not in ("json_schema", "json_object"):
        return None
    spec = (answer.get("json_schema") or {}) if answer["type"] == "json_schema" else {}
    function = {"name": spec.get("name") or JSON_TOOL, "parameters": spec.get("schema") or ANY_OBJECT}
    if spec.get("description"):
        function["description"] = spec["description"]
    return {"type": "function", "function": function}


def _json_tool_name(payload: dict) -> str | None:
    tool = _json_tool(payload)
    return tool["function"]["name"] if tool else None


def _tool_result(message: dict) -> list[dict]:
    content = [{"text": base.message_text(message.get("content"))}]
    return _cached({"toolResult": {"toolUseId": message.get("tool_call_id"), "content": content}}, message)


def _cached(block: dict, source: dict) -> list[dict]:
    """`block`, and the cachePoint after it that an OpenAI-format `cache_control` on its `source` asks for."""
    return [block, CACHE_POINT] if source.get("cache_control") else [block]


def _thinking(block: dict) -> dict:
    if block.get("type") == "redacted_thinking":
        return {"reasoningContent": {"redactedContent": block.get("data")}}
    text = {"text": block.get("thinking") or "", "signature": block.get("signature") or ""}
    return {"reasoningContent": {"reasoningText": text}}


def _blocks(content: Any) -> list[dict]:
    if not content:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    blocks: list[dict] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):  # Converse rejects empty text blocks
                blocks.append({"text": part["text"]})
        elif kind == "image_url":
            image = part["image_url"]
            blocks.append(_image(image["url"] if isinstance(image, dict) else image))
        elif kind == "document":
            blocks.append(_document(part, len(blocks)))
        else:
            raise base.bad_request("bedrock", f"unsupported content part type {kind!r}")
        if "cache_control" in part:
            blocks.append(CACHE_POINT)
    return blocks


def _document(part: dict, position: int) -> dict:
    """Anthropic's document block (a base64 PDF, or plain text) as Converse's, which needs a name of its own."""
    source = part.get("source") or {}
    if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
        document = {"format": "pdf", "source": {"bytes": source.get("data")}}
    elif source.get("type") == "text":
        data = base64.b64encode(str(source.get("data") or "").encode()).decode()
        document = {"format": "txt", "source": {"bytes": data}}
    else:
        raise base.bad_request("bedrock", "documents must be base64 PDFs or plain text")
    document["name"] = DOCUMENT_NAME.sub(" ", str(part.get("title") or f"document {position + 1}"))[:200].strip()
    return {"document": document}


def _image(url: str) -> dict:
    """Converse takes image bytes only; fetching a URL is the client's job (it would block a proxy worker)."""
    media_type, separator, data = url.removeprefix("data:").partition(";base64,")
    if not url.startswith("data:") or not separator or media_type not in IMAGE_FORMATS:
        raise base.bad_request("bedrock", "images must be base64 data: URLs of PNG, JPEG, GIF or WebP")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise base.bad_request("bedrock", "an image data: URL is not valid base64") from exc
    # Bedrock's JSON wire format carries blob fields base64-encoded: re-encoding canonicalizes what the client sent.
    return {"image": {"format": IMAGE_FORMATS[media_type], "source": {"bytes": base64.b64encode(raw).decode()}}}


def _tool_use(call: dict) -> list[dict]:
    arguments = base.tool_arguments("bedrock", call["function"])
    return _cached({"toolUse": {"toolUseId": call["id"], "name": call["function"]["name"], "input": arguments}}, call)


def _tool_config(tools: list[dict] | None, choice: Any) -> dict | None:
    if choice == "none":
        raise base.bad_request("bedrock", "Converse has no tool_choice 'none': leave the tools out instead")
    if not tools:
        return None
    specs = []
    for tool in tools:
        function = tool["function"]
        spec = {"name": function["name"], "inputSchema": {"json": function.get("parameters") or {"type": "object"}}}
        if function.get("description"):
            spec["description"] = function["description"]
        specs += _cached({"toolSpec": spec}, tool)
    config: dict[str, Any] = {"tools": specs}
    if isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


# --- embeddings -----------------------------------------------------------------------------------------------


def embedding_body(model: str, payload: dict) -> dict:
    """Titan embeds one text per call; Cohere a list of them."""
    inputs = payload.get("input")
    texts = [inputs] if isinstance(inputs, str) else list(inputs or ())
    if not texts or not all(isinstance(text, str) for text in texts):
        raise base.bad_request("bedrock", "embedding input must be a string or a list of strings")
    if "cohere." in model:
        return {"texts": texts, "input_type": payload.get("input_type") or "search_document"}
    if len(texts) != 1:
        raise base.bad_request("bedrock", f"{model} embeds one input per request, not {len(texts)}")
    body: dict[str, Any] = {"inputText": texts[0]}
    if payload.get("dimensions"):
        body["dimensions"] = payload["dimensions"]
    return body


def parse_embeddings(target: Target, payload: dict, data: dict) -> dict:
    if "embedding" in data:  # Titan, which counts its input
        vectors, prompt_tokens = [data["embedding"]], data["inputTextTokenCount"]
    else:  # Cohere, which does not: estimated as for other upstreams that report no usage
        vectors = data["embeddings"]
        prompt_tokens = sum(
            base.estimate_tokens(text) for text in embedding_body(model_id(target.model), payload)["texts"]
        )
    return base.embedding_list(vectors, target.model, base.make_usage(prompt_tokens, 0), payload.get("encoding_format"))


# --- streaming ------------------------------------------------------------------------------------------------


class BedrockStream:
    """Event-stream messages -> Converse stream events -> OpenAI chunks. The metadata event, after messageStop,
    carries the usage and ends the stream."""

    def __init__(self, target: Target, json_tool: str | None = None) -> None:
        self.usage: dict | None = None
        self.done = False
        self._decoder = EventStreamDecoder("bedrock")
        self._envelope = Envelope("chat", target.model)
        self._tool_index: dict[int, int] = {}  # content block index -> OpenAI tool call index
        self._json_tool = json_tool  # the tool carrying a response_format: its input streams as the content
        self._json_block: int | None = None

    def feed(self, data: bytes) -> list[dict]:
        chunks: list[dict] = []
        for headers, payload in self._decoder.feed(data):
            if headers.get(":message-type") != "event":
                raise stream_exception("bedrock", headers, payload, STREAM_EXCEPTION_STATUS)
            if not self.done:
                chunks.extend(self._event(headers.get(":event-type"), base.decode_json(payload or b"{}")))
        return chunks

    def finish(self) -> list[dict]:
        return []

    def _event(self, kind: str | None, event: dict) -> list[dict]:
        try:
            return self._translate(kind, event)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProviderError(502, f"bedrock: unexpected {kind} event ({type(exc).__name__}: {exc})", True) from exc

    def _translate(self, kind: str | None, event: dict) -> list[dict]:
        if kind == "messageStart":
            return [self._envelope.chunk({"role": "assistant", "content": ""})]
        if kind == "contentBlockStart":
            start = event["start"].get("toolUse")
            if start is None:
                return []
            if start["name"] == self._json_tool:
                self._json_block = event["contentBlockIndex"]
                return []
            position = self._tool_index[event["contentBlockIndex"]] = len(self._tool_index)
            call = {"index": position, "id": start["toolUseId"], "type": "function"}
            call["function"] = {"name": start["name"], "arguments": ""}
            return [self._envelope.chunk({"tool_calls": [call]})]
        if kind == "contentBlockDelta":
            return self._delta(event["contentBlockIndex"], event["delta"])
        if kind == "messageStop":
            reason = FINISH_REASONS.get(event.get("stopReason"), "stop")
            chunk = self._envelope.chunk({}, "stop" if self._json_block is not None else reason)
            if sequence := _stop_sequence(event):
                chunk["choices"][0]["stop_sequence"] = sequence
            return [chunk]
        if kind == "metadata":
            self.usage = usage(event.get("usage") or {})
            self.done = True
            return [self._envelope.usage_chunk(self.usage)]
        return []  # contentBlockStop, and events Converse may add

    def _delta(self, index: int, delta: dict) -> list[dict]:
        if "text" in delta:
            return [self._envelope.chunk({"content": delta["text"]})]
        if "toolUse" in delta and index == self._json_block:
            return [self._envelope.chunk({"content": delta["toolUse"]["input"]})]
        if "toolUse" in delta:
            call = {"index": self._tool_index[index], "function": {"arguments": delta["toolUse"]["input"]}}
            return [self._envelope.chunk({"tool_calls": [call]})]
        reasoning = delta.get("reasoningContent") or {}
        if reasoning.get("text"):
            return [self._envelope.chunk({"reasoning_content": reasoning["text"]})]
        if reasoning.get("signature"):
            block = {"type": "thinking", "signature": reasoning["signature"]}
            return [self._envelope.chunk({"thinking_blocks": [block]})]
        if reasoning.get("redactedContent"):
            block = {"type": "redacted_thinking", "data": reasoning["redactedContent"]}
            return [self._envelope.chunk({"thinking_blocks": [block]})]
        return []
