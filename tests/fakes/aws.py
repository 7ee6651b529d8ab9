"""The fake upstream's Amazon Bedrock: Converse (`/model/{id}/converse`), its binary event stream
(`/converse-stream`), embeddings through `/model/{id}/invoke` (Titan, Cohere), Bedrock's errors, and a check of
the SigV4 signature each call arrives with, the way AWS checks it: a call whose signature does not cover what
arrived (or that names an unknown key) is refused with a 403, as Bedrock would.
"""

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from gateway.providers.aws import canonical_request, string_to_sign

if TYPE_CHECKING:
    from tests.fakes.upstream import Answer, FakeUpstream

# The keys the fake knows, as AWS would: access key id -> secret (tests sign with these).
AWS_SECRETS = {"AKIDEXAMPLE": "secret", "AKIDLIVEBEDROCK": "bedrock-live-secret-wJalrXUtnFEMI-7f3a"}
BEDROCK_API_KEYS = frozenset({"key"})
EVENT_CONTENT_TYPE = "application/vnd.amazon.eventstream"
_CREDENTIAL = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<scope>[^,]+), SignedHeaders=(?P<names>[^,]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
_ERROR_TYPES = {400: "ValidationException", 403: "AccessDeniedException", 429: "ThrottlingException"}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def is_bedrock(path: str) -> bool:
    return path.startswith("/model/")


def bedrock_routes(up: "FakeUpstream") -> dict[str, Callable[[dict, str], "Answer"]]:
    return {
        "/model/{model}/converse": lambda request, path: converse(up, request, path),
        "/model/{model}/converse-stream": lambda request, path: converse(up, request, path),
        "/model/{model}/invoke": lambda request, path: invoke(up, request, path),
    }


def bedrock_error(status: int, message: str) -> tuple[dict, dict[str, str]]:
    """Bedrock's error body and the x-amzn-ErrorType header that names the exception."""
    kind = _ERROR_TYPES.get(status, "InternalServerException" if status < 503 else "ServiceUnavailableException")
    return {"message": message}, {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}


def signature_refusal(method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> web.Response | None:
    """None when the call is signed for what arrived (or carries a Bedrock API key); else Bedrock's 403."""
    authorization = headers.get("authorization", "")
    if authorization.startswith("Bearer ") and authorization.removeprefix("Bearer ") in BEDROCK_API_KEYS:
        return None
    match = _CREDENTIAL.match(authorization)
    if match is None or match["key"] not in AWS_SECRETS:
        return _refused("UnrecognizedClientException", "The security token included in the request is invalid.")
    date, region, service, _ = match["scope"].split("/")
    signed = {name: headers.get(name, "") for name in match["names"].split(";")}
    canonical, _ = canonical_request(method, f"http://{headers.get('host', '')}{raw_path}", signed, body)
    key = f"AWS4{AWS_SECRETS[match['key']]}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    to_sign = string_to_sign(headers.get("x-amz-date", ""), match["scope"], canonical)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if "host" not in signed or "x-amz-date" not in signed or not hmac.compare_digest(expected, match["signature"]):
        return _refused("InvalidSignatureException", "The request signature we calculated does not match.")
    return None


def _refused(kind: str, message: str) -> web.Response:
    return web.Response(
        status=403,
        body=orjson.dumps({"message": message}),
        content_type="application/json",
        headers={"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.coral.service/"},
    )


def converse(up: "FakeUpstream", request: dict, path: str) -> "Answer":
    from tests.fakes.upstream import MALFORMED_JSON, Answer

    usage = {
        "inputTokens": up.prompt_tokens - up.cached_tokens - up.cache_creation_tokens,
        "outputTokens": up.completion_tokens,
        "totalTokens": up.prompt_tokens + up.completion_tokens,
        "cacheReadInputTokens": up.cached_tokens,
        "cacheWriteInputTokens": up.cache_creation_tokens,
    }
    stop = "tool_use" if up.tool_call else _STOP_REASONS[up.finish_reason]
    if not path.endswith("-stream"):
        content = [{"text": up.reply}]
        if up.tool_call:
            use = {"toolUseId": "tooluse_fake", "name": up.tool_call["name"], "input": up.tool_call["arguments"]}
            content.append({"toolUse": use})
        message = {"role": "assistant", "content": content}
        return Answer({"output": {"message": message}, "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 9}})
    frames = [_event("messageStart", {"role": "assistant"})]
    frames += [_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": word}}) for word in up._words()]
    frames.append(_event("contentBlockStop", {"contentBlockIndex": 0}))
    if up.tool_call:
        start = {"toolUse": {"toolUseId": "tooluse_fake", "name": up.tool_call["name"]}}
        frames.append(_event("contentBlockStart", {"contentBlockIndex": 1, "start": start}))
        arguments = orjson.dumps(up.tool_call["arguments"]).decode()
        for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            frames.append(_event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": piece}}}))
        frames.append(_event("contentBlockStop", {"contentBlockIndex": 1}))
    end = [
        _event("messageStop", {"stopReason": stop}),
        _event("metadata", {"usage": usage, "metrics": {"latencyMs": 9}}),
    ]
    malformed = event(MALFORMED_JSON, "contentBlockDelta")
    return Answer(frames=frames, end=end, content_type=EVENT_CONTENT_TYPE, malformed_frame=malformed)


def invoke(up: "FakeUpstream", request: dict, path: str) -> "Answer":
    from tests.fakes.upstream import Answer

    if "cohere." in path:
        texts = request["texts"]
        vectors = up._vectors(texts)
        return Answer({"id": "fake", "embeddings": vectors, "response_type": "embeddings_floats", "texts": texts})
    [vector] = up._vectors(request["inputText"])
    return Answer({"embedding": vector, "inputTextTokenCount": up.prompt_tokens})


def _event(kind: str, payload: dict) -> bytes:
    # Bedrock pads each event with a "p" field of varying length, so sizes do not reveal the text.
    return event(orjson.dumps({**payload, "p": "abcdefghij"[: len(kind) % 10]}), kind)


def event(payload: bytes, kind: str, message_type: str = "event") -> bytes:
    """One event-stream message of Bedrock's: an event, or (`message_type` "exception") an exception of type
    `kind`."""
    from tests.fakes.upstream import event_stream_message

    type_header = ":event-type" if message_type == "event" else ":exception-type"
    headers = {type_header: kind, ":content-type": "application/json", ":message-type": message_type}
    return event_stream_message(payload, headers)
