"""Credentials written into a deployment's api_base (user:password@, a key in the query) reach its upstream and
nobody else: not key holders (response headers, bodies, their spend logs), not /model/info, /health or the admin."""

import base64
from decimal import Decimal

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import AsyncClient
from django.urls import reverse

from gateway.models import Deployment
from gateway.proxy.registry import public_url
from spend.models import SpendLog
from tests.e2e.server import MASTER_KEY
from tests.keys.factories import make_key

# The audit (tests/secrets_audit.py) registers these by their names: any log or error body that shows one fails.
URL_PASSWORD = "url-pass-5b1e09c4d7a3"
QUERY_SECRET = "query-key-8f2c6a0e4b19"
MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}


@pytest.mark.parametrize(
    ("api_base", "shown"),
    [
        ("https://api.example.com/v1", "https://api.example.com/v1"),
        ("http://gpu:8000", "http://gpu:8000"),
        ("https://res.azure.com/?api-version=2024-06-01", "https://res.azure.com/?api-version=2024-06-01"),
        (f"http://tg-user:{URL_PASSWORD}@vllm:9000/v1", "http://***@vllm:9000/v1"),
        (f"http://tg-user:p@ss:{URL_PASSWORD}@vllm:9000/v1", "http://***@vllm:9000/v1"),
        (f"http://{URL_PASSWORD}@[::1]:9000/v1", "http://***@[::1]:9000/v1"),
        (f"https://fn.azurewebsites.net/api?code={QUERY_SECRET}", "https://fn.azurewebsites.net/api?code=***"),
        (f"https://h/v1?api-key={QUERY_SECRET}&api-version=1", "https://h/v1?api-key=***&api-version=1"),
        (f"https://h/v1?key={QUERY_SECRET}#{QUERY_SECRET}", "https://h/v1?key=***"),
        (f"https://h/v1?{QUERY_SECRET}", "https://h/v1?***"),
        (f"tg-user:{URL_PASSWORD}@vllm/v1", "***"),  # no scheme: nothing can be told apart safely
        (f"http://tg-user:{URL_PASSWORD}/v1", "***"),  # a user and password with no host: not a port
        ("", ""),
    ],
)
def test_public_url_keeps_scheme_host_port_and_path_only(api_base, shown):
    assert public_url(api_base) == shown


@pytest.mark.django_db(transaction=True)
async def test_key_holder_never_sees_credentials_of_the_api_base_the_upstream_receives(upstream):
    host = upstream.url.removeprefix("http://")
    deployment = await Deployment.objects.acreate(
        model_id="creds-1",
        model_name="gpt-4o",
        litellm_model="openai/gpt-4o",
        api_base=f"http://tg-user:{URL_PASSWORD}@{host}/v1",
        input_cost_per_token=Decimal("0.000001"),
        output_cost_per_token=Decimal("0.000002"),
    )
    raw_key, _ = await sync_to_async(make_key)()
    holder = {"Authorization": f"Bearer {raw_key}"}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}

    answers = [
        await AsyncClient().post("/v1/chat/completions", orjson.dumps(call), "application/json", headers=holder)
        for call in (body, {**body, "stream": True})
    ]

    assert [answer.status_code for answer in answers] == [200, 200]
    for answer in answers:
        assert answer["x-litellm-model-api-base"] == f"http://***@{host}/v1"
        content = answer.content if not answer.streaming else b"".join([p async for p in answer.streaming_content])
        assert URL_PASSWORD.encode() not in content + str(answer.headers).encode()
    # The upstream still gets them: aiohttp sends the URL's user and password as basic auth.
    assert {request.headers["authorization"] for request in upstream.requests} == {
        "Basic " + base64.b64encode(f"tg-user:{URL_PASSWORD}".encode()).decode()
    }
    logs = [log async for log in SpendLog.objects.order_by("id")]
    assert [log.api_base for log in logs] == [f"http://***@{host}/v1"] * 2
    assert all(URL_PASSWORD not in repr(vars(log)) for log in logs)

    admin = AsyncClient()
    user = await sync_to_async(get_user_model().objects.create_superuser)("root", "r@example.com", "a-long-pw-31")
    await admin.aforce_login(user)
    shown = [
        await AsyncClient().get("/model/info", headers=MASTER),
        await AsyncClient().get("/v1/model/info", headers=MASTER),
        await AsyncClient().get("/health", headers=MASTER),
        await admin.get(reverse("admin:gateway_deployment_change", args=[deployment.pk])),
        await admin.get(reverse("admin:gateway_deployment_changelist")),
        await admin.get(reverse("admin:spend_spendlog_change", args=[logs[0].pk])),
    ]
    assert [page.status_code for page in shown] == [200] * len(shown)
    for page in shown:
        assert URL_PASSWORD.encode() not in page.content
    assert f"http://***@{host}/v1".encode() in shown[0].content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("api_base", "shown"),
    [
        (f"http://tg-user:{URL_PASSWORD}@vllm:9000/v1", "http://***@vllm:9000/v1"),
        (f"https://fn.azurewebsites.net/api?code={QUERY_SECRET}", "https://fn.azurewebsites.net/api?code=***"),
        (f"https://h/v1?api-key={QUERY_SECRET}", "https://h/v1?api-key=***"),
    ],
)
def test_model_info_shows_api_base_without_credentials(client, master_headers, api_base, shown):
    entry = {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_base": api_base}}

    created = client.post("/model/new", entry, content_type="application/json", **master_headers)
    listed = client.get("/model/info", **master_headers)

    assert created.status_code == 200
    assert created.json()["litellm_params"]["api_base"] == shown
    assert listed.json()["data"][0]["litellm_params"]["api_base"] == shown
    assert Deployment.objects.get().api_base == api_base  # stored as given: the upstream is called with it


@pytest.mark.django_db
def test_admin_form_keeps_the_stored_api_base_when_its_shown_form_comes_back(admin_client):
    deployment = Deployment.objects.create(
        model_name="m", litellm_model="openai/gpt-4o", api_base=f"http://u:{URL_PASSWORD}@vllm:9000/v1"
    )
    url = reverse("admin:gateway_deployment_change", args=[deployment.pk])
    page = admin_client.get(url)
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name in form.fields}
    data.update(model_name="renamed", extra_params="{}", model_info="{}", extra_pricing="{}")

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    deployment.refresh_from_db()
    assert (deployment.model_name, deployment.api_base) == ("renamed", f"http://u:{URL_PASSWORD}@vllm:9000/v1")
    assert URL_PASSWORD.encode() not in page.content
