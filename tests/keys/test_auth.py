"""The hot-path key cache: known keys cost no query, unknown ones never reach the database per attempt, and
changes made anywhere take effect at the next sync."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

import keys.cache
from keys import services
from keys.auth import MASTER, authenticate, hash_key, sync_key_cache
from keys.cache import key_cache
from keys.errors import AccessDenied, AuthenticationFailed
from keys.models import InternalUser
from tests.keys.factories import make_deployment, make_key, make_team, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def bearer(raw_key: str) -> str:
    return f"Bearer {raw_key}"


@pytest.fixture
def elsewhere(monkeypatch):
    """Changes are made by another server process: this one learns of them only from its sync."""
    monkeypatch.setattr(services, "sync_key_cache", lambda: None)


async def refused(authorization) -> AuthenticationFailed | AccessDenied:
    with pytest.raises((AuthenticationFailed, AccessDenied)) as caught:
        await authenticate(authorization)
    return caught.value


async def test_the_master_key_is_the_master_caller():
    from tests.e2e.server import MASTER_KEY

    assert await authenticate(bearer(MASTER_KEY)) is MASTER


@pytest.mark.parametrize("authorization", [None, "", "Bearer ", "Bearer sk-not-a-key", "sk-not-a-key"])
async def test_missing_or_unknown_keys_are_invalid_api_key(authorization):
    assert (await refused(authorization)).code == "invalid_api_key"


async def test_a_known_key_costs_no_query_after_warm_up(django_assert_num_queries):
    raw_key, key = make_key(models=["gpt-4"], max_budget=Decimal("5"))
    key_cache().clear()  # a fresh server process
    with django_assert_num_queries(3):  # the valid hashes, the change log's position, then the key once
        caller = await authenticate(bearer(raw_key))
    assert (caller.key_hash, caller.models) == (key.token_hash, frozenset({"gpt-4"}))
    with django_assert_num_queries(0):
        for _ in range(20):
            assert await authenticate(bearer(raw_key)) is caller


async def test_unknown_keys_do_not_query_per_attempt(django_assert_num_queries, monkeypatch):
    # At most one look for keys made elsewhere per interval, whatever the attempts: here the interval outlasts the
    # test, which a pause of the machine (a full GC of the test process, say) could otherwise outlast.
    monkeypatch.setattr(keys.cache, "_CATCH_UP_SECONDS", 3600)
    make_key()
    await refused(bearer("sk-warm-up"))
    with django_assert_num_queries(0):
        for attempt in range(200):
            await refused(bearer(f"sk-wrong-{attempt}"))


async def test_sync_costs_one_query_when_nothing_changed(django_assert_num_queries):
    raw_key, _ = make_key()
    await authenticate(bearer(raw_key))
    with django_assert_num_queries(1):
        sync_key_cache()


@pytest.mark.parametrize(
    ("change", "expected_code"),
    [
        (lambda key: services.update_key(key, {"blocked": True}, actor="t"), "key_blocked"),
        (lambda key: services.delete_keys([key], actor="t"), "invalid_api_key"),
        (lambda key: services.regenerate_key(key, {}, actor="t"), "invalid_api_key"),
        (lambda key: services.update_key(key, {"duration": "1s"}, actor="t"), "expired_key"),
        (lambda key: services.update_team(key.team, {"blocked": True}, actor="t"), "team_blocked"),
    ],
    ids=["block", "delete", "regenerate", "shorten-expiry", "block-team"],
)
async def test_changes_apply_at_the_next_sync(change, expected_code, monkeypatch, elsewhere):
    raw_key, key = make_key(team_id=make_team().team_id)
    await authenticate(bearer(raw_key))
    change(key)
    await authenticate(bearer(raw_key))  # not synced yet: this process still holds the old state
    sync_key_cache()
    move_time(monkeypatch, seconds=2)
    assert (await refused(bearer(raw_key))).code == expected_code


async def test_a_regenerated_key_works_at_once_in_the_process_that_made_it():
    raw_key, key = make_key()
    await authenticate(bearer(raw_key))
    new_raw_key, _ = services.regenerate_key(key, {}, actor="t")
    assert (await authenticate(bearer(new_raw_key))).key_hash == key.token_hash == hash_key(raw_key)
    assert (await refused(bearer(raw_key))).code == "invalid_api_key"


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "not-cached"])
async def test_a_key_regenerated_elsewhere_keeps_its_identity_and_loses_its_old_secret(
    cached, elsewhere, django_assert_num_queries, monkeypatch
):
    # The old secret is an unknown key now: a pause of the machine past the catch-up interval would let it make the
    # one look at the change log the design allows, which is not what this test counts.
    monkeypatch.setattr(keys.cache, "_CATCH_UP_SECONDS", 3600)
    raw_key, key = make_key(max_budget=Decimal("5"))
    await refused(bearer("sk-load-the-valid-set"))
    if cached:
        await authenticate(bearer(raw_key))
    new_raw_key, _ = services.regenerate_key(key, {}, actor="t")
    with django_assert_num_queries(2):  # the change log, then the regenerated key's row
        sync_key_cache()
    with django_assert_num_queries(0):
        assert (await refused(bearer(raw_key))).code == "invalid_api_key"
    with django_assert_num_queries(0 if cached else 1):
        caller = await authenticate(bearer(new_raw_key))
    assert (caller.key_hash, caller.key_limits.entity_id) == (key.token_hash, key.token_hash)
    assert caller.key_hint == services.key_hint(new_raw_key)


async def test_a_key_made_elsewhere_is_accepted_after_the_sync(elsewhere, monkeypatch):
    monkeypatch.setattr(keys.cache, "_CATCH_UP_SECONDS", 3600)  # no look at the change log but the test's own
    make_key()
    await refused(bearer("sk-prime-the-cache"))
    raw_key, _ = make_key()
    assert (await refused(bearer(raw_key))).code == "invalid_api_key"
    sync_key_cache()
    assert not (await authenticate(bearer(raw_key))).is_master


async def test_budget_change_of_the_team_reaches_cached_callers(elsewhere):
    team = make_team(max_budget=Decimal("1"))
    raw_key, _ = make_key(team_id=team.team_id)
    assert (await authenticate(bearer(raw_key))).team_limits.max_budget == Decimal("1")
    services.update_team(team, {"max_budget": None}, actor="t")
    sync_key_cache()
    assert (await authenticate(bearer(raw_key))).team_limits.max_budget is None


def move_time(monkeypatch, **delta):
    """Move the clock the key checks forward by `delta`."""
    later = timezone.now() + timedelta(**delta)
    monkeypatch.setattr(timezone, "now", lambda: later)


async def test_expired_key_names_its_expiry_time(monkeypatch):
    raw_key, key = make_key(duration="20m")
    assert await authenticate(bearer(raw_key))
    move_time(monkeypatch, minutes=19)
    assert await authenticate(bearer(raw_key))
    move_time(monkeypatch, minutes=2)
    refusal = await refused(bearer(raw_key))
    assert refusal.code == "expired_key"
    assert key.expires.isoformat() in str(refusal)


async def test_expiry_is_checked_before_blocking(monkeypatch):
    raw_key, _ = make_key(duration="30s", blocked=True)
    assert (await refused(bearer(raw_key))).code == "key_blocked"
    move_time(monkeypatch, minutes=1)
    assert (await refused(bearer(raw_key))).code == "expired_key"


async def test_aliases_map_to_groups_key_first_then_team():
    make_deployment("my-free-tier")
    make_deployment("my-paid-tier")
    team = make_team(model_aliases={"gpt-3.5-turbo": "my-paid-tier", "gpt-4": "my-paid-tier"})
    raw_key, _ = make_key(
        team_id=team.team_id, models=["my-free-tier", "my-paid-tier"], aliases={"gpt-3.5-turbo": "my-free-tier"}
    )
    caller = await authenticate(bearer(raw_key))
    assert caller.resolve_model("gpt-3.5-turbo") == "my-free-tier"
    assert caller.resolve_model("gpt-4") == "my-paid-tier"
    assert caller.resolve_model("other") == "other"


@pytest.mark.parametrize(
    ("key_models", "team_models", "user_models", "allowed"),
    [
        ([], [], [], True),
        (["gpt-4"], [], [], True),
        (["claude-2"], [], [], False),
        ([], ["claude-2"], [], False),
        (["gpt-4"], ["gpt-4", "claude-2"], [], True),
        ([], [], ["claude-2"], False),
        (["all-proxy-models"], [], [], True),
    ],
)
async def test_key_team_and_user_models_are_all_enforced(key_models, team_models, user_models, allowed):
    team = make_team(models=team_models)
    user = make_user(models=user_models)
    raw_key, _ = make_key(team_id=team.team_id, user_id=user.user_id, models=key_models)
    caller = await authenticate(bearer(raw_key))
    assert caller.may_use("gpt-4") is allowed
    if allowed:
        caller.check_model_access("gpt-4", "gpt-4")
    else:
        with pytest.raises(AccessDenied) as caught:
            caller.check_model_access("gpt-4", "gpt-4")
        assert caught.value.code == "key_model_access_denied"


@pytest.mark.parametrize("owner", ["key", "team", "user"])
@pytest.mark.parametrize("alias_of", ["key", "team"])
async def test_an_alias_reaches_only_a_model_group_every_list_allows(owner, alias_of):
    """An alias named in a model list does not carry a call to a group the list leaves out."""
    lists = {name: [] for name in ("key", "team", "user")}
    lists[owner] = ["cheap"]
    alias = {"cheap": "expensive"}
    team = make_team(models=lists["team"], model_aliases=alias if alias_of == "team" else {})
    user = make_user(models=lists["user"])
    raw_key, _ = make_key(
        team_id=team.team_id, user_id=user.user_id, models=lists["key"], aliases=alias if alias_of == "key" else {}
    )
    caller = await authenticate(bearer(raw_key))
    group = caller.resolve_model("cheap")

    assert group == "expensive"
    with pytest.raises(AccessDenied, match="model group 'expensive'"):
        caller.check_model_access(group, "cheap")
    assert not caller.may_use(group)


async def test_the_caller_carries_every_limit_of_key_user_and_team():
    team = make_team(max_budget=Decimal("100"), rpm_limit=60, tpm_limit=1000, max_parallel_requests=4)
    user = make_user(max_budget=Decimal("50"))
    raw_key, key = make_key(
        team_id=team.team_id, user_id=user.user_id, max_budget=Decimal("5"), soft_budget=Decimal("4"), rpm_limit=6
    )
    caller = await authenticate(bearer(raw_key))
    assert (caller.user_id, caller.team_id) == (user.user_id, team.team_id)
    assert [(lim.kind, lim.max_budget) for lim in caller.limits] == [
        ("key", Decimal(5)),
        ("user", Decimal(50)),
        ("team", Decimal(100)),
    ]
    assert caller.key_limits.soft_budget == Decimal(4)
    assert (caller.team_limits.rpm_limit, caller.team_limits.tpm_limit) == (60, 1000)
    assert InternalUser.objects.count() == 1
    assert key_cache().callers[key.secret_hash] is caller
