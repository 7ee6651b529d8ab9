"""What every AWS upstream shares (SageMaker, Bedrock): credentials as boto3 finds them, Signature Version 4, and
the binary event-stream framing AWS streams answer in.

Signing is done here with hashlib/hmac rather than botocore, which Tollgate does not otherwise need: its signer
wants botocore's own request objects and credential chain. Signing a Converse call takes ~50 us here, building the
whole Bedrock request ~100 us (timeit, 20,000 calls, on the shared 2-core test machine). It is checked against
AWS's published SigV4 test suite (tests/gateway/test_sigv4.py).
"""

import hashlib
import hmac
import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import orjson

from gateway.providers.base import (
    SHAPE_ERRORS,
    Provider,
    ProviderError,
    Target,
    UpstreamRequest,
    config_error,
    header,
    is_retryable,
    with_extra_headers,
)

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None
    region: str


class AWSProvider(Provider):
    """An upstream that signs with SigV4 for `signing_service` and reports errors AWS's way."""

    signing_service: str
    default_region = "us-west-2"  # LiteLLM's fallback when no region is configured anywhere

    def signed_request(self, target: Target, url: str, headers: dict[str, str], body: bytes) -> UpstreamRequest:
        """A POST of `body`, signed with the deployment's credentials after its `extra_headers` are added."""
        signed = sign_v4(
            "POST",
            url,
            with_extra_headers(headers, target),
            body,
            credentials=credentials(self.name, target, self.default_region),
            service=self.signing_service,
        )
        return UpstreamRequest("POST", url, signed, body)

    def error_from_response(self, status: int, body: bytes, headers) -> ProviderError:
        error = super().error_from_response(status, body, headers)
        if "Throttling" in (header(headers, "x-amzn-errortype") or ""):
            error.retryable = True  # AWS throttles some operations with a 400
        return error


def setting(target: Target, key: str, *environment: str) -> str | None:
    """A deployment parameter, else the environment variable boto3 (and so LiteLLM) would read."""
    value = target.extra.get(key)
    if value:
        return str(value)
    return next((os.environ[name] for name in environment if os.environ.get(name)), None)


def region(target: Target, default: str) -> str:
    return setting(target, "aws_region_name", "AWS_REGION_NAME", "AWS_REGION") or default


def credentials(provider: str, target: Target, default_region: str) -> Credentials:
    """The deployment's keys (litellm_params, else AWS_* variables); a config error when either half is missing."""
    access_key = setting(target, "aws_access_key_id", "AWS_ACCESS_KEY_ID")
    secret_key = setting(target, "aws_secret_access_key", "AWS_SECRET_ACCESS_KEY")
    if not access_key or not secret_key:
        raise config_error(provider, "aws_access_key_id and aws_secret_access_key are required")
    session_token = setting(target, "aws_session_token", "AWS_SESSION_TOKEN")
    return Credentials(access_key, secret_key, session_token, region(target, default_region))


def uri_encode(value: str, safe: str = "") -> str:
    """AWS's UriEncode: every byte but the unreserved characters (and `safe`) percent-encoded, in upper case."""
    return quote(value, safe=safe + "-_.~")


# --- Signature Version 4 --------------------------------------------------------------------------------------


def sign_v4(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: Credentials,
    service: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """`headers` plus Host, X-Amz-Date, X-Amz-Security-Token (with temporary credentials) and Authorization.

    Every header given is signed, so send exactly these headers.
    """
    amz_date = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    signed = {**headers, "Host": urlsplit(url).netloc, "X-Amz-Date": amz_date}
    if credentials.session_token:
        signed["X-Amz-Security-Token"] = credentials.session_token
    request, names = canonical_request(method, url, signed, body)
    scope = f"{amz_date[:8]}/{credentials.region}/{service}/aws4_request"
    to_sign = string_to_sign(amz_date, scope, request)
    key = f"AWS4{credentials.secret_key}".encode()
    for part in (amz_date[:8], credentials.region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, SignedHeaders={names}, Signature={signature}"
    )
    return signed


def canonical_request(method: str, url: str, headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
    """AWS's canonical form of a request, and its signed header names (`a;b;c`).

    Header values are trimmed with inner runs of spaces folded to one; a header given twice (as "v1,v2") keeps its
    order. The path is normalized (no `.`/`..` segments, no empty ones) and encoded once more than it was sent,
    as every service but S3 expects."""
    parts = urlsplit(url)
    canonical_headers = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    names = sorted(canonical_headers)
    query = sorted((uri_encode(k), uri_encode(v)) for k, v in parse_qsl(parts.query, keep_blank_values=True))
    request = "\n".join(
        [
            method,
            uri_encode(_normalized_path(parts.path), safe="/"),
            "&".join(f"{k}={v}" for k, v in query),
            "".join(f"{name}:{canonical_headers[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    return request, ";".join(names)


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def _normalized_path(path: str) -> str:
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    trailing = "/" if path.endswith(("/", "/.", "/..")) and segments else ""
    return "/" + "/".join(segments) + trailing


# --- event streams --------------------------------------------------------------------------------------------

PRELUDE = struct.Struct(">III")  # total length, headers length, prelude CRC32
_FIXED_HEADER_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}  # by event-stream header value type


class EventStreamDecoder:
    """AWS's binary event-stream framing (application/vnd.amazon.eventstream), however its bytes were cut in
    transit: `feed` returns the complete messages as `(headers, payload)`. A CRC that does not match raises a
    502 ProviderError naming `provider`."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        self._buffer += data
        try:
            return self._messages()
        except (*SHAPE_ERRORS, struct.error) as exc:
            raise ProviderError(502, f"{self.provider}: corrupt event-stream frame", retryable=True) from exc

    def _messages(self) -> list[tuple[dict[str, Any], bytes]]:
        messages = []
        while len(self._buffer) >= PRELUDE.size:
            total, headers_length, prelude_crc = PRELUDE.unpack_from(self._buffer)
            if zlib.crc32(self._buffer[:8]) != prelude_crc:
                raise ValueError("prelude CRC mismatch")
            if len(self._buffer) < total:
                break
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            if zlib.crc32(frame[:-4]) != int.from_bytes(frame[-4:], "big"):
                raise ValueError("message CRC mismatch")
            end = PRELUDE.size + headers_length
            messages.append((_frame_headers(frame[PRELUDE.size : end]), frame[end:-4]))
        return messages


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
            size = _FIXED_HEADER_SIZES[kind]
            headers[name] = kind == 0 if kind in (0, 1) else raw[position : position + size]
            position += size
    return headers


def stream_exception(
    provider: str, headers: Mapping[str, Any], payload: bytes, status: Mapping[str, int]
) -> ProviderError:
    """An exception message in an event stream (`:message-type` exception or error): its `message` (SageMaker
    writes `Message`) and the HTTP status `status` gives its type, 500 for a type it does not name."""
    kind = headers.get(":exception-type") or headers.get(":error-code") or "stream error"
    try:
        data = orjson.loads(payload)
        message = data.get("message") or data.get("Message") or kind
    except (orjson.JSONDecodeError, AttributeError):
        message = payload.decode("utf-8", "replace") or kind
    code = status.get(kind, 500)
    return ProviderError(code, f"{provider}: {message}", is_retryable(code))
