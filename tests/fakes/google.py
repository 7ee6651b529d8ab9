"""Google's wire formats for the fake upstream (tests/fakes/upstream.py): Gemini's generateContent and its SSE
stream at AI Studio's and Vertex AI's paths, batchEmbedContents and Vertex's predict, Claude on Vertex (Anthropic's
format at Anthropic's publisher path), Google's error body, and an OAuth token endpoint (`/token`).

Usage is written as Google writes it from the fake's counts (given as the gateway should report them):
`promptTokenCount` includes the cache reads (`cachedContentTokenCount`), `candidatesTokenCount` excludes the
thoughts (`thoughtsTokenCount`). Every access token issued is `ya29.fake-<n>`, n counting the token requests.
"""

import uuid
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from tests.fakes.upstream import Answer, FakeUpstream

MODEL_PATHS = ("/v1beta/models/{call}", "/v1/projects/{project}/locations/{location}/publishers/google/models/{call}")
CLAUDE_PATH = "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{call}"
STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}


def is_google(path: str) -> bool:
    return path.startswith(("/v1beta/models/", "/v1/projects/")) or path == "/token"


def google_routes(up: "FakeUpstream") -> dict:
    routes: dict = {path: lambda request, path: google_answer(up, request, path) for path in MODEL_PATHS}
    routes[CLAUDE_PATH] = lambda request, path: up._anthropic(request, path)  # rawPredict, streamRawPredict
    routes["/token"] = lambda request, path: token_answer(up, request)
    return routes


def google_error(status: int, message: str, retry_delay: str | None = None) -> dict:
    error: dict[str, Any] = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "INTERNAL")}
    if retry_delay:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]
    return {"error": error}


def usage_metadata(up: "FakeUpstream") -> dict:
    candidates = up.completion_tokens - up.reasoning_tokens
    raw = {
        "promptTokenCount": up.prompt_tokens,
        "candidatesTokenCount": candidates,
        "totalTokenCount": up.prompt_tokens + up.completion_tokens,
    }
    if up.cached_tokens:
        raw["cachedContentTokenCount"] = up.cached_tokens
    if up.reasoning_tokens:
        raw["thoughtsTokenCount"] = up.reasoning_tokens
    return raw


def google_answer(up: "FakeUpstream", request: dict, path: str) -> "Answer":
    from tests.fakes.upstream import MALFORMED_JSON, Answer

    method = path.rsplit(":", 1)[-1]
    if method == "batchEmbedContents":
        vectors = up._vectors([item["content"]["parts"][0]["text"] for item in request["requests"]])
        return Answer({"embeddings": [{"values": vector} for vector in vectors]})
    if method == "predict":
        vectors = up._vectors([item["content"] for item in request["instances"]])
        share = up.prompt_tokens // max(len(vectors), 1)
        statistics = {"token_count": share, "truncated": False}
        return Answer({"predictions": [{"embeddings": {"values": v, "statistics": statistics}} for v in vectors]})
    envelope = {"modelVersion": path.rsplit("/", 1)[-1].split(":")[0], "responseId": uuid.uuid4().hex[:20]}
    finish = {"stop": "STOP", "length": "MAX_TOKENS"}[up.finish_reason]
    call_part = (
        {"functionCall": {"name": up.tool_call["name"], "args": up.tool_call["arguments"]}} if up.tool_call else None
    )
    if method == "generateContent":
        parts: list[dict] = [{"text": up.reply}]
        if up.reasoning_tokens:
            parts.insert(0, {"text": "Thinking it over.", "thought": True})
        if call_part:
            parts.append(call_part)
        candidate = {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
        return Answer({"candidates": [candidate], "usageMetadata": usage_metadata(up), **envelope})
    prompt_only = {"promptTokenCount": up.prompt_tokens, "totalTokenCount": up.prompt_tokens}
    pieces = [{"text": word} for word in up._words()]
    if call_part:
        pieces.append(call_part)
    events = [
        {"candidates": [{"content": {"role": "model", "parts": [piece]}, "index": 0}], "usageMetadata": prompt_only}
        for piece in pieces
    ]
    last = {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": finish, "index": 0}
    frames = [b"data: " + orjson.dumps({**event, **envelope}) + b"\r\n\r\n" for event in events]
    end = [
        b"data: " + orjson.dumps({"candidates": [last], "usageMetadata": usage_metadata(up), **envelope}) + b"\r\n\r\n"
    ]
    malformed = b"data: " + MALFORMED_JSON + b"\r\n\r\n"
    return Answer(frames=frames, end=end, content_type="text/event-stream", malformed_frame=malformed)


def token_answer(up: "FakeUpstream", form: dict) -> "Answer":
    """Google's token endpoint: any grant gets the next token (the tests check the JWT they find in `requests`)."""
    from tests.fakes.upstream import Answer

    issued = sum(1 for seen in up.requests if seen.path == "/token")
    return Answer({"access_token": f"ya29.fake-{issued}", "expires_in": 3599, "token_type": "Bearer"})


def token_error(message: str) -> dict:
    return {"error": "invalid_grant", "error_description": message}
