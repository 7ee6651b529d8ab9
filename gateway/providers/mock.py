"""A provider that answers by itself, for demos, load tests and tests of everything around the upstream call.

Deterministic: the same request gets the same text, usage and embeddings (ids and `created` stay unique per call,
as a real upstream's do). A deployment may set `mock_response` to choose the reply.
"""

import hashlib
import math
import re
import struct

import orjson

from gateway.providers.base import (
    CallType,
    Envelope,
    Provider,
    Target,
    UpstreamRequest,
    completion_prompt,
    embedding_list,
    estimate_tokens,
    make_usage,
    message_text,
)

MOCK_REPLY = "This is a mock response from Tollgate."
EMBEDDING_DIMENSIONS = 1536


class MockProvider(Provider):
    name = "mock"
    call_types = frozenset({"chat", "completion", "embedding"})
    local = True

    def build_request(self, target: Target, call_type: CallType, payload: dict, stream: bool) -> UpstreamRequest:
        raise NotImplementedError("the mock provider answers through local_response, without a request")

    def local_response(self, target: Target, call_type: CallType, payload: dict, stream: bool) -> dict | list[dict]:
        if call_type == "embedding":
            return _embeddings(target, payload)
        reply = str(target.extra.get("mock_response") or MOCK_REPLY)
        if call_type == "completion":
            prompt = completion_prompt(payload)
        else:
            prompt = "".join(message_text(m.get("content")) for m in payload.get("messages", ()))
        usage = make_usage(estimate_tokens(prompt), estimate_tokens(reply))
        envelope = Envelope(call_type, target.model)
        if not stream:
            return envelope.response({"role": "assistant", "content": reply}, "stop", usage)
        chunks = [envelope.chunk({"role": "assistant", "content": ""})] if call_type == "chat" else []
        chunks += [envelope.chunk({"content": word}) for word in re.findall(r"\S+\s*", reply)]
        return [*chunks, envelope.chunk({}, "stop"), envelope.usage_chunk(usage)]


def _embeddings(target: Target, payload: dict) -> dict:
    inputs = payload.get("input", "")
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
        inputs = [inputs]  # one string, or one pre-tokenized input
    texts = [item if isinstance(item, str) else orjson.dumps(item).decode() for item in inputs]
    dimensions = int(payload.get("dimensions") or EMBEDDING_DIMENSIONS)
    usage = make_usage(sum(estimate_tokens(text) for text in texts), 0)
    vectors = [_vector(text, dimensions) for text in texts]
    return embedding_list(vectors, target.model, usage, payload.get("encoding_format"))


def _vector(text: str, dimensions: int) -> list[float]:
    """A unit vector drawn from the text's hash: equal texts embed equally, different ones almost orthogonally."""
    raw = hashlib.shake_256(text.encode()).digest(2 * dimensions)
    values = [value / 32768 for value in struct.unpack(f"<{dimensions}h", raw)]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return [value / norm for value in values]
