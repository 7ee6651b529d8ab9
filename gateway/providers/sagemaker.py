"""Amazon SageMaker endpoints serving Hugging Face TGI containers, in the request shape LiteLLM sends:
`{"inputs": prompt, "parameters": {...}}` answered by `[{"generated_text": ...}]`. Requests are signed with
AWS Signature Version 4 (service `sagemaker`), computed here with hashlib/hmac.

SageMaker reports no token counts, so usage is estimated: one token per four characters, rounded up, of the prompt
we sent and of the text we got back (TGI's `details.generated_tokens` is used instead when the container sends it).

Streams go to /invocations-response-stream, which answers in AWS's binary event-stream framing; the PayloadPart
events carry, cut at arbitrary points, TGI's server-sent events (`data:{"token": {...}}`), the last of which has
`generated_text` set.
"""

import hashlib
import hmac
import os
import struct
import zlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import orjson

from gateway.providers.base import (
    SHAPE_ERRORS,
    CallType,
    Envelope,
    JSONLineStream,
    Provider,
    ProviderError,
    Target,
    UpstreamRequest,
    completion_prompt,
    config_error,
    estimate_tokens,
    header,
    is_retryable,
    make_usage,
    max_output_tokens,
    messages_to_prompt,
    stop_sequences,
    with_extra_headers,
)

DEFAULT_REGION = "us-west-2"  # LiteLLM's fallback when no region is configured anywhere
SIGNING_SERVICE = "sagemaker"


class SageMakerProvider(Provider):
    name = "sagemaker"
    call_types = frozenset({"chat", "completion"})

    def build_request(self, target: Target, call_type: CallType, payload: dict, stream: bool) -> UpstreamRequest:
        body: dict[str, Any] = {"inputs": _prompt(call_type, payload), "parameters": _parameters(payload)}
        if stream:
            body["stream"] = True
        region = _setting(target, "aws_region_name", "AWS_REGION_NAME", "AWS_REGION") or DEFAULT_REGION
        access_key = _setting(target, "aws_access_key_id", "AWS_ACCESS_KEY_ID")
        secret_key = _setting(target, "aws_secret_access_key", "AWS_SECRET_ACCESS_KEY")
        if not access_key or not secret_key:
            raise config_error(self.name, "aws_access_key_id and aws_secret_access_key are required")
        base = (target.api_base or f"https://runtime.sagemaker.{region}.amazonaws.com").rstrip("/")
        endpoint = _uri_encode(target.model)
        url = f"{base}/endpoints/{endpoint}/invocations{'-response-stream' if stream else ''}"
        headers = {"Content-Type": "application/json"}
        if target.extra.get("model_id"):  # LiteLLM's name for an inference component on a shared endpoint
            headers["X-Amzn-SageMaker-Inference-Component"] = str(target.extra["model_id"])
        content = orjson.dumps(body)
        signed = sign_v4(
            "POST",
            url,
            with_extra_headers(headers, target),
            content,
            access_key=access_key,
            secret_key=secret_key,
            session_token=_setting(target, "aws_session_token", "AWS_SESSION_TOKEN"),
            region=region,
            service=SIGNING_SERVICE,
        )
        return UpstreamRequest("POST", url, signed, content)

    def error_from_response(self, status: int, body: bytes, headers) -> ProviderError:
        error = super().error_from_response(status, body, headers)
        if "Throttling" in (header(headers, "x-amzn-errortype") or ""):
            error.retryable = True  # AWS throttles some operations with a 400
        return error

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


def _setting(target: Target, key: str, *environment: str) -> str | None:
    """A deployment parameter, else the environment variable boto3 (and so LiteLLM) would read."""
    value = target.extra.get(key)
    if value:
        return str(value)
    return next((os.environ[name] for name in environment if os.environ.get(name)), None)


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


# --- Signature Version 4 --------------------------------------------------------------------------------------


def sign_v4(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    session_token: str | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """`headers` plus Host, X-Amz-Date, X-Amz-Security-Token (with temporary credentials) and Authorization.

    Every header given is signed, so send exactly these headers.
    """
    parts = urlsplit(url)
    amz_date = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    signed = {**headers, "Host": parts.netloc, "X-Amz-Date": amz_date}
    if session_token:
        signed["X-Amz-Security-Token"] = session_token
    canonical_headers = {name.lower(): " ".join(value.split()) for name, value in signed.items()}
    names = sorted(canonical_headers)
    query = sorted((_uri_encode(k), _uri_encode(v)) for k, v in parse_qsl(parts.query, keep_blank_values=True))
    canonical_request = "\n".join(
        [
            method,
            _uri_encode(parts.path or "/", safe="/"),  # the path as sent, encoded once more (all but S3 want that)
            "&".join(f"{k}={v}" for k, v in query),
            "".join(f"{name}:{canonical_headers[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    string_to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}"
    key = f"AWS4{secret_key}".encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    signed["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return signed


def _uri_encode(value: str, safe: str = "") -> str:
    return quote(value, safe=safe + "-_.~")


# --- streaming ------------------------------------------------------------------------------------------------

PRELUDE = struct.Struct(">III")  # total length, headers length, prelude CRC32
FIXED_HEADER_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}  # by event-stream header value type
STREAM_EXCEPTION_STATUS = {"ModelStreamError": 424, "InternalStreamFailure": 500}


class SageMakerStream(JSONLineStream):
    """AWS event-stream frames -> PayloadPart bytes -> TGI event lines -> OpenAI chunks."""

    def __init__(self, target: Target, call_type: CallType, payload: dict) -> None:
        super().__init__("sagemaker", target, call_type)
        self._frames = bytearray()
        self._prompt_tokens = estimate_tokens(_prompt(call_type, payload))
        self._text = ""

    def feed(self, data: bytes) -> list[dict]:
        self._frames += data
        try:
            frames = self._complete_frames()
        except (*SHAPE_ERRORS, struct.error) as exc:
            raise ProviderError(502, "sagemaker: corrupt event-stream frame", retryable=True) from exc
        chunks = []
        for headers, payload in frames:
            if headers.get(":message-type") != "event":
                raise _stream_exception(headers, payload)
            if headers.get(":event-type") == "PayloadPart":
                chunks.extend(super().feed(payload))
        return chunks

    def _complete_frames(self) -> list[tuple[dict, bytes]]:
        frames = []
        while len(self._frames) >= PRELUDE.size:
            total, headers_length, prelude_crc = PRELUDE.unpack_from(self._frames)
            if zlib.crc32(self._frames[:8]) != prelude_crc:
                raise ValueError("prelude CRC mismatch")
            if len(self._frames) < total:
                break
            frame = bytes(self._frames[:total])
            del self._frames[:total]
            if zlib.crc32(frame[:-4]) != int.from_bytes(frame[-4:], "big"):
                raise ValueError("message CRC mismatch")
            end = PRELUDE.size + headers_length
            frames.append((_frame_headers(frame[PRELUDE.size : end]), frame[end:-4]))
        return frames

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


def _frame_headers(raw: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    position = 0
    while position < len(raw):
        name_length = raw[position]
        name = raw[position + 1 : position + 1 + name_length].decode()
        kind = raw[position + 1 + name_length]
        position += 2 + name_length
        if kind in (6, 7):  # bytes, string: 2-byte length prefix
            (length,) = struct.unpack_from(">H", raw, position)
            value: Any = raw[position + 2 : position + 2 + length]
            position += 2 + length
            headers[name] = value.decode() if kind == 7 else value
        else:
            size = FIXED_HEADER_SIZES[kind]
            headers[name] = kind == 0 if kind in (0, 1) else raw[position : position + size]
            position += size
    return headers


def _stream_exception(headers: dict, payload: bytes) -> ProviderError:
    kind = headers.get(":exception-type") or headers.get(":error-code") or "stream error"
    try:
        message = orjson.loads(payload).get("Message") or kind
    except (orjson.JSONDecodeError, AttributeError):
        message = payload.decode("utf-8", "replace") or kind
    status = STREAM_EXCEPTION_STATUS.get(kind, 500)
    return ProviderError(status, f"sagemaker: {message}", is_retryable(status))
