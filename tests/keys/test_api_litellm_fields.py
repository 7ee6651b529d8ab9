"""/key/generate and /key/update take LiteLLM's fields and each is enforced: a chosen `key`, an initial `spend`,
`allowed_routes`, `enforced_params`, `permissions`, `blocked`; tags and per-model limits are kept and shown. A
virtual key reads its own /key/info; /key/{key}/regenerate renews a secret. Calls go through the official SDK."""

from decimal import Decimal

import openai
import pytest
from asgiref.sync import sync_to_async

from keys.auth import hash_key
from keys.models import KeyChange, VirtualKey
from spend.models import SpendLog
from spend.reconcile import find_drift
from tests.e2e.server import MASTER_KEY
from tests.keys.litellm_client import Gateway, mock_gateway

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def gateway():
    async with mock_gateway() as gateway:
        yield gateway


async def generate(gateway: Gateway, **fields) -> dict:
    status, made = await gateway.post("/key/generate", {"duration": "1h", **fields})
    assert status == 200, made
    return made


def assert_refused(answer, status: int, code: str, param=None) -> None:
    assert isinstance(answer, openai.APIStatusError), answer
    assert (answer.status_code, answer.code, answer.param) == (status, code, param), answer.message


# -- a chosen key --------------------------------------------------------------------------------------------------------


async def test_a_chosen_key_works_and_is_stored_only_hashed(gateway):
    made = await generate(gateway, key="sk-my-chosen-key-1234", key_alias="chosen")

    assert made["key"] == "sk-my-chosen-key-1234"
    assert made["token"] == hash_key("sk-my-chosen-key-1234")
    assert not isinstance(await gateway.chat("sk-my-chosen-key-1234"), Exception)
    stored = await VirtualKey.objects.aget(token_hash=made["token"])
    assert "sk-my-chosen-key-1234" not in str(stored.__dict__)
    changes = [change.changes async for change in KeyChange.objects.all()]
    assert "sk-my-chosen-key-1234" not in str(changes)


@pytest.mark.parametrize(
    "chosen",
    ["sk-taken-key", MASTER_KEY, "my-key-without-prefix", "sk-", "sk-with space"],
    ids=["in-use", "master-key", "no-sk-prefix", "empty", "space"],
)
async def test_a_chosen_key_in_use_or_malformed_is_refused_naming_it(gateway, chosen):
    await generate(gateway, key="sk-taken-key")

    status, answer = await gateway.post("/key/generate", {"key": chosen})

    assert status == 400, answer
    assert answer["error"]["param"] == "key"
    assert await VirtualKey.objects.acount() == 1


async def test_a_chosen_key_that_was_a_regenerated_keys_first_secret_is_refused(gateway):
    first = await generate(gateway, key="sk-first-secret")
    assert (await gateway.post("/key/regenerate", {"key": first["key"]}))[0] == 200

    status, answer = await gateway.post("/key/generate", {"key": "sk-first-secret"})

    assert (status, answer["error"]["param"]) == (400, "key")


# -- spend set at creation ---------------------------------------------------------------------------------------------


async def test_an_initial_spend_is_a_ledger_adjustment_and_counts_against_the_budget(gateway):
    made = await generate(gateway, spend=Decimal("0.999999999999999999"), max_budget=1)

    assert made["spend"] == Decimal("0.999999999999999999")
    adjustment = await SpendLog.objects.aget(call_type="adjustment")
    assert (adjustment.key_hash, adjustment.cost) == (made["token"], Decimal("0.999999999999999999"))
    assert await sync_to_async(find_drift)() == []
    refused = await gateway.chat(made["key"])
    assert_refused(refused, 400, "budget_exceeded", "max_budget")


# -- allowed_routes ----------------------------------------------------------------------------------------------------


async def test_allowed_routes_refuse_every_other_route_with_403(gateway):
    made = await generate(gateway, allowed_routes=["/chat/completions"])
    sdk = gateway.sdk(made["key"])

    assert not isinstance(await gateway.chat(made["key"]), Exception)
    with pytest.raises(openai.PermissionDeniedError) as embedding:
        await sdk.embeddings.create(model="demo-model", input="a")
    with pytest.raises(openai.PermissionDeniedError) as listing:
        await sdk.models.list()

    assert embedding.value.code == listing.value.code == "route_not_allowed"
    assert embedding.value.body["type"] == "auth_error"
    assert "Tried to call route: /v1/embeddings" in embedding.value.message
    assert await SpendLog.objects.filter(call_type="embedding").acount() == 0


async def test_a_route_group_allows_its_routes(gateway):
    made = await generate(gateway, allowed_routes=["llm_api_routes"])

    await gateway.sdk(made["key"]).embeddings.create(model="demo-model", input="a")
    status, answer = await gateway.get("/key/info", auth=made["key"])

    assert (status, answer["error"]["code"]) == (403, "route_not_allowed")


@pytest.mark.parametrize("entry", ["chat/completions", "every_route", ""])
async def test_an_allowed_route_that_is_no_path_or_group_is_refused(gateway, entry):
    status, answer = await gateway.post("/key/generate", {"allowed_routes": [entry]})

    assert (status, answer["error"]["param"]) == (400, "allowed_routes")


async def test_allowed_routes_set_by_update_apply_at_the_next_call(gateway):
    made = await generate(gateway)
    assert not isinstance(await gateway.chat(made["key"]), Exception)

    status, updated = await gateway.post("/key/update", {"key": made["key"], "allowed_routes": ["/embeddings"]})

    assert (status, updated["allowed_routes"]) == (200, ["/embeddings"])
    assert_refused(await gateway.chat(made["key"]), 403, "route_not_allowed")
    assert (await gateway.post("/key/update", {"key": made["key"], "allowed_routes": None}))[0] == 200
    assert not isinstance(await gateway.chat(made["key"]), Exception)


# -- enforced_params ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "missing"),
    [
        ({}, "user"),
        ({"user": "alice"}, "metadata.generation_name"),
        ({"user": "alice", "metadata": {"other": "x"}}, "metadata.generation_name"),
    ],
)
async def test_a_call_without_an_enforced_param_is_refused_naming_it(gateway, extra, missing):
    made = await generate(gateway, enforced_params=["user", "metadata.generation_name"])

    refused = await gateway.chat(made["key"], extra_body=extra)

    assert_refused(refused, 400, "missing_param", missing)
    assert f"please pass param={missing} in request body" in refused.message
    assert await SpendLog.objects.acount() == 0


async def test_a_call_with_every_enforced_param_goes_through(gateway):
    made = await generate(gateway, enforced_params=["user", "metadata.generation_name"])

    answer = await gateway.chat(made["key"], user="alice", metadata={"generation_name": "summary"})

    assert not isinstance(answer, Exception), answer
    assert await SpendLog.objects.filter(end_user="alice").acount() == 1


@pytest.mark.parametrize("param", ["metadata.", ".user", "a..b", "with space"])
async def test_an_enforced_param_that_names_nothing_is_refused(gateway, param):
    status, answer = await gateway.post("/key/generate", {"enforced_params": [param]})

    assert (status, answer["error"]["param"]) == (400, "enforced_params")


# -- permissions -------------------------------------------------------------------------------------------------------


async def test_get_spend_routes_lets_a_key_read_the_global_spend_reports_and_nothing_else(gateway):
    reader = await generate(gateway, permissions={"get_spend_routes": True, "pii": False})
    other = await generate(gateway, permissions={"get_spend_routes": False})

    assert reader["permissions"] == {"get_spend_routes": True, "pii": False}
    assert (await gateway.get("/global/spend", auth=reader["key"]))[0] == 200
    assert (await gateway.get("/global/spend", auth=other["key"]))[0] == 401
    assert (await gateway.get("/spend/logs", auth=reader["key"]))[0] == 401
    assert (await gateway.post("/key/generate", {}, auth=reader["key"]))[0] == 401


async def test_a_permission_of_the_wrong_type_is_refused(gateway):
    status, answer = await gateway.post("/key/generate", {"permissions": {"get_spend_routes": "yes"}})

    assert (status, answer["error"]["param"]) == (400, "permissions")


# -- blocked, tags, per-model limits -----------------------------------------------------------------------------------


async def test_a_key_generated_blocked_is_refused_until_unblocked(gateway):
    made = await generate(gateway, blocked=True)

    assert_refused(await gateway.chat(made["key"]), 401, "key_blocked")
    assert (await gateway.post("/key/update", {"key": made["key"], "blocked": False}))[0] == 200
    assert not isinstance(await gateway.chat(made["key"]), Exception)


async def test_tags_and_per_model_limits_are_kept_and_shown(gateway):
    made = await generate(
        gateway,
        tags=["team-a", "prod"],
        model_max_budget={"demo-model": {"budget_limit": Decimal("0.000000000000000001"), "time_period": "1d"}},
        model_rpm_limit={"demo-model": 5},
        model_tpm_limit={"demo-model": 1000},
    )

    status, info = await gateway.get("/key/info", auth=made["key"])

    assert status == 200
    shown = {name: info["info"][name] for name in ("tags", "model_max_budget", "model_rpm_limit", "model_tpm_limit")}
    assert shown == {
        "tags": ["team-a", "prod"],
        "model_max_budget": {"demo-model": {"budget_limit": "0.000000000000000001", "time_period": "1d"}},
        "model_rpm_limit": {"demo-model": 5},
        "model_tpm_limit": {"demo-model": 1000},
    }
    status, updated = await gateway.post("/key/update", {"key": made["key"], "tags": None, "model_rpm_limit": {}})
    assert (status, updated["tags"], updated["model_rpm_limit"]) == (200, [], {})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model_max_budget", {"demo-model": {"budget_limit": -1}}),
        ("model_max_budget", {"demo-model": {"budget_limit": 1, "time_period": "often"}}),
        ("model_rpm_limit", {"demo-model": -1}),
        ("model_tpm_limit", {"demo-model": "many"}),
        ("tags", "prod"),
    ],
)
async def test_a_malformed_tag_or_per_model_limit_is_refused_naming_it(gateway, field, value):
    status, answer = await gateway.post("/key/generate", {field: value})

    assert status == 400, answer
    assert answer["error"]["param"].split(".")[0] == field


async def test_an_unknown_field_is_still_refused_naming_it(gateway):
    status, answer = await gateway.post("/key/generate", {"allowed_route": ["/chat/completions"]})

    assert (status, answer["error"]["param"], answer["error"]["message"]) == (
        400,
        "allowed_route",
        "allowed_route: Unknown field.",
    )


# -- /key/info without `key` -------------------------------------------------------------------------------------------


async def test_a_key_reads_its_own_info_without_naming_itself(gateway):
    made = await generate(gateway, key_alias="mine", max_budget=3)

    status, info = await gateway.get("/key/info", auth=made["key"])
    named_status, named = await gateway.get("/key/info", auth=made["key"], key=made["token"])

    assert status == named_status == 200
    assert info["key"] == made["token"]
    assert (info["info"]["token"], info["info"]["key_alias"], info["info"]["max_budget"]) == (made["token"], "mine", 3)
    assert named["info"] == info["info"]


async def test_a_key_asking_for_another_keys_info_is_refused_403(gateway):
    mine, theirs = await generate(gateway), await generate(gateway)

    status, answer = await gateway.get("/key/info", auth=mine["key"], key=theirs["token"])

    assert status == 403
    assert answer["error"]["type"] == "auth_error"
    assert theirs["token"] not in str(answer)


async def test_the_master_key_without_key_is_told_to_name_it(gateway):
    status, answer = await gateway.get("/key/info")

    assert (status, answer["error"]["param"]) == (400, "key")


async def test_a_blocked_key_an_unknown_one_or_none_cannot_read_key_info(gateway):
    made = await generate(gateway, blocked=True)

    blocked = await gateway.get("/key/info", auth=made["key"])
    unknown = await gateway.get("/key/info", auth="sk-not-a-key")
    anonymous = await gateway.client.get("/key/info")

    assert (blocked[0], blocked[1]["error"]["code"]) == (401, "key_blocked")
    assert (unknown[0], unknown[1]["error"]["code"]) == (401, "invalid_api_key")
    assert (anonymous.status_code, anonymous.json()["error"]["type"]) == (401, "auth_error")


# -- /key/{key}/regenerate -----------------------------------------------------------------------------------------------


async def test_regenerate_in_the_path_form_renews_the_secret_and_keeps_the_key(gateway):
    made = await generate(gateway, spend=Decimal("0.25"))

    # By its token: a secret in a URL is in every access log on the way (the path takes either, as LiteLLM's does).
    status, renewed = await gateway.post(f"/key/{made['token']}/regenerate", {"key_alias": "renewed"})

    assert status == 200, renewed
    assert renewed["key"] != made["key"]
    assert (renewed["token"], renewed["key_alias"], renewed["spend"]) == (made["token"], "renewed", Decimal("0.25"))
    assert_refused(await gateway.chat(made["key"]), 401, "invalid_api_key")
    assert not isinstance(await gateway.chat(renewed["key"]), Exception)


async def test_regenerate_in_the_path_form_of_an_unknown_key_is_404(gateway):
    status, answer = await gateway.post("/key/sk-nobody/regenerate", {})

    assert (status, answer["error"]["param"]) == (404, "key")
