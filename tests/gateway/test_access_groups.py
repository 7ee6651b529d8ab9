"""Model access groups: `model_info.access_groups` on deployments; a key or team listing a group reaches its members."""

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from gateway.config_import import ConfigError, apply_config, parse_config
from gateway.models import Deployment
from tests.e2e.server import MASTER_KEY
from tests.keys.factories import make_key, make_team

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = """
model_list:
  - model_name: beta-chat
    litellm_params: {model: mock/beta}
    model_info: {id: beta, access_groups: [beta-models, internal]}
  - model_name: beta-embed
    litellm_params: {model: mock/embed}
    model_info: {id: beta-embed, access_groups: [beta-models]}
  - model_name: stable-chat
    litellm_params: {model: mock/stable}
    model_info: {id: stable}
"""


@pytest.fixture
def imported(db):
    apply_config(parse_config(CONFIG))


async def chat(model: str, key: str):
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "Hello"}]})
    headers = {"Authorization": f"Bearer {key}"}
    return await AsyncClient().post("/v1/chat/completions", body, content_type="application/json", headers=headers)


async def listed(key: str) -> set[str]:
    response = await AsyncClient().get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    return {model["id"] for model in orjson.loads(response.content)["data"]}


async def test_a_key_listing_an_access_group_reaches_every_member_group_and_no_other(imported):
    raw_key, _key = await sync_to_async(make_key)(models=["beta-models"])

    assert (await chat("beta-chat", raw_key)).status_code == 200
    refused = await chat("stable-chat", raw_key)
    assert refused.status_code == 403
    assert "Allowed models: beta-models" in orjson.loads(refused.content)["error"]["message"]
    assert await listed(raw_key) == {"beta-chat", "beta-embed"}


async def test_a_team_listing_an_access_group_limits_its_keys_to_the_members(imported):
    team = await sync_to_async(make_team)(models=["internal"])
    raw_key, _key = await sync_to_async(make_key)(team_id=team.team_id)

    assert (await chat("beta-chat", raw_key)).status_code == 200
    assert (await chat("beta-embed", raw_key)).status_code == 403  # in beta-models, not in internal
    assert await listed(raw_key) == {"beta-chat"}


async def test_keys_made_through_the_api_may_list_an_access_group(imported):
    response = await AsyncClient().post(
        "/key/generate",
        orjson.dumps({"models": ["beta-models"]}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
    )

    assert response.status_code == 200, response.content
    assert (await chat("beta-chat", orjson.loads(response.content)["key"])).status_code == 200


def test_access_groups_are_stored_on_the_deployment_and_shown_in_model_info(imported, client, master_headers):
    assert Deployment.objects.get(model_id="beta").access_groups == ["beta-models", "internal"]

    response = client.get("/model/info", {"litellm_model_id": "beta"}, **master_headers)

    assert response.json()["data"][0]["model_info"]["access_groups"] == ["beta-models", "internal"]


@pytest.mark.parametrize("written", ["beta-models", "[beta, 3]", "[' ']", "{a: b}"])
def test_access_groups_must_be_a_list_of_names(written):
    with pytest.raises(ConfigError) as refused:
        parse_config(
            f"model_list:\n  - model_name: x\n    litellm_params: {{model: mock/x}}\n"
            f"    model_info: {{access_groups: {written}}}\n"
        )

    assert refused.value.field == "model_list[0].model_info.access_groups"
    assert refused.value.line == 4
