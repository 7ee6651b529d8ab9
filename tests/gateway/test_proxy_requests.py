"""The proxy in-process: what a client sees for good and bad requests, and what gets charged."""

import asyncio
from decimal import Decimal

import orjson
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient

import gateway.asgi
from gateway.asgi import proxy_application
from gateway.models import Deployment
from spend.models import SpendLog
from tests.e2e.server import MASTER_KEY
from tests.fakes.upstream import Behaviour, FakeUpstream
from tests.polling import wait_until_async

pytestmark = pytest.mark.django_db(transaction=True)

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture
def mock_deployment(db):
    return Deployment.objects.create(
        model_id="mock-1", model_name="demo-model", litellm_model="mock/demo", base_model="gpt-4o-mini"
    )


async def post(path: str, body, headers=AUTH, **extra):
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return await AsyncClient().post(path, content, content_type="application/json", headers=headers, **extra)


CHAT = {"model": "demo-model", "messages": [{"role": "user", "content": "Hello there"}]}


async def test_chat_call_is_priced_charged_and_labelled(mock_deployment):
    response = await post("/v1/chat/completions", CHAT)

    assert response.status_code == 200
    body = orjson.loads(response.content)
    usage = body["usage"]
    # gpt-4o-mini: 0.15 USD / 1M input, 0.60 USD / 1M output.
    expected = usage["prompt_tokens"] * Decimal("1.5E-7") + usage["completion_tokens"] * Decimal("6E-7")
    assert Decimal(response["x-litellm-response-cost"]) == expected
    assert response["x-litellm-model-id"] == "mock-1"
    assert response["x-litellm-model-group"] == "demo-model"
    assert response["x-litellm-attempted-retries"] == "0"
    log = await SpendLog.objects.select_related("charged_price").aget()
    assert log.request_id == response["x-litellm-call-id"]
    assert log.cost == expected
    assert (log.pricing_source, log.prompt_tokens, log.status) == ("base_model", usage["prompt_tokens"], "success")
    assert log.prices["input_cost_per_token"] == "0.00000015"


async def test_streamed_chat_ends_with_done_and_carries_exact_cost_when_usage_asked(mock_deployment):
    response = await post("/chat/completions", {**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    payload = b"".join([part async for part in response.streaming_content])

    events = [line.removeprefix(b"data: ") for line in payload.split(b"\n\n") if line]
    assert events[-1] == b"[DONE]"
    final = orjson.loads(events[-2])
    log = await SpendLog.objects.aget()
    assert final["usage"]["cost"] == float(log.cost)
    assert f'"cost":{log.cost.normalize():f}'.encode() in events[-2]
    assert (
        "".join(choice["delta"].get("content", "") for e in events[:-2] for choice in orjson.loads(e)["choices"])
        == "This is a mock response from Tollgate."
    )


async def test_stream_without_include_usage_has_no_usage_chunk(mock_deployment):
    response = await post("/chat/completions", {**CHAT, "stream": True})
    payload = b"".join([part async for part in response.streaming_content])

    assert b'"usage"' not in payload
    assert payload.endswith(b"data: [DONE]\n\n")
    assert await SpendLog.objects.acount() == 1


async def test_embeddings_and_completions(mock_deployment):
    embedding = await post("/v1/embeddings", {"model": "demo-model", "input": ["a", "b"]})
    completion = await post("/v1/completions", {"model": "demo-model", "prompt": "Say hi"})

    assert embedding.status_code == 200 and len(orjson.loads(embedding.content)["data"]) == 2
    assert completion.status_code == 200 and orjson.loads(completion.content)["object"] == "text_completion"
    assert sorted(await _call_types()) == ["completion", "embedding"]


async def _call_types():
    return [call_type async for call_type in SpendLog.objects.values_list("call_type", flat=True)]


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        (b"{not json", 400, None, "invalid_json"),
        (b"[1, 2]", 400, None, "invalid_json"),
        ({"messages": [{"role": "user", "content": "x"}]}, 400, "model", "missing_model"),
        ({"model": "demo-model"}, 400, "messages", "invalid_value"),
        ({"model": "demo-model", "messages": []}, 400, "messages", "invalid_value"),
        ({"model": "demo-model", "messages": ["hi"]}, 400, "messages[0]", "invalid_value"),
        ({**CHAT, "stream": "yes"}, 400, "stream", "invalid_type"),
        ({**CHAT, "max_tokens": -1}, 400, "max_tokens", "invalid_type"),
        ({**CHAT, "max_tokens": 10**12}, 400, "max_tokens", "invalid_value"),
        ({**CHAT, "temperature": "hot"}, 400, "temperature", "invalid_type"),
        ({**CHAT, "model": "no-such-model"}, 400, "model", "model_not_found"),
        # What the spend log keeps must be storable: refused before anything goes upstream.
        ({**CHAT, "metadata": {"note": "a\u0000b"}}, 400, "metadata", "invalid_value"),
        ({**CHAT, "metadata": {"a\u0000": 1}}, 400, "metadata", "invalid_value"),
        ({**CHAT, "metadata": "tags"}, 400, "metadata", "invalid_type"),
        ({**CHAT, "metadata": {"tags": ["x\u0000"]}}, 400, "metadata", "invalid_value"),
        ({**CHAT, "tags": ["ok", "\u0000"]}, 400, "tags", "invalid_value"),
        ({**CHAT, "user": "alice\u0000"}, 400, "user", "invalid_value"),
        ({**CHAT, "model": "demo-model\u0000"}, 400, "model", "invalid_value"),
        (
            {**CHAT, "metadata": {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}},
            400,
            "metadata",
            "invalid_value",
        ),
    ],
)
async def test_bad_requests_get_openai_errors_and_charge_nothing(mock_deployment, body, status, param, code):
    response = await post("/v1/chat/completions", body)

    assert response.status_code == status
    error = orjson.loads(response.content)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert await SpendLog.objects.acount() == 0


async def test_unknown_model_error_names_the_model(mock_deployment):
    response = await post("/v1/chat/completions", {**CHAT, "model": "gpt-17"})

    assert "gpt-17" in orjson.loads(response.content)["error"]["message"]


async def test_body_over_the_limit_is_413(mock_deployment, settings):
    settings.TOLLGATE_MAX_REQUEST_BYTES = 1000
    response = await post("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]})

    assert response.status_code == 413
    assert orjson.loads(response.content)["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": "Basic abc"}])
async def test_missing_or_wrong_key_is_401(mock_deployment, headers):
    response = await post("/v1/chat/completions", CHAT, headers=headers)

    assert response.status_code == 401
    assert orjson.loads(response.content)["error"]["code"] == "invalid_api_key"
    assert await SpendLog.objects.acount() == 0


async def test_unpriced_deployment_is_logged_at_zero_or_refused_when_blocking(settings, db):
    await Deployment.objects.acreate(model_id="self-hosted", model_name="mine", litellm_model="mock/my-own-model")
    body = {**CHAT, "model": "mine"}

    served = await post("/v1/chat/completions", body)
    settings.BLOCK_UNPRICED_MODELS = True
    refused = await post("/v1/chat/completions", body)

    assert served.status_code == 200 and served["x-litellm-response-cost"] == "0"
    log = await SpendLog.objects.aget()
    assert (log.pricing_source, log.cost) == ("unpriced", Decimal(0))
    assert refused.status_code == 400
    assert orjson.loads(refused.content)["error"]["code"] == "unpriced_model"


async def test_calls_are_refused_while_the_ledger_cannot_commit_and_resume_after(
    mock_deployment, monkeypatch, settings, tmp_path
):
    from django.db import OperationalError

    from spend import ledger as ledger_module

    settings.TOLLGATE_SPOOL_DIR = tmp_path
    current = ledger_module.ledger()

    def database_down(entries):
        raise OperationalError("connection refused")

    monkeypatch.setattr(current, "_writer", database_down)
    completed_during_the_outage = await post("/v1/chat/completions", CHAT)
    monkeypatch.setattr(ledger_module, "database_answers", lambda: False)
    refused = await post("/v1/chat/completions", CHAT)

    monkeypatch.setattr(current, "_writer", ledger_module.write_batch)
    monkeypatch.setattr(ledger_module, "database_answers", lambda: True)
    current._last_probe = 0.0
    resumed = await post("/v1/chat/completions", CHAT)

    # The upstream had answered: the call is kept in the spool and charged once the database is back.
    assert completed_during_the_outage.status_code == 200
    assert refused.status_code == 503
    assert orjson.loads(refused.content)["error"]["code"] == "ledger_unavailable"
    assert resumed.status_code == 200
    assert await SpendLog.objects.acount() == 2


async def test_a_call_the_ledger_cannot_take_still_settles_its_admission(mock_deployment, monkeypatch, settings):
    """Paid for upstream, then refused by the ledger: its slot is given back and its cost stays on the budget."""
    from asgiref.sync import sync_to_async

    from keys.cache import key_cache
    from keys.limits import live_spend
    from spend import ledger as ledger_module
    from tests.keys.factories import make_key

    raw_key, key = await sync_to_async(make_key)(max_budget=10, max_parallel_requests=1)
    headers = {"Authorization": f"Bearer {raw_key}"}
    current = ledger_module.ledger()

    def broken_writer(entries):
        raise ValueError("not a transient database error: the batch is refused, not spooled")

    monkeypatch.setattr(current, "_writer", broken_writer)
    refused = await post("/v1/chat/completions", CHAT, headers=headers)
    monkeypatch.setattr(current, "_writer", ledger_module.write_batch)
    served = await post("/v1/chat/completions", CHAT, headers=headers)  # the one parallel slot is free again

    assert (refused.status_code, served.status_code) == (503, 200)
    caller = await key_cache().caller(key.secret_hash)
    cost = Decimal(served["x-litellm-response-cost"])
    assert cost > 0 and live_spend(caller.key_limits) == 2 * cost  # the same call twice: the same cost twice
    assert await SpendLog.objects.acount() == 1


async def test_azure_style_path_names_the_model(mock_deployment):
    body = {"messages": CHAT["messages"]}

    response = await post("/openai/deployments/demo-model/chat/completions?api-version=2024-06-01", body)

    assert response.status_code == 200
    assert response["x-litellm-model-group"] == "demo-model"


async def test_repeated_failed_auth_from_one_address_is_slowed_before_any_key_lookup(
    mock_deployment, settings, monkeypatch
):
    from keys.cache import KeyCache

    settings.TOLLGATE_AUTH_FAILURE_LIMIT = 3
    for _ in range(3):
        assert (
            await post("/v1/chat/completions", CHAT, headers={"Authorization": "Bearer sk-guess"})
        ).status_code == 401

    async def no_lookup(self, token_hash):
        raise AssertionError("a throttled address must not reach the key cache (or the database behind it)")

    monkeypatch.setattr(KeyCache, "caller", no_lookup)
    slowed = await post("/v1/chat/completions", CHAT, headers={"Authorization": "Bearer sk-guess-again"})

    assert slowed.status_code == 429
    assert int(slowed["retry-after"]) >= 1


# --- clients that leave: served through the ASGI handler, as uvicorn serves it ----------------------------------


@pytest.fixture
def upstream_deployment(db, upstream):
    return Deployment.objects.create(
        model_id="up-1",
        model_name="gpt-4o",
        litellm_model="openai/gpt-4o",
        api_base=f"{upstream.url}/v1",
        input_cost_per_token=Decimal("0.000001"),
        output_cost_per_token=Decimal("0.000002"),
    )


async def serve_then_leave(upstream: FakeUpstream, body: dict, leave: str) -> list[dict]:
    """One call through the proxy's ASGI handler with a client that leaves at `leave`; the messages it was sent.

    "waiting": once the upstream has the request. "headers": while the response's headers are being sent, the send
    blocking (a full socket buffer) until the handler gives up on it: the body is never iterated. "first_words":
    once the first words of a stream have been sent."""
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    if leave == "waiting":
        upstream.on_request = lambda recorded: loop.call_soon_threadsafe(gone.set)
    request = [{"type": "http.request", "body": orjson.dumps(body), "more_body": False}]
    sent: list[dict] = []

    async def receive():
        if request:
            return request.pop()
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if leave == "headers" and message["type"] == "http.response.start":
            gone.set()
            await asyncio.Event().wait()
        if leave == "first_words" and b'"content":"Hello' in message.get("body", b""):
            gone.set()

    serving = asyncio.create_task(proxy_application(chat_scope(), receive, send))
    await asyncio.wait_for(serving, 10)
    assert serving.cancelling() == 0  # the cancellation that stopped the view was the handler's own, taken back
    return sent


def chat_scope(authorization: str = AUTH["Authorization"], path: str = "/v1/chat/completions") -> dict:
    """An ASGI scope for a POST (to /v1/chat/completions unless told), as uvicorn passes it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", authorization.encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def test_the_proxy_handler_serves_and_refuses_without_a_thread_hop(mock_deployment, monkeypatch):
    """Django's own handler hops to a thread to send request_started, to close the response and to log an error
    response (sync_to_async): under load each hop waits for the GIL. The proxy's handler does all three inline."""
    from asgiref.sync import SyncToAsync

    def hop(*args, **kwargs):
        raise AssertionError("sync_to_async on the proxy's path")

    monkeypatch.setattr(SyncToAsync, "__call__", hop)

    answers = [await serve_once(chat_scope(authorization)) for authorization in (AUTH["Authorization"], "Bearer x")]

    assert [sent[0]["status"] for sent in answers] == [200, 401]


async def test_the_proxy_handler_sends_no_request_signals_and_still_closes_what_a_response_holds(mock_deployment):
    """request_started and request_finished have nothing to do on the proxy's path (no database connection, cache
    or urlconf of the request's own); the response's closers (a stream's relay, the request) still run, and one
    failing does not stop the others."""
    from django.core import signals
    from django.http import HttpResponse

    from gateway.asgi import _close_without_signal

    heard = []

    def receiver(**kwargs):
        heard.append(kwargs)

    for signal in (signals.request_started, signals.request_finished):
        signal.connect(receiver, weak=False)
    try:
        answers = [await serve_once(chat_scope(authorization)) for authorization in (AUTH["Authorization"], "Bearer x")]
    finally:
        for signal in (signals.request_started, signals.request_finished):
            signal.disconnect(receiver)
    assert [sent[0]["status"] for sent in answers] == [200, 401]
    assert heard == []

    closed = []
    response = HttpResponse(b"{}")
    response._resource_closers += [lambda: closed.append("first"), lambda: 1 / 0, lambda: closed.append("last")]
    _close_without_signal(response)
    assert closed == ["first", "last"] and response.closed and not response._resource_closers


async def serve_once(scope: dict, body: dict = CHAT) -> list[dict]:
    """One request through the proxy's ASGI handler, from a client that stays; the messages it was sent."""
    request = [{"type": "http.request", "body": orjson.dumps(body), "more_body": False}]
    sent: list[dict] = []

    async def receive():
        if request:
            return request.pop()
        await asyncio.Event().wait()  # the client stays

    async def send(message):
        sent.append(message)

    await asyncio.wait_for(proxy_application(scope, receive, send), 10)
    return sent


async def test_the_proxy_handler_serves_the_proxys_paths_and_404s_the_rest_under_its_prefixes(mock_deployment):
    azure = "/openai/deployments/{}/chat/completions"
    paths = ["/v1/chat/completions", "/chat/completions", azure.format("demo-model"), azure.format("demo-model")]
    paths += [azure.format("no-such-deployment"), "/v1/chat/completions/more", "/v1/completions-and-more"]

    statuses = [
        (await serve_once(chat_scope(path=path), {"messages": CHAT["messages"]}))[0]["status"] for path in paths
    ]

    # The Azure path names the model: a body without one is a chat with the deployment named in the path.
    assert statuses == [400, 400, 200, 200, 400, 404, 404]


def test_the_proxy_handler_serves_async_views_only(settings):
    with pytest.raises(ImproperlyConfigured, match="async views only"):
        gateway.asgi._resolve("/admin/login/", settings.ROOT_URLCONF)


async def test_a_charged_call_logs_every_token_count_the_upstream_reported(upstream, upstream_deployment):
    upstream.prompt_tokens, upstream.completion_tokens, upstream.cached_tokens, upstream.reasoning_tokens = 20, 9, 4, 5
    upstream.usage_extra = {"cache_creation_input_tokens": 3}

    response = await post("/v1/chat/completions", {**CHAT, "model": "gpt-4o"})

    assert response.status_code == 200
    log = await SpendLog.objects.aget()
    counts = (log.prompt_tokens, log.completion_tokens, log.cached_tokens, log.cache_creation_tokens)
    assert (*counts, log.reasoning_tokens) == (20, 9, 4, 3, 5)


async def the_only_log() -> SpendLog:
    """The call's spend log: a client that left is charged in the background, so it may commit after the response."""
    await wait_until_async(SpendLog.objects.aexists, "the call's spend log")
    return await SpendLog.objects.aget()


@pytest.mark.parametrize(
    ("leave", "stream", "behaviour"),
    [
        ("waiting", False, Behaviour(first_byte_delay=30)),
        ("waiting", True, Behaviour(first_byte_delay=30)),
        ("headers", True, Behaviour(chunk_delay=30)),
        ("first_words", True, Behaviour(chunk_delay=0.2, stream_end="hang")),
    ],
    ids=["waiting-whole", "waiting-stream", "headers", "first-words"],
)
async def test_a_client_that_leaves_closes_the_upstream_call_and_is_charged_for_what_was_used(
    upstream, upstream_deployment, leave, stream, behaviour
):
    upstream.script(behaviour)

    sent = await serve_then_leave(upstream, {**CHAT, "model": "gpt-4o", "stream": stream}, leave)

    await upstream.wait_for_idle_async()  # the gateway closed its upstream connection: nothing waits on it
    assert upstream.cancelled == 1
    log = await the_only_log()
    assert (log.status, log.error_class, log.attempts, log.deployment_id) == (
        "client_disconnected",
        "ClientDisconnected",
        1,
        "up-1",
    )
    # Tokens once the upstream has accepted the call (its prompt, estimated), its words as far as they were relayed.
    prompt, completion = {"waiting": (0, 0), "headers": (3, 0), "first_words": (3, 2)}[leave]
    assert (log.prompt_tokens, log.completion_tokens) == (prompt, completion)
    assert log.cost == prompt * Decimal("0.000001") + completion * Decimal("0.000002")
    if leave == "headers":
        assert [message["type"] for message in sent] == ["http.response.start"]  # the body was never iterated


async def test_a_cancellation_from_the_server_is_not_taken_for_a_client_leaving_and_the_call_is_charged(
    upstream, upstream_deployment
):
    upstream.script(Behaviour(first_byte_delay=30))
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()
    upstream.on_request = lambda recorded: loop.call_soon_threadsafe(arrived.set)
    request = [{"type": "http.request", "body": orjson.dumps({**CHAT, "model": "gpt-4o"}), "more_body": False}]

    async def receive():
        if request:
            return request.pop()
        await asyncio.Event().wait()  # the client stays

    async def send(message):
        raise AssertionError(f"nothing is sent before the upstream answers: {message}")

    serving = asyncio.create_task(proxy_application(chat_scope(), receive, send))
    await asyncio.wait_for(arrived.wait(), 10)
    serving.cancel()  # as a server stopping does

    with pytest.raises(asyncio.CancelledError):
        await serving
    await upstream.wait_for_idle_async()
    assert upstream.cancelled == 1
    log = await the_only_log()
    assert (log.status, log.attempts, log.cost) == ("client_disconnected", 1, 0)


async def test_refused_calls_and_upstream_requests_write_no_log_line_at_the_default_level(mock_deployment, caplog):
    with caplog.at_level("INFO"):
        for _ in range(3):
            assert (
                await post("/v1/chat/completions", CHAT, headers={"Authorization": "Bearer sk-no"})
            ).status_code == 401
        assert (await post("/v1/chat/completions", {"model": "demo-model"})).status_code == 400

    assert [record for record in caplog.records if record.name in ("django.request", "httpx")] == []
