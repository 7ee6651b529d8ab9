"""Vertex AI (`vertex_ai/`): Gemini's generateContent body at a Google Cloud project's regional address (and
Claude's Messages body at Anthropic's), called with an OAuth access token that a service account's key (or a gcloud
user's refresh token) is exchanged for.

Why not google-auth: its service-account refresh is a blocking call on its own `requests` session, so on the
proxy it would need a thread per refresh and a second HTTP client beside the gateway's pool. The exchange itself
is small: an RS256-signed JWT (signed with `cryptography`, already a dependency), POSTed as a form to the
account's `token_uri`. Here the key file is read and the JWT signed in a worker thread (105 ms measured per
exchange, nearly all of it loading and checking the RSA key: every stream would stall that long on the loop),
and the POST goes through the gateway's own client, lent by the dispatcher (`Provider.authorization`).

Tokens are kept per credentials until shortly before they expire. One refresh runs at a time per credentials
(every caller that needs the token meanwhile awaits that one exchange: no thundering herd at the token
endpoint), and once a token is in its last minutes a refresh starts in the background while calls keep using
the old token, so a busy deployment never waits for a token after the first.
"""

import asyncio
import base64
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.providers.anthropic import AnthropicProvider, AnthropicStream
from gateway.providers.anthropic import request_body as anthropic_body
from gateway.providers.base import (
    SHAPE_ERRORS,
    CallType,
    ProviderError,
    Send,
    Target,
    UpstreamRequest,
    config_error,
    embedding_list,
    is_retryable,
    json_headers,
    make_usage,
    upstream_message,
    with_extra_headers,
)
from gateway.providers.gemini import GeminiProvider, GeminiStream, embedding_inputs

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_LIFETIME = 3600  # seconds: the longest Google accepts
EXPIRY_MARGIN = 30.0  # a token is never sent in its last seconds: it could expire on the way
REFRESH_AHEAD = 300.0  # a refresh starts this long before that, while the old token still serves

# LiteLLM's environment variables, in its order, for what a deployment does not name.
PROJECT_ENV = ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT")
LOCATION_ENV = ("VERTEXAI_LOCATION", "VERTEX_LOCATION")
CREDENTIALS_ENV = ("VERTEXAI_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS")
DEFAULT_LOCATION = "us-central1"

# Claude on Vertex (LiteLLM's vertex_ai/claude-...): Anthropic's Messages body at Anthropic's publisher address,
# the model named by the address and the API version in the body.
ANTHROPIC_VERSION = "vertex-2023-10-16"
ANTHROPIC = AnthropicProvider()


def is_claude(model: str) -> bool:
    return model.startswith("claude")


class VertexProvider(GeminiProvider):
    name = "vertex_ai"
    api_key_env = ()
    api_base_env = ()
    fetches_credentials = True
    embedding_method = "predict"

    def build_request(self, target: Target, call_type: CallType, payload: dict, stream: bool) -> UpstreamRequest:
        if not is_claude(target.model):
            return super().build_request(target, call_type, payload, stream)
        body = anthropic_body(payload)
        del body["model"]  # named by the address
        body["anthropic_version"] = ANTHROPIC_VERSION
        if stream:
            body["stream"] = True
        url = self.model_url(target, "anthropic") + (":streamRawPredict" if stream else ":rawPredict")
        return UpstreamRequest("POST", url, with_extra_headers(json_headers(), target), orjson.dumps(body))

    def parse_success(self, target: Target, call_type: CallType, payload: dict, data: Any) -> dict:
        if is_claude(target.model):
            return ANTHROPIC.parse_success(target, call_type, payload, data)
        return super().parse_success(target, call_type, payload, data)

    def stream_parser(self, target: Target, call_type: CallType, payload: dict) -> GeminiStream | AnthropicStream:
        if is_claude(target.model):
            return AnthropicStream(target)
        return super().stream_parser(target, call_type, payload)

    def model_url(self, target: Target, publisher: str = "google") -> str:
        project = _setting(target, "vertex_project", PROJECT_ENV) or credentials_project(_credentials(target))
        if not project:
            raise config_error(
                self.name, "no project (set vertex_project, VERTEXAI_PROJECT, or credentials with a project_id)"
            )
        location = _setting(target, "vertex_location", LOCATION_ENV) or DEFAULT_LOCATION
        host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
        base = (target.api_base or f"https://{host}").rstrip("/")
        return f"{base}/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{target.model}"

    def headers(self, target: Target) -> dict[str, str]:
        return json_headers()  # the access token is added by `authorization`

    async def authorization(self, target: Target, send: Send) -> dict[str, str]:
        source = _credentials(target)
        if not source:
            raise config_error(
                self.name,
                "no credentials (set vertex_credentials to a service account's JSON or its path, or "
                "GOOGLE_APPLICATION_CREDENTIALS; the metadata server is not supported)",
            )
        return {"Authorization": f"Bearer {await TOKENS.access_token(source, send)}"}

    def embedding_body(self, target: Target, payload: dict) -> dict:
        body: dict[str, Any] = {"instances": [{"content": text} for text in embedding_inputs(payload)]}
        if payload.get("dimensions"):
            body["parameters"] = {"outputDimensionality": payload["dimensions"]}
        return body

    def parse_embeddings(self, target: Target, payload: dict, data: Any) -> dict:
        """Vertex's predict counts each input's tokens (statistics.token_count)."""
        embeddings = [prediction["embeddings"] for prediction in data["predictions"]]
        tokens = sum(int(item.get("statistics", {}).get("token_count") or 0) for item in embeddings)
        vectors = [item["values"] for item in embeddings]
        return embedding_list(vectors, target.model, make_usage(tokens, 0), payload.get("encoding_format"))


def _credentials(target: Target) -> str | dict | None:
    return target.extra.get("vertex_credentials") or _first_env(CREDENTIALS_ENV)


def credentials_project(source: str | dict | None) -> str | None:
    """The project_id of the credentials, the project LiteLLM calls when a deployment names none."""
    if isinstance(source, dict):
        return source.get("project_id")
    return _project_in(source) if source else None


@functools.lru_cache(maxsize=64)
def _project_in(source: str) -> str | None:
    # Read once per process and credentials (a key file is read here, on the first call that needs it: a few
    # microseconds, once), not per call.
    try:
        return load_credentials(source).get("project_id")
    except (ProviderError, AttributeError):
        return None


def _setting(target: Target, name: str, env: tuple[str, ...]) -> str | None:
    return target.extra.get(name) or _first_env(env)


def _first_env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


# --- access tokens --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_at: float  # on the cache's clock, EXPIRY_MARGIN before Google's expiry
    refresh_at: float


class TokenCache:
    """Access tokens by the credentials they were made from; see the module docstring for when each refreshes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tokens: dict[str, AccessToken] = {}
        self._refreshing: dict[str, asyncio.Task] = {}

    async def access_token(self, source: str | dict, send: Send) -> str:
        key = source if isinstance(source, str) else orjson.dumps(source, option=orjson.OPT_SORT_KEYS).decode()
        token = self._tokens.get(key)
        now = self.clock()
        if token is not None and now < token.refresh_at:
            return token.value
        refresh = self._refresh(key, source, send)
        if token is not None and now < token.expires_at:
            return token.value
        return (await asyncio.shield(refresh)).value

    def _refresh(self, key: str, source: str | dict, send: Send) -> asyncio.Task:
        """The refresh under way for these credentials on this loop, or a new one."""
        loop = asyncio.get_running_loop()
        task = self._refreshing.get(key)
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._refreshing[key] = loop.create_task(self._exchange(key, source, send))
            task.add_done_callback(_retrieved)
        return task

    async def _exchange(self, key: str, source: str | dict, send: Send) -> AccessToken:
        request = await asyncio.to_thread(token_request, source, time.time())
        response = await send(request)
        if not 200 <= response.status_code < 300:
            raise token_error(response.status_code, response.content)
        try:
            answer = orjson.loads(response.content)
            lifetime, value = float(answer.get("expires_in", JWT_LIFETIME)), str(answer["access_token"])
        except (orjson.JSONDecodeError, *SHAPE_ERRORS) as exc:
            raise ProviderError(502, "vertex_ai: the token endpoint answered without a token", True) from exc
        expires_at = self.clock() + lifetime - EXPIRY_MARGIN
        token = AccessToken(value, expires_at, expires_at - REFRESH_AHEAD)
        self._tokens[key] = token
        return token


def _retrieved(task: asyncio.Task) -> None:
    # A background refresh's failure is seen by the next call that needs the token, not logged as unretrieved.
    if not task.cancelled():
        task.exception()


TOKENS = TokenCache()


def token_error(status: int, body: bytes) -> ProviderError:
    """The token endpoint refused: retryable, since another deployment may hold credentials that work."""
    try:
        answer = orjson.loads(body)
        reason = f"{answer['error']}: {answer['error_description']}"  # OAuth's own shape (RFC 6749, 5.2)
    except (orjson.JSONDecodeError, *SHAPE_ERRORS):
        reason = upstream_message(body, status)
    message = f"vertex_ai: the token endpoint refused the credentials: {reason}"
    return ProviderError(status if is_retryable(status) else 502, message, retryable=True)


def token_request(source: str | dict, now: float) -> UpstreamRequest:
    """The token endpoint's request for these credentials: the key file is read here (in a worker thread)."""
    credentials = load_credentials(source)
    try:
        return _token_request(credentials, now)
    except SHAPE_ERRORS as exc:  # a field missing from the credentials, a key that is no PEM
        raise config_error("vertex_ai", f"unusable vertex_credentials: {type(exc).__name__}: {exc}") from exc


def _token_request(credentials: dict, now: float) -> UpstreamRequest:
    kind = credentials.get("type")
    if kind == "service_account":
        token_uri = credentials.get("token_uri") or GOOGLE_TOKEN_URI
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": signed_jwt(credentials, now)}
    elif kind == "authorized_user":
        token_uri = credentials.get("token_uri") or GOOGLE_TOKEN_URI
        form = {
            "grant_type": "refresh_token",
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
            "refresh_token": credentials["refresh_token"],
        }
    else:
        raise config_error("vertex_ai", f"credentials of type {kind!r} are not supported (a service account's are)")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return UpstreamRequest("POST", token_uri, headers, urlencode(form).encode())


def load_credentials(source: str | dict) -> dict:
    """`vertex_credentials` as LiteLLM takes it: the JSON itself (text or mapping), or the path of its file."""
    if isinstance(source, dict):
        return source
    try:
        if source.lstrip().startswith("{"):
            return orjson.loads(source)
        with open(source, "rb") as file:
            return orjson.loads(file.read())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise config_error("vertex_ai", f"cannot read vertex_credentials: {type(exc).__name__}") from exc


def signed_jwt(credentials: dict, now: float) -> str:
    """The assertion of RFC 7523 as Google wants it: RS256 over the account's email, the cloud-platform scope,
    the token endpoint as audience, valid for an hour."""
    header = {"alg": "RS256", "typ": "JWT", "kid": credentials.get("private_key_id")}
    issued = int(now)
    claims = {
        "iss": credentials["client_email"],
        "scope": SCOPE,
        "aud": credentials.get("token_uri") or GOOGLE_TOKEN_URI,
        "iat": issued,
        "exp": issued + JWT_LIFETIME,
    }
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}".encode()
    key = serialization.load_pem_private_key(credentials["private_key"].encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise config_error("vertex_ai", "the service account's private_key is not an RSA key")
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{_b64(signature)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
