"""/key/*: the spec's curl examples verbatim, every validation error, and the key's life through the API."""

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from keys.auth import hash_key
from keys.cache import key_limits
from keys.limits import admit
from keys.models import KeyChange, VirtualKey
from spend.selectors import key_hash_of
from tests.keys.factories import caller, make_deployment, make_key, make_team

pytestmark = pytest.mark.django_db


def _close_to(moment: str, expected: datetime) -> bool:
    return abs(datetime.fromisoformat(moment) - expected) < timedelta(seconds=5)


def test_spec_generate_temporary_key_with_curl_d_and_no_content_type(api):
    # curl 'http://0.0.0.0:8000/key/generate' --h 'Authorization: Bearer sk-1234'
    #   --d '{"models": ["gpt-3.5-turbo", "gpt-4", "claude-2"], "duration": "20m"}'
    status, body = api.post(
        "/key/generate",
        '{"models": ["gpt-3.5-turbo", "gpt-4", "claude-2"], "duration": "20m"}',
        CONTENT_TYPE="application/x-www-form-urlencoded",
    )
    assert status == 200, body
    assert body["key"].startswith("sk-") and len(body["key"]) >= 35
    assert _close_to(body["expires"], timezone.now() + timedelta(minutes=20))
    stored = VirtualKey.objects.get()
    assert stored.token_hash == hash_key(body["key"])
    assert stored.models == ["gpt-3.5-turbo", "gpt-4", "claude-2"]
    assert body["key"] not in str(stored.__dict__)


def test_spec_upgrade_downgrade_key_with_aliases(api):
    make_deployment("my-free-tier", "huggingface/HuggingFaceH4/zephyr-7b-beta")
    make_deployment("my-paid-tier", "gpt-4")
    status, body = api.post(
        "/key/generate",
        """{
"models": ["my-free-tier"],
"aliases": {"gpt-3.5-turbo": "my-free-tier"},
"duration": "30min"
}""",
    )
    assert status == 200, body
    assert body["aliases"] == {"gpt-3.5-turbo": "my-free-tier"}
    assert _close_to(body["expires"], timezone.now() + timedelta(minutes=30))


def test_spec_key_info_shows_spend_models_aliases_and_config(api):
    make_deployment("gpt-3.5-turbo")
    raw_key, _ = make_key(
        models=["gpt-3.5-turbo", "gpt-4", "claude-2"], aliases={"mistral-7b": "gpt-3.5-turbo"}, duration="1h"
    )
    status, body = api.get(f"/key/info?key={raw_key}")
    assert status == 200, body
    assert body["key"] == raw_key
    info = body["info"]
    assert info["token"] == hash_key(raw_key)
    assert info["spend"] == 0
    assert info["models"] == ["gpt-3.5-turbo", "gpt-4", "claude-2"]
    assert info["aliases"] == {"mistral-7b": "gpt-3.5-turbo"}
    assert info["config"] == {}
    assert _close_to(info["expires"], timezone.now() + timedelta(hours=1))


def test_a_key_made_without_duration_never_expires_by_default(api):
    # LiteLLM's keys never expire unless asked; the admin's expiry field says "Empty: never expires" too.
    status, body = api.post("/key/generate", {"models": ["gpt-4"]})
    assert status == 200, body
    assert body["expires"] is None
    assert VirtualKey.objects.get().expires is None


@pytest.mark.parametrize(
    ("default", "expected_expiry"),
    [("1h", timedelta(hours=1)), ("30d", timedelta(days=30)), ("never", None)],
)
def test_duration_null_uses_the_default(api, settings, default, expected_expiry):
    settings.KEY_DEFAULT_DURATION = default
    status, body = api.post("/key/generate", {"duration": None})
    assert status == 200, body
    if expected_expiry is None:
        assert body["expires"] is None
    else:
        assert _close_to(body["expires"], timezone.now() + expected_expiry)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"modles": ["gpt-4"]}, "modles"),
        ({"max_budget": -1}, "max_budget"),
        ({"max_budget": "ten"}, "max_budget"),
        ({"soft_budget": -0.5}, "soft_budget"),
        ({"duration": "20x"}, "duration"),
        ({"duration": "0m"}, "duration"),
        ({"budget_duration": "monthly"}, "budget_duration"),
        ({"budget_duration": "never"}, "budget_duration"),
        ({"team_id": "no-such-team"}, "team_id"),
        ({"aliases": {"gpt-3.5-turbo": "no-such-group"}}, "aliases"),
        ({"rpm_limit": -1}, "rpm_limit"),
        ({"tpm_limit": 1.5}, "tpm_limit"),
        ({"max_parallel_requests": -2}, "max_parallel_requests"),
        ({"models": "gpt-4"}, "models"),
        ({"metadata": []}, "metadata"),
        ([], None),
        # Each value must be of its JSON type: DRF would store 5 as "5" and read "true" as true, "5" as 5.
        ({"key_alias": 5}, "key_alias"),
        ({"blocked": "true"}, "blocked"),
        ({"max_budget": "5"}, "max_budget"),
        ({"models": ["gpt-4", 4]}, "models"),
        # What the database cannot hold was a 500: NUL (PostgreSQL), a lone surrogate (UTF-8), numbers beyond
        # the columns, durations past year 9999 or longer than budget_duration's column.
        ({"metadata": {"note": "a\u0000b"}}, "metadata"),
        ({"config": {"note": "\ud800"}}, "config"),
        ({"aliases": {"gpt-3.5\u0000": "gpt-4"}}, "aliases"),
        ({"tpm_limit": 2**63}, "tpm_limit"),
        ({"max_parallel_requests": 2**31}, "max_parallel_requests"),
        ({"duration": "99999999999d"}, "duration"),
        ({"duration": "100000mo"}, "duration"),
        ({"budget_duration": "0000000000000000000001d"}, "budget_duration"),
        # The schema's pattern: ASCII digits, no spaces around.
        ({"duration": "\u0663d"}, "duration"),
        ({"budget_duration": " 1d"}, "budget_duration"),
    ],
)
def test_invalid_generate_requests_name_the_field_and_create_nothing(api, body, param):
    make_deployment("gpt-4")
    status, response = api.post("/key/generate", body)
    assert status == 400, response
    error = response["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if param:
        assert error["message"].startswith(f"{param}:")
    assert not VirtualKey.objects.exists()
    assert not KeyChange.objects.exists()


def test_metadata_and_config_keep_fractional_numbers_as_json_numbers(api):
    # The parser reads 0.5 as Decimal("0.5"), which the JSON columns could not store (a 500 before).
    status, body = api.post("/key/generate", '{"metadata": {"weight": 0.5, "tags": [2.25]}, "config": {"t": 0.7}}')

    assert status == 200, body
    assert (body["metadata"], body["config"]) == (
        {"weight": Decimal("0.5"), "tags": [Decimal("2.25")]},
        {"t": Decimal("0.7")},
    )
    stored = VirtualKey.objects.get()
    assert (stored.metadata, stored.config) == ({"weight": 0.5, "tags": [2.25]}, {"t": 0.7})


def test_a_page_beyond_any_offset_is_refused(api):
    status, body = api.get("/key/list?page=33371271699941105664")  # a 500 before

    assert status == 400, body
    assert body["error"]["param"] == "page"


def test_body_that_is_not_json_is_refused(api):
    status, response = api.post("/key/generate", "{not json")
    assert status == 400
    assert "not valid JSON" in response["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/key/generate"),
        # /key/info: a virtual key reads its own (tests/keys/test_api_litellm_fields.py)
        ("post", "/key/update"),
        ("post", "/key/delete"),
        ("get", "/key/list"),
        ("post", "/key/regenerate"),
        ("post", "/key/block"),
        ("post", "/key/unblock"),
        ("post", "/team/new"),
        ("get", "/team/list"),
        ("post", "/user/new"),
        ("get", "/user/list"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer sk-wrong", "virtual"])
def test_management_needs_the_master_key(api, method, path, authorization):
    if authorization == "virtual":
        authorization = f"Bearer {make_key()[0]}"
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {"HTTP_AUTHORIZATION": ""}
    if method == "post":
        status, body = api.post(path, {}, **headers)
    else:
        status, body = api.get(path, **headers)
    assert status == 401, body
    assert body["error"]["type"] == "auth_error"


def test_money_round_trips_exactly(api):
    status, body = api.post(
        "/key/generate", '{"max_budget": 0.1, "soft_budget": 0.00000000013, "budget_duration": "1mo"}'
    )
    assert status == 200
    assert (body["max_budget"], body["soft_budget"]) == (Decimal("0.1"), Decimal("0.00000000013"))
    stored = VirtualKey.objects.get()
    assert (stored.max_budget, stored.soft_budget) == (Decimal("0.1"), Decimal("0.00000000013"))
    assert datetime.fromisoformat(body["budget_reset_at"]).day == 1


def test_update_changes_only_what_it_names_and_null_removes_a_budget(api):
    raw_key, key = make_key(max_budget=Decimal("5"), rpm_limit=10, key_alias="ci")
    status, body = api.post("/key/update", {"key": raw_key, "max_budget": None, "tpm_limit": 1000})
    assert status == 200, body
    key.refresh_from_db()
    assert (key.max_budget, key.tpm_limit, key.rpm_limit, key.key_alias) == (None, 1000, 10, "ci")
    assert body["max_budget"] is None
    assert KeyChange.objects.filter(entity_id=key.token_hash, action="updated").exists()


def test_update_by_token_hash_and_unknown_key_is_404(api):
    _, key = make_key()
    status, _ = api.post("/key/update", {"key": key.token_hash, "key_alias": "by-hash"})
    assert status == 200
    status, body = api.post("/key/update", {"key": "sk-unknown", "key_alias": "x"})
    assert status == 404
    assert body["error"]["param"] == "key"


def test_key_info_shows_the_live_spend_enforcement_reads(api):
    raw_key, key = make_key(max_budget=Decimal("1"))
    VirtualKey.objects.filter(pk=key.pk).update(spend=Decimal("0.25"))  # what the ledger committed
    key.refresh_from_db()

    async def one_call():
        admission = await admit(
            caller(key_limits(key)), model_group="gpt-4", worst_case_cost=Decimal("0.5"), estimated_tokens=1
        )
        await admission.settle(Decimal("0.125"), 1)

    asyncio.run(one_call())
    status, body = api.get(f"/key/info?key={raw_key}")
    assert body["info"]["spend"] == Decimal("0.375")


def test_regenerate_returns_a_new_secret_once_and_keeps_the_settings(api):
    raw_key, key = make_key(key_alias="rotating", max_budget=Decimal("3"))
    status, body = api.post("/key/regenerate", {"key": raw_key})
    assert status == 200, body
    assert body["key"] != raw_key and body["key"].startswith("sk-")
    assert (body["key_alias"], body["max_budget"]) == ("rotating", Decimal(3))
    assert api.get(f"/key/info?key={raw_key}")[0] == 404
    status, info = api.get(f"/key/info?key={body['key']}")
    assert status == 200 and "key" not in info["info"]


def test_a_regenerated_key_keeps_its_identity_and_only_the_new_secret_finds_it(api):
    raw_key, key = make_key()
    _, first = api.post("/key/regenerate", {"key": raw_key})
    _, second = api.post("/key/regenerate", {"key": first["key"]})

    assert first["token"] == second["token"] == key.token_hash == hash_key(raw_key)
    for old in (raw_key, first["key"]):
        assert api.get(f"/key/info?key={old}")[0] == 404
        assert api.post("/key/update", {"key": old, "key_alias": "stolen"})[0] == 404
    for current in (second["key"], key.token_hash):
        status, info = api.get(f"/key/info?key={current}")
        assert (status, info["info"]["token"]) == (200, key.token_hash)
    assert key_hash_of(second["key"]) == key_hash_of(key.token_hash) == key.token_hash
    assert set(KeyChange.objects.values_list("entity_id", flat=True)) == {key.token_hash}


@pytest.mark.parametrize(("path", "blocked"), [("/key/block", True), ("/key/unblock", False)])
def test_block_and_unblock(api, path, blocked):
    raw_key, key = make_key(blocked=not blocked)
    status, body = api.post(path, {"key": raw_key})
    assert status == 200
    assert body["blocked"] is blocked
    assert KeyChange.objects.filter(entity_id=key.token_hash, action="blocked" if blocked else "unblocked").exists()


def test_delete_removes_every_named_key_or_none(api):
    first, _ = make_key()
    second, _ = make_key()
    status, body = api.post("/key/delete", {"keys": [first, "sk-missing"]})
    assert status == 404
    assert VirtualKey.objects.count() == 2
    status, body = api.post("/key/delete", {"keys": [first, second]})
    assert status == 200
    assert sorted(body["deleted_keys"]) == sorted([hash_key(first), hash_key(second)])
    assert not VirtualKey.objects.exists()
    assert KeyChange.objects.filter(deleted=True).count() == 2


def test_list_is_paginated_and_filterable(api, django_assert_max_num_queries):
    team = make_team()
    made = [make_key(team_id=team.team_id)[1] for _ in range(5)] + [make_key()[1]]
    with django_assert_max_num_queries(2):
        status, body = api.get("/key/list?page=2&size=2")
    assert status == 200
    assert (body["total_count"], body["current_page"], body["total_pages"]) == (6, 2, 3)
    assert body["keys"] == [made[3].token_hash, made[2].token_hash]
    status, body = api.get(f"/key/list?team_id={team.team_id}&size=10&return_full_object=true")
    assert body["total_count"] == 5
    assert {entry["team_id"] for entry in body["keys"]} == {team.team_id}
    assert api.get("/key/list?size=0")[1]["error"]["param"] == "size"
