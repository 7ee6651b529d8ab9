"""Organizations (LiteLLM's /organization/*): the API's shapes, and the organization as a budget holder above its
teams: refused when spent, exact under concurrent calls, reconciled, reset when its period ends."""

import asyncio
import time
from datetime import timedelta
from decimal import Decimal

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from gateway.models import Deployment
from keys import organizations
from keys.models import Budget, InternalUser, KeyChange, Organization, OrganizationMembership, Team
from keys.throttle import close_auth_failures
from spend.models import BudgetReset, SpendLog
from spend.periods import local_day
from spend.reconcile import find_drift, fix_drift
from spend.rollups import rollup_spend
from tests.e2e.server import MASTER_KEY
from tests.keys.conftest import _redis_limits
from tests.keys.factories import make_key
from tests.keys.metered import METERED, chat, metered  # noqa: F401 (metered: the fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("metered")]

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


async def api(method: str, path: str, body=None, **query):
    client = AsyncClient()
    if method == "GET":
        response = await client.get(path, query, headers=AUTH)
    else:
        call = getattr(client, method.lower())
        response = await call(path, orjson.dumps(body), content_type="application/json", headers=AUTH)
    return response.status_code, orjson.loads(response.content)


def _organization_key(organization_id: str, **organization) -> str:
    """A key of a team in a new organization (made through the services, as the API makes them): the raw key."""
    organizations.create_organization({"organization_id": organization_id, **organization}, actor="test")
    team = Team.objects.create(team_id=f"{organization_id}-team", organization_id=organization_id)
    return make_key(team_id=team.team_id)[0]


# -- the API ------------------------------------------------------------------------------------------------------------


async def test_new_organization_answers_litellms_shape_with_a_budget_made_from_its_limits():
    status, made = await api(
        "POST",
        "/organization/new",
        {"organization_alias": "acme", "models": ["gpt-4o"], "max_budget": 100, "budget_duration": "30d",
         "tpm_limit": 1000, "rpm_limit": 10, "metadata": {"tier": "gold"}},
    )  # fmt: skip

    assert status == 200, made
    assert made["organization_alias"] == "acme"
    assert made["models"] == ["gpt-4o"]
    assert made["metadata"] == {"tier": "gold"}
    assert made["spend"] == 0
    assert (made["members"], made["teams"]) == ([], [])
    budget = made["litellm_budget_table"]
    assert budget["budget_id"] == made["budget_id"]
    assert (budget["max_budget"], budget["budget_duration"], budget["tpm_limit"], budget["rpm_limit"]) == (
        100, "30d", 1000, 10,
    )  # fmt: skip
    assert made["budget_reset_at"] is not None
    assert {"organization_id", "created_by", "updated_by", "created_at", "updated_at"} <= made.keys()


async def test_an_organization_with_no_limits_still_gets_a_budget_of_its_own_as_in_litellm():
    status, made = await api("POST", "/organization/new", {"organization_alias": "free"})

    assert status == 200, made
    assert made["budget_id"] and made["litellm_budget_table"]["max_budget"] is None


async def test_new_organization_takes_an_existing_budget_by_id_but_not_with_limits_too():
    budget = await Budget.objects.acreate(budget_id="shared", max_budget=Decimal(5))

    _, made = await api("POST", "/organization/new", {"organization_alias": "a", "budget_id": "shared"})
    status, refused = await api("POST", "/organization/new", {"budget_id": "shared", "max_budget": 1})

    assert made["budget_id"] == budget.budget_id and made["litellm_budget_table"]["max_budget"] == 5
    assert status == 400 and refused["error"]["param"] == "budget_id"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"organization_alias": "x", "typo": 1}, "typo"),
        ({"max_budget": -1}, "max_budget"),
        ({"budget_duration": "soon"}, "budget_duration"),
        ({"models": "gpt-4o"}, "models"),
    ],
)
async def test_new_organization_refuses_bad_fields_naming_them(body, param):
    status, refused = await api("POST", "/organization/new", body)

    assert status == 400
    assert refused["error"]["param"] == param


async def test_info_update_list_and_delete():
    _, made = await api("POST", "/organization/new", {"organization_id": "org-1", "organization_alias": "one"})
    await api("POST", "/organization/new", {"organization_id": "org-2"})

    status, info = await api("GET", "/organization/info", organization_id="org-1")
    assert (status, info["organization_alias"]) == (200, "one")
    status, several = await api("POST", "/organization/info", {"organizations": ["org-1", "org-2"]})
    assert sorted(o["organization_id"] for o in several) == ["org-1", "org-2"]

    status, updated = await api(
        "PATCH", "/organization/update", {"organization_id": "org-1", "organization_alias": "uno", "max_budget": 7}
    )
    assert status == 200, updated
    assert (updated["organization_alias"], updated["litellm_budget_table"]["max_budget"]) == ("uno", 7)
    assert updated["budget_id"] == made["budget_id"]  # its budget changed, not replaced

    _, listed = await api("GET", "/organization/list")
    assert [o["organization_id"] for o in listed] == ["org-2", "org-1"]  # by alias: "" before "uno"

    status, deleted = await api("DELETE", "/organization/delete", {"organization_ids": ["org-2"]})
    assert (status, [o["organization_id"] for o in deleted]) == (200, ["org-2"])
    assert not await Organization.objects.filter(organization_id="org-2").aexists()

    status, missing = await api("GET", "/organization/info", organization_id="org-2")
    assert status == 404 and missing["error"]["param"] == "organization_id"


async def test_a_duration_given_by_update_starts_the_organizations_period():
    await api("POST", "/organization/new", {"organization_id": "timed", "max_budget": 5})

    _, updated = await api("PATCH", "/organization/update", {"organization_id": "timed", "budget_duration": "1d"})

    assert updated["litellm_budget_table"]["budget_duration"] == "1d"
    assert updated["budget_reset_at"] is not None
    assert (await Organization.objects.aget(organization_id="timed")).budget_reset_at is not None


async def test_deleting_an_organization_keeps_its_teams_outside_any():
    await api("POST", "/organization/new", {"organization_id": "gone"})
    await Team.objects.acreate(team_id="stays", organization_id="gone")

    await api("DELETE", "/organization/delete", {"organization_ids": ["gone"]})

    assert (await Team.objects.aget(team_id="stays")).organization_id is None


async def test_member_add_makes_users_it_does_not_know_and_sets_roles():
    await api("POST", "/organization/new", {"organization_id": "org-m"})
    await InternalUser.objects.acreate(user_id="known", user_email="known@example.com")

    status, added = await api(
        "POST",
        "/organization/member_add",
        {"organization_id": "org-m", "member": [{"role": "org_admin", "user_email": "known@example.com"},
                                                {"role": "internal_user", "user_id": "newcomer"}]},
    )  # fmt: skip
    _, single = await api(
        "POST", "/organization/member_add", {"organization_id": "org-m", "member": {"role": "internal_user_viewer",
                                                                                    "user_id": "known"}}
    )  # fmt: skip

    assert status == 200, added
    assert [u["user_id"] for u in added["updated_users"]] == ["known", "newcomer"]
    assert [(m["user_id"], m["user_role"]) for m in added["updated_organization_memberships"]] == [
        ("known", "org_admin"), ("newcomer", "internal_user"),
    ]  # fmt: skip
    assert await InternalUser.objects.filter(user_id="newcomer").aexists()
    assert single["updated_organization_memberships"][0]["user_role"] == "internal_user_viewer"  # changed, not added
    assert await OrganizationMembership.objects.acount() == 2
    _, info = await api("GET", "/organization/info", organization_id="org-m")
    assert sorted((m["user_id"], m["user_role"]) for m in info["members"]) == [
        ("known", "internal_user_viewer"), ("newcomer", "internal_user"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("member", "param"),
    [({"user_id": "x"}, "member"), ({"role": "owner", "user_id": "x"}, "member"), ({"role": "org_admin"}, "member")],
)
async def test_member_add_refuses_a_member_without_a_role_or_a_user(member, param):
    await api("POST", "/organization/new", {"organization_id": "org-r"})

    status, refused = await api("POST", "/organization/member_add", {"organization_id": "org-r", "member": member})

    assert status == 400
    assert refused["error"]["param"].startswith(param)


async def test_a_team_joins_an_organization_through_team_new_and_update():
    await api("POST", "/organization/new", {"organization_id": "org-t"})

    status, team = await api("POST", "/team/new", {"team_id": "t1", "organization_id": "org-t"})
    assert (status, team["organization_id"]) == (200, "org-t")
    _, info = await api("GET", "/organization/info", organization_id="org-t")
    assert [t["team_id"] for t in info["teams"]] == ["t1"]

    _, left = await api("POST", "/team/update", {"team_id": "t1", "organization_id": None})
    assert left["organization_id"] is None
    status, refused = await api("POST", "/team/update", {"team_id": "t1", "organization_id": "no-such-org"})
    assert status == 400 and refused["error"]["param"] == "organization_id"


async def test_every_change_is_in_the_change_log():
    await api("POST", "/organization/new", {"organization_id": "audited"})
    await api("PATCH", "/organization/update", {"organization_id": "audited", "metadata": {"a": 1}})
    await api("DELETE", "/organization/delete", {"organization_ids": ["audited"]})

    actions = [c.action async for c in KeyChange.objects.filter(kind="organization").order_by("id")]
    assert actions == ["created", "updated", "deleted"]


# -- the organization as a budget holder --------------------------------------------------------------------------------


async def test_a_call_is_charged_to_its_teams_organization_and_logged_with_it():
    raw_key = await sync_to_async(_organization_key)("charged", max_budget=Decimal(10))

    response = await chat(raw_key)

    assert response.status_code == 200, response.content
    assert (await Organization.objects.aget(organization_id="charged")).spend == Decimal("0.1")
    assert await SpendLog.objects.values_list("organization_id", flat=True).aget() == "charged"
    _, info = await api("GET", "/organization/info", organization_id="charged")
    assert Decimal(str(info["spend"])) == Decimal("0.1")


async def test_a_spent_organization_refuses_with_budget_exceeded_naming_it():
    raw_key = await sync_to_async(_organization_key)("spent", organization_alias="Acme", max_budget=Decimal(1))
    await api("PATCH", "/organization/update", {"organization_id": "spent", "spend": 1})

    refused = await chat(raw_key)

    assert refused.status_code == 400
    error = orjson.loads(refused.content)["error"]
    assert (error["type"], error["code"]) == ("budget_exceeded", "budget_exceeded")
    assert "organization Acme has spent 1 of its max_budget 1" in error["message"]


async def test_raising_the_organizations_budget_lets_its_keys_in_at_once():
    raw_key = await sync_to_async(_organization_key)("raised", max_budget=Decimal("0.1"))
    assert (await chat(raw_key)).status_code == 200
    assert (await chat(raw_key)).status_code == 400

    await api("PATCH", "/organization/update", {"organization_id": "raised", "max_budget": 1})

    assert (await chat(raw_key)).status_code == 200


async def test_the_organizations_models_restrict_its_teams():
    await sync_to_async(Deployment.objects.create)(model_id="other-1", model_name="other", litellm_model="mock/other")
    raw_key = await sync_to_async(_organization_key)("narrow", models=["metered"])

    allowed = await chat(raw_key)
    refused = await chat(raw_key, {**METERED, "model": "other"})

    assert allowed.status_code == 200
    assert refused.status_code == 403
    assert "This organization may not call model 'other'" in orjson.loads(refused.content)["error"]["message"]


async def test_an_organizations_rpm_limit_answers_429():
    raw_key = await sync_to_async(_organization_key)("chatty", rpm_limit=1)

    first, second = await chat(raw_key), await chat(raw_key)

    assert (first.status_code, second.status_code) == (200, 429)
    assert "organization chatty is limited to 1 requests per minute" in orjson.loads(second.content)["error"]["message"]


@pytest.fixture
async def closes_throttle():
    """Calls in flight at once open the failed-auth throttle's Redis connections on this test's loop: close them."""
    yield
    await close_auth_failures()


@pytest.fixture(params=["local", "redis", "database"])
async def counters(request, settings):
    """Budgets counted by this process, by Redis, or by the database (Redis unreachable: keys.limits_database)."""
    if request.param == "local":
        yield
        return
    async with _redis_limits(settings) as redis_counters:
        if request.param == "database":
            redis_counters._down_until = time.monotonic() + 600
        yield


@pytest.mark.usefixtures("counters", "closes_throttle")
async def test_fifty_concurrent_calls_against_an_organization_budget_for_ten_admit_exactly_ten():
    organization_keys = await sync_to_async(_organization_key)("tight", max_budget=Decimal(1))
    # Two keys of the same team, and no key, team or user budget: only the organization's holds them.
    other_key = (await sync_to_async(make_key)(team_id="tight-team"))[0]

    responses = await asyncio.gather(*(chat(organization_keys if n % 2 else other_key) for n in range(50)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 10 + [400] * 40
    assert all(b"organization tight" in r.content for r in responses if r.status_code == 400)
    assert (await Organization.objects.aget(organization_id="tight")).spend == Decimal("1.0")
    assert await sync_to_async(find_drift)() == []


async def test_reconcile_finds_a_drift_planted_in_an_organization_and_fixes_it():
    raw_key = await sync_to_async(_organization_key)("audited")
    await chat(raw_key)
    await Organization.objects.filter(organization_id="audited").aupdate(spend=Decimal("0.1") + 1)

    drifts = await sync_to_async(find_drift)()

    assert [(d.kind, d.entity_id, d.stored, d.expected) for d in drifts] == [
        ("organization", "audited", Decimal("1.1"), Decimal("0.1"))
    ]
    await sync_to_async(fix_drift)(drifts[0])
    assert (await Organization.objects.aget(organization_id="audited")).spend == Decimal("0.1")


async def test_spend_set_by_hand_and_deletion_keep_reconcile_exact():
    raw_key = await sync_to_async(_organization_key)("edited")
    await chat(raw_key)

    await api("PATCH", "/organization/update", {"organization_id": "edited", "spend": 5})
    assert await sync_to_async(find_drift)() == []
    await api("DELETE", "/organization/delete", {"organization_ids": ["edited"]})
    await sync_to_async(organizations.create_organization)({"organization_id": "edited"}, actor="test")

    assert await sync_to_async(find_drift)() == []  # made again under the same id, it starts from 0


async def test_an_organization_budget_period_that_ended_is_reset_by_its_next_call():
    raw_key = await sync_to_async(_organization_key)("monthly", max_budget=Decimal(1), budget_duration="1mo")
    await api("PATCH", "/organization/update", {"organization_id": "monthly", "spend": 1})
    await Organization.objects.filter(organization_id="monthly").aupdate(
        budget_reset_at=timezone.now() - timedelta(hours=1)
    )

    response = await chat(raw_key)

    assert response.status_code == 200, response.content
    reset = await BudgetReset.objects.aget(kind="organization", entity_id="monthly")
    assert reset.period_spend == 1
    organization = await Organization.objects.aget(organization_id="monthly")
    assert organization.spend == Decimal("0.1")
    assert organization.budget_reset_at > timezone.now()
    assert await sync_to_async(find_drift)() == []


async def test_the_spend_report_groups_by_organization_at_once_and_after_the_rollup():
    raw_key = await sync_to_async(_organization_key)("reported")
    await chat(raw_key)
    today = local_day(timezone.now()).isoformat()
    window = {"start_date": today, "end_date": today, "group_by": "organization"}

    _, current = await api("GET", "/global/spend/report", **window)  # the log is not rolled up yet
    await sync_to_async(rollup_spend)()
    _, rolled_up = await api("GET", "/global/spend/report", **window)

    assert current == rolled_up
    [day] = current
    assert [(group["organization"], group["total_spend"]) for group in day["organizations"]] == [("reported", 0.1)]
    assert [entry["model"] for entry in day["organizations"][0]["metadata"]] == ["metered"]
