"""A config naming providers Tollgate has no adapter for: those deployments are kept, disabled, with the reason in
/model/info and the admin, and never routed; the rest of the config serves."""

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import AsyncClient
from django.urls import reverse

from gateway.config_import import apply_config, parse_config
from gateway.models import Deployment
from gateway.proxy.upstream import close_upstream_pool
from tests.e2e.server import MASTER_KEY
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.django_db(transaction=True)

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
CONFIG = """
model_list:
  - model_name: served
    litellm_params: {{model: openai/gpt-4o, api_base: "{up}/v1", api_key: sk-served-secret-1}}
    model_info: {{id: served-1}}
  - model_name: watsonx-granite
    litellm_params: {{model: watsonx/ibm/granite-13b-chat-v2, api_key: watsonx-secret-key-2}}
    model_info: {{id: watsonx-1}}
  - model_name: replicate-llama
    litellm_params: {{model: replicate/meta/llama-2-70b-chat}}
    model_info: {{id: replicate-1}}
  - model_name: typo
    litellm_params: {{model: nope/x}}
    model_info: {{id: nope-1}}
"""
CHAT = {"messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture
async def upstream():
    async with FakeUpstream() as up:
        await sync_to_async(apply_config)(parse_config(CONFIG.format(up=up.url)))
        yield up
    await close_upstream_pool()


async def chat(model: str):
    return await AsyncClient().post(
        "/v1/chat/completions", orjson.dumps({**CHAT, "model": model}), content_type="application/json", headers=AUTH
    )


async def test_the_rest_of_the_config_serves_and_the_unservable_groups_are_not_routed(upstream):
    served = await chat("served")

    assert served.status_code == 200
    assert orjson.loads(served.content)["choices"][0]["message"]["content"] == upstream.reply
    for group in ("watsonx-granite", "replicate-llama", "typo"):
        refused = await chat(group)
        assert refused.status_code == 400
        assert orjson.loads(refused.content)["error"]["code"] == "model_not_found"
    assert len(upstream.requests) == 1


async def test_model_info_says_which_deployments_are_disabled_and_why(upstream):
    response = await AsyncClient().get("/model/info", headers=AUTH)

    info = {d["model_info"]["id"]: d["model_info"] for d in orjson.loads(response.content)["data"]}
    assert (info["served-1"]["enabled"], info["served-1"]["disabled_reason"]) == (True, None)
    for model_id, provider in (("watsonx-1", "watsonx"), ("replicate-1", "replicate"), ("nope-1", "nope")):
        assert info[model_id]["enabled"] is False
        assert f"provider {provider!r} is not supported by Tollgate" in info[model_id]["disabled_reason"]


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "a-long-test-password-1")
    client.force_login(user)
    return client


def test_the_admin_shows_the_reason_and_refuses_to_enable_it(staff_client):
    apply_config(parse_config(CONFIG.format(up="http://127.0.0.1:9")))
    watsonx = Deployment.objects.get(model_id="watsonx-1")
    reason = "provider &#x27;watsonx&#x27; is not supported by Tollgate"

    listing = staff_client.get(reverse("admin:gateway_deployment_changelist"))
    change_url = reverse("admin:gateway_deployment_change", args=[watsonx.pk])
    page = staff_client.get(change_url)
    enabling = staff_client.post(
        change_url,
        {
            "model_name": "watsonx-granite",
            "litellm_model": "watsonx/ibm/granite-13b-chat-v2",
            "model_id": "watsonx-1",
            "enabled": "on",
            "source": "config",
            "extra_params": "{}",
            "extra_pricing": "{}",
            "model_info": "{}",
        },
    )

    assert reason in listing.content.decode() and reason in page.content.decode()
    assert enabling.status_code == 200  # the form again, with the error
    assert "Cannot be enabled" in enabling.content.decode()
    watsonx.refresh_from_db()
    assert watsonx.enabled is False
