"""Vertex AI (`vertex_ai/`): Gemini's wire format at a project's regional address, and service-account auth: the
JWT signed with the account's key, exchanged at its token_uri (a fake on loopback), the token cached, refreshed
once at a time and off the event loop; then through the whole proxy."""

import asyncio
import base64
import threading

import httpx
import orjson
import pytest
from asgiref.sync import sync_to_async
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.test import AsyncClient

from gateway.config_import import apply_config, parse_config
from gateway.providers import get_provider, unservable_reason
from gateway.providers import vertex as vertex_module
from gateway.providers.base import ProviderError, Target
from gateway.providers.vertex import SCOPE, TokenCache, signed_jwt
from gateway.proxy.upstream import close_upstream_pool
from tests.e2e.server import MASTER_KEY
from tests.fakes.upstream import Behaviour, FakeUpstream

VERTEX = get_provider("vertex_ai")
CHAT = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account(private_key: rsa.RSAPrivateKey, token_uri: str) -> dict:
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "type": "service_account",
        "project_id": "proj-1",
        "private_key_id": "key-id-1",
        "private_key": pem.decode(),
        "client_email": "tollgate@proj-1.iam.gserviceaccount.com",
        "token_uri": token_uri,
    }


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verified_claims(assertion: str, private_key: rsa.RSAPrivateKey) -> tuple[dict, dict]:
    """The JWT's header and claims, once its RS256 signature is checked with the account's public key."""
    header, claims, signature = assertion.split(".")
    private_key.public_key().verify(
        unb64(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    return orjson.loads(unb64(header)), orjson.loads(unb64(claims))


async def send(request):
    async with httpx.AsyncClient() as client:
        return await client.request(request.method, request.url, headers=request.headers, content=request.content)


def token_requests(up: FakeUpstream) -> list:
    return [seen for seen in up.requests if seen.path == "/token"]


# --- the address ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "env", "api_base", "url"),
    [
        (
            {"vertex_project": "proj-1", "vertex_location": "europe-west4"},
            {},
            None,
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj-1/locations/europe-west4"
            "/publishers/google/models/gemini-2.5-flash:generateContent",
        ),
        (
            {},
            {"VERTEXAI_PROJECT": "env-proj"},
            None,
            "https://us-central1-aiplatform.googleapis.com/v1/projects/env-proj/locations/us-central1"
            "/publishers/google/models/gemini-2.5-flash:generateContent",
        ),
        (
            {"vertex_project": "proj-1", "vertex_location": "global"},
            {},
            None,
            "https://aiplatform.googleapis.com/v1/projects/proj-1/locations/global"
            "/publishers/google/models/gemini-2.5-flash:generateContent",
        ),
        (
            {"vertex_project": "proj-1"},
            {"VERTEXAI_LOCATION": "asia-northeast1"},
            "http://127.0.0.1:9/",
            "http://127.0.0.1:9/v1/projects/proj-1/locations/asia-northeast1"
            "/publishers/google/models/gemini-2.5-flash:generateContent",
        ),
    ],
    ids=["deployment", "environment", "global", "api_base"],
)
def test_the_address_names_project_location_and_model(monkeypatch, extra, env, api_base, url):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    target = Target("vertex_ai", "gemini-2.5-flash", api_base=api_base, extra=extra)

    request = VERTEX.build_request(target, "chat", CHAT, False)

    assert request.url == url
    assert "x-goog-api-key" not in request.headers
    assert orjson.loads(request.content)["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]
    assert unservable_reason("vertex_ai/gemini-2.5-flash") == ""


def test_a_deployment_without_a_project_cannot_be_called(monkeypatch):
    for name in vertex_module.PROJECT_ENV:
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(ProviderError) as missing:
        VERTEX.build_request(Target("vertex_ai", "gemini-2.5-flash"), "chat", CHAT, False)
    assert (missing.value.status, missing.value.retryable) == (500, False)
    assert "vertex_project" in missing.value.message


@pytest.mark.parametrize("form", ["path", "json text", "mapping"])
def test_without_a_project_the_credentials_project_is_called(monkeypatch, private_key, tmp_path, form):
    for name in vertex_module.PROJECT_ENV:
        monkeypatch.delenv(name, raising=False)
    project = {"path": "p-path", "json text": "p-json", "mapping": "p-mapping"}[form]
    account = {**service_account(private_key, "https://oauth2.googleapis.com/token"), "project_id": project}
    path = tmp_path / "account.json"
    path.write_bytes(orjson.dumps(account))
    source = {"path": str(path), "json text": orjson.dumps(account).decode(), "mapping": account}[form]

    request = VERTEX.build_request(
        Target("vertex_ai", "gemini-2.5-flash", extra={"vertex_credentials": source}), "chat", CHAT, False
    )

    assert f"/v1/projects/{project}/locations/us-central1/" in request.url


# --- the signed JWT -------------------------------------------------------------------------------------------


def test_the_jwt_is_signed_with_the_accounts_key_and_claims_what_google_asks(private_key):
    account = service_account(private_key, "https://oauth2.googleapis.com/token")

    header, claims = verified_claims(signed_jwt(account, 1_700_000_000.7), private_key)

    assert header == {"alg": "RS256", "typ": "JWT", "kid": "key-id-1"}
    assert claims == {
        "iss": "tollgate@proj-1.iam.gserviceaccount.com",
        "scope": SCOPE,
        "aud": "https://oauth2.googleapis.com/token",
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
    }


def test_a_jwt_signed_with_another_key_does_not_verify(private_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assertion = signed_jwt(service_account(other, "https://oauth2.googleapis.com/token"), 1_700_000_000)

    with pytest.raises(InvalidSignature):
        verified_claims(assertion, private_key)


# --- the token ------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def google():
    with FakeUpstream() as up:
        yield up


async def test_the_key_is_exchanged_at_the_token_uri_for_a_bearer_token(google, private_key):
    account = service_account(private_key, f"{google.url}/token")
    cache = TokenCache()

    token = await cache.access_token(account, send)

    [exchange] = token_requests(google)
    form = dict(httpx.QueryParams(exchange.body.decode()))
    assert exchange.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    _, claims = verified_claims(form["assertion"], private_key)
    assert (claims["iss"], claims["aud"], claims["scope"]) == (account["client_email"], f"{google.url}/token", SCOPE)
    assert token == "ya29.fake-1"


@pytest.mark.parametrize("form", ["path", "json text", "mapping"])
async def test_credentials_as_litellm_takes_them(google, private_key, tmp_path, form):
    account = service_account(private_key, f"{google.url}/token")
    path = tmp_path / "account.json"
    path.write_bytes(orjson.dumps(account))
    source = {"path": str(path), "json text": orjson.dumps(account).decode(), "mapping": account}[form]

    assert await TokenCache().access_token(source, send) == "ya29.fake-1"


async def test_a_gcloud_user_is_refreshed_with_its_refresh_token(google):
    user = {
        "type": "authorized_user",
        "client_id": "id-1.apps.googleusercontent.com",
        "client_secret": "user-client-secret-1",
        "refresh_token": "1//refresh-token-1",
        "token_uri": f"{google.url}/token",
    }

    assert await TokenCache().access_token(user, send) == "ya29.fake-1"
    form = dict(httpx.QueryParams(token_requests(google)[0].body.decode()))
    assert form == {
        "grant_type": "refresh_token",
        "client_id": user["client_id"],
        "client_secret": user["client_secret"],
        "refresh_token": user["refresh_token"],
    }


async def test_many_calls_at_once_make_one_exchange_and_the_token_is_kept(google, private_key):
    account = service_account(private_key, f"{google.url}/token")
    cache = TokenCache()

    tokens = await asyncio.gather(*(cache.access_token(account, send) for _ in range(20)))
    again = await cache.access_token(account, send)

    assert set(tokens) == {again} == {"ya29.fake-1"}
    assert len(token_requests(google)) == 1


async def test_a_token_near_its_expiry_is_refreshed_in_the_background_and_an_expired_one_is_awaited(
    google, private_key
):
    account = service_account(private_key, f"{google.url}/token")
    clock = Clock()
    cache = TokenCache(clock)
    await cache.access_token(account, send)

    clock.now += 3599 - 30 - 300 - 1  # the fake's tokens last 3599 s: not yet in the refresh window
    assert await cache.access_token(account, send) == "ya29.fake-1"
    assert len(token_requests(google)) == 1

    clock.now += 2  # in its last minutes: still served while one refresh runs
    served = await asyncio.gather(*(cache.access_token(account, send) for _ in range(5)))
    assert served == ["ya29.fake-1"] * 5
    await google.wait_for_requests_async(2)
    await poll(lambda: cache._tokens and next(iter(cache._tokens.values())).value == "ya29.fake-2")
    assert await cache.access_token(account, send) == "ya29.fake-2"

    clock.now += 3599  # expired: the next call waits for a new one
    assert await cache.access_token(account, send) == "ya29.fake-3"
    assert len(token_requests(google)) == 3


async def test_a_caller_that_goes_away_does_not_cancel_the_exchange_others_wait_for(google, private_key):
    account = service_account(private_key, f"{google.url}/token")
    cache = TokenCache()
    google.script(Behaviour(first_byte_delay=0.3))
    leaving = asyncio.ensure_future(cache.access_token(account, send))
    staying = asyncio.ensure_future(cache.access_token(account, send))
    await google.wait_for_requests_async(1)

    leaving.cancel()

    assert await staying == "ya29.fake-1"
    assert len(token_requests(google)) == 1


async def test_the_key_is_read_and_signed_off_the_event_loop(google, private_key, monkeypatch):
    threads = []
    original = vertex_module.token_request

    def recording(*args):
        threads.append(threading.current_thread())
        return original(*args)

    monkeypatch.setattr(vertex_module, "token_request", recording)
    await TokenCache().access_token(service_account(private_key, f"{google.url}/token"), send)

    assert threads and threads[0] is not threading.main_thread()


async def test_refused_credentials_fail_the_call_retryably_and_the_next_call_tries_again(google, private_key):
    account = service_account(private_key, f"{google.url}/token")
    cache = TokenCache()
    google.script(Behaviour(status=400, message="Invalid JWT Signature."))

    with pytest.raises(ProviderError) as refused:
        await cache.access_token(account, send)

    assert (refused.value.status, refused.value.retryable) == (502, True)
    assert (
        refused.value.message
        == "vertex_ai: the token endpoint refused the credentials: invalid_grant: Invalid JWT Signature."
    )
    assert await cache.access_token(account, send) == "ya29.fake-2"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("/nonexistent/account.json", "cannot read vertex_credentials: FileNotFoundError"),
        ('{"type": "service_account"}', "unusable vertex_credentials: KeyError"),
        ('{"type": "external_account"}', "credentials of type 'external_account' are not supported"),
    ],
)
async def test_unusable_credentials_say_why(source, message):
    with pytest.raises(ProviderError) as unusable:
        await TokenCache().access_token(source, send)

    assert unusable.value.status == 500 and message in unusable.value.message


async def test_a_deployment_without_credentials_cannot_be_called(monkeypatch):
    for name in vertex_module.CREDENTIALS_ENV:
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(ProviderError) as missing:
        await VERTEX.authorization(Target("vertex_ai", "m", extra={"vertex_project": "p"}), send)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in missing.value.message


async def poll(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


# --- round trip -----------------------------------------------------------------------------------------------


async def called(up: FakeUpstream, account: dict, call_type: str, payload: dict, stream: bool):
    target = Target(
        "vertex_ai",
        "gemini-2.5-flash",
        api_base=up.url,
        extra={"vertex_project": "proj-1", "vertex_location": "europe-west4", "vertex_credentials": account},
    )
    request = VERTEX.build_request(target, call_type, payload, stream)
    request.headers.update(await VERTEX.authorization(target, send))
    response = await send(request)
    if not stream:
        return VERTEX.parse_response(target, call_type, payload, response.status_code, response.content, {})
    parser = VERTEX.stream_parser(target, call_type, payload)
    return parser.feed(response.content) + parser.finish(), parser


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_round_trip_with_the_bearer_token(google, private_key, stream):
    google.prompt_tokens, google.completion_tokens, google.cached_tokens = 30, 7, 10
    account = service_account(private_key, f"{google.url}/token")

    result = await called(google, account, "chat", CHAT, stream)

    seen = google.requests[-1]
    method = "streamGenerateContent" if stream else "generateContent"
    path = f"/v1/projects/proj-1/locations/europe-west4/publishers/google/models/gemini-2.5-flash:{method}"
    assert seen.path == path
    assert seen.headers["authorization"].startswith("Bearer ya29.fake-")
    usage = result[1].usage if stream else result["usage"]
    assert usage["prompt_tokens"] == 30 and usage["prompt_tokens_details"] == {"cached_tokens": 10}


async def test_embeddings_through_predict_count_vertexs_tokens(google, private_key):
    google.prompt_tokens, google.embedding_dimensions = 10, 2
    account = service_account(private_key, f"{google.url}/token")

    response = await called(google, account, "embedding", {"model": "m", "input": ["a", "b"], "dimensions": 2}, False)

    seen = google.requests[-1]
    assert seen.path.endswith("/models/gemini-2.5-flash:predict")
    assert seen.json == {"instances": [{"content": "a"}, {"content": "b"}], "parameters": {"outputDimensionality": 2}}
    assert [item["embedding"] for item in response["data"]] == [[0.1, 0.11], [0.2, 0.21]]
    assert response["usage"]["prompt_tokens"] == 10  # Google's own count: 5 a text


# --- through the proxy ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_proxy_fetches_the_token_before_calling_vertex(google, private_key, tmp_path):
    path = tmp_path / "account.json"
    path.write_bytes(orjson.dumps(service_account(private_key, f"{google.url}/token")))
    config = f"""
model_list:
  - model_name: vertex-flash
    litellm_params:
      model: vertex_ai/gemini-2.5-flash
      vertex_project: proj-1
      vertex_location: us-central1
      vertex_credentials: "{path}"
      api_base: "{google.url}"
"""
    await sync_to_async(apply_config)(parse_config(config))
    try:
        response = await AsyncClient().post(
            "/v1/chat/completions",
            orjson.dumps({**CHAT, "model": "vertex-flash"}),
            content_type="application/json",
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
        )
    finally:
        await close_upstream_pool()

    assert response.status_code == 200, response.content
    assert orjson.loads(response.content)["choices"][0]["message"]["content"] == google.reply
    assert [seen.path for seen in google.requests][0] == "/token"
    assert google.requests[1].headers["authorization"] == "Bearer ya29.fake-1"


# --- Claude on Vertex -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_claude_on_vertex_speaks_anthropics_format_at_its_publisher_address(google, private_key, stream):
    google.prompt_tokens, google.completion_tokens, google.cached_tokens = 30, 7, 10
    account = service_account(private_key, f"{google.url}/token")
    target = Target(
        "vertex_ai",
        "claude-3-5-sonnet@20240620",
        api_base=google.url,
        extra={"vertex_project": "proj-1", "vertex_location": "us-east5", "vertex_credentials": account},
    )
    payload = {
        **CHAT,
        "model": "claude-3-5-sonnet@20240620",
        "messages": [{"role": "system", "content": "Be brief."}, *CHAT["messages"]],
    }

    request = VERTEX.build_request(target, "chat", payload, stream)
    request.headers.update(await VERTEX.authorization(target, send))
    response = await send(request)
    if stream:
        parser = VERTEX.stream_parser(target, "chat", payload)
        chunks = parser.feed(response.content) + parser.finish()
        text, usage = (
            "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]),
            parser.usage,
        )
    else:
        answer = VERTEX.parse_response(target, "chat", payload, response.status_code, response.content, {})
        text, usage = answer["choices"][0]["message"]["content"], answer["usage"]

    seen = google.requests[-1]
    method = "streamRawPredict" if stream else "rawPredict"
    assert (
        seen.path
        == f"/v1/projects/proj-1/locations/us-east5/publishers/anthropic/models/claude-3-5-sonnet@20240620:{method}"
    )
    assert seen.headers["authorization"] == "Bearer ya29.fake-1"
    body = seen.json
    assert "model" not in body and body["anthropic_version"] == "vertex-2023-10-16"
    assert (body["system"], body["messages"]) == (
        "Be brief.",
        [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    )
    assert body.get("stream", False) is stream
    assert text == google.reply
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["prompt_tokens_details"]) == (
        30,
        7,
        {"cached_tokens": 10},
    )
