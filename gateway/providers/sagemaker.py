"""Amazon SageMaker endpoints serving Hugging Face TGI containers, in the request shape LiteLLM sends:
`{"inputs": prompt, "parameters": {...}}` answered by `[{"generated_text": ...}]`. Requests are signed with
AWS Signature Version 4 (service `sagemaker`, gateway.providers.aws).

SageMaker reports no token counts, so usage is estimated: one token per four characters, rounded up, of the prompt
we sent and of the text we got back (TGI's `details.generated_tokens` is used instead when the container sends it).

Streams go to /invocations-response-stream, which answers in AWS's binary event-stream framing; the PayloadPart
events carry, cut at arbitrary points, TGI's server-sent events (`data:{"token": {...}}`), the last of which has
`generated_text` set.
"""

from typing import Any

import orjson

from gateway.providers.aws import AWSProvider, EventStreamDecoder, region, stream_exception, uri_encode
from gateway.providers.base import (
    CallType,
    Envelope,
    JSONLineStream,
    Target,
    UpstreamRequest,
    completion_prompt,
    estimate_tokens,
    make_usage,
    max_output_tokens,
    messages_to_prompt,
    stop_sequences,
)

STREAM_EXCEPTION_STATUS = {"ModelStreamError": 424, "InternalStreamFailure": 500}


class SageMakerProvider(AWSProvider):
    name = "sagemaker"
    signing_service = "sagemaker"
    call_types = frozenset({"chat", "completion"})

    def build_request(self, target: Target, call_type: CallType, payload: dict, stream: bool) -> UpstreamRequest:
        body: dict[str, Any] = {"inputs": _prompt(call_type, payload), "parameters": _parameters(payload)}
        if stream:
            body["stream"] = True
        base = target.api_base or f"https://runtime.sagemaker.{region(target, self.default_region)}.amazonaws.com"
        endpoint = uri_encode(target.model)
        url = f"{base.rstrip('/')}/endpoints/{endpoint}/invocations{'-response-stream' if stream else ''}"
        headers = {"Content-Type": "application/json"}
        if target.extra.get("model_id"):  # LiteLLM's name for an inference component on a shared endpoint
            headers["X-Amzn-SageMaker-Inference-Component"] = str(target.extra["model_id"])
        return self.signed_request(target, url, headers, orjson.dumps(body))

    def parse_success(self, target: Target, call_type: CallType, payload: dict, data: Any) -> dict:
        answer = data[0] if isinstance(data, list) else data
        text = answer["generated_text"] if "generated_text" in answer else answer["generation"]
        prompt = _prompt(call_type, payload)
        if prompt and text.startswith(prompt):
            text = text[len(prompt) :]  # containers run with return_full_text echo the prompt
        details = answer.get("details") or {}
        usage = make_usage(estimate_tokens(prompt), details.get("generated_tokens") or estimate_tokens(text))
        message = {"role": "assistant", "content": text}
        return Envelope(call_type, target.model).response(message, _finish_reason(details), usage)

    def stream_parser(self, target: Target, call_type: CallType, payload: dict) -> "SageMakerStream":
        return SageMakerStream(target, call_type, payload)


def _prompt(call_type: CallType, payload: dict) -> str:
    return completion_prompt(payload) if call_type == "completion" else messages_to_prompt(payload["messages"])


def _parameters(payload: dict) -> dict:
    """OpenAI parameters in TGI's terms; TGI rejects temperature 0 and top_p 1, which mean "no change" anyway."""
    parameters: dict[str, Any] = {}
    if payload.get("temperature") is not None:
        parameters["temperature"] = payload["temperature"] or 0.01
    if payload.get("top_p") is not None and 0 < payload["top_p"] < 1:
        parameters["top_p"] = payload["top_p"]
    if max_output_tokens(payload):
        parameters["max_new_tokens"] = max_output_tokens(payload)
    if stop_sequences(payload):
        parameters["stop"] = stop_sequences(payload)
    if payload.get("seed") is not None:
        parameters["seed"] = payload["seed"]
    return parameters


def _finish_reason(details: dict) -> str:
    return "length" if details.get("finish_reason") == "length" else "stop"


# --- streaming ------------------------------------------------------------------------------------------------


class SageMakerStream(JSONLineStream):
    """AWS event-stream frames -> PayloadPart bytes -> TGI event lines -> OpenAI chunks."""

    def __init__(self, target: Target, call_type: CallType, payload: dict) -> None:
        super().__init__("sagemaker", target, call_type)
        self._frames = EventStreamDecoder("sagemaker")
        self._prompt_tokens = estimate_tokens(_prompt(call_type, payload))
        self._text = ""

    def feed(self, data: bytes) -> list[dict]:
        chunks = []
        for headers, payload in self._frames.feed(data):
            if headers.get(":message-type") != "event":
                raise stream_exception("sagemaker", headers, payload, STREAM_EXCEPTION_STATUS)
            if headers.get(":event-type") == "PayloadPart":
                chunks.extend(super().feed(payload))
        return chunks

    def _event(self, event: dict) -> list[dict]:
        chunks = []
        token = event.get("token") or {}
        if token.get("text") and not token.get("special"):
            self._text += token["text"]
            chunks.append(self.envelope.chunk({"content": token["text"]}))
        details = event.get("details") or {}
        completion_tokens = details.get("generated_tokens") or estimate_tokens(self._text)
        self.usage = make_usage(self._prompt_tokens, completion_tokens)
        if event.get("generated_text") is not None:
            self.done = True
            chunks.append(self.envelope.chunk({}, _finish_reason(details)))
            chunks.append(self.envelope.usage_chunk(self.usage))
        return chunks
